package store

import "coffer.dev/coffer/store/crypt"

// DerivedKey returns a key for purpose derived from the store's key
// hierarchy, for callers that keep secrets of their own (the appliance's
// vCenter and guest credentials). It is as safe, and as recoverable, as
// the master key.
func (s *Store) DerivedKey(purpose string) [crypt.KeySize]byte { return s.keys.Derive(purpose) }
