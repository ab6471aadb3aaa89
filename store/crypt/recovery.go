package crypt

import (
	"encoding/base32"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// The recovery key is the master key and a CRC-32C, in Crockford-style
// base32 (no I, L, O, U), in groups of five characters separated by dashes:
// 58 characters in 12 groups. Typing mistakes are caught by the checksum;
// I/L are read as 1 and O as 0.
var recoveryEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrRecoveryKey means a recovery key could not be read.
var ErrRecoveryKey = errors.New("not a valid recovery key")

// EncodeRecoveryKey renders master for printing.
func EncodeRecoveryKey(master MasterKey) string {
	buf := make([]byte, 0, KeySize+4)
	buf = append(buf, master[:]...)
	c := crc32.Checksum(master[:], castagnoli)
	buf = append(buf, byte(c>>24), byte(c>>16), byte(c>>8), byte(c))
	s := recoveryEncoding.EncodeToString(buf)
	var groups []string
	for len(s) > 5 {
		groups = append(groups, s[:5])
		s = s[5:]
	}
	groups = append(groups, s)
	return strings.Join(groups, "-")
}

// DecodeRecoveryKey parses a recovery key, forgiving case, spaces, dashes
// and the letters people confuse with digits.
func DecodeRecoveryKey(s string) (MasterKey, error) {
	var k MasterKey
	clean := strings.Map(func(r rune) rune {
		switch r {
		case '-', ' ', '\t':
			return -1
		case 'i', 'I', 'l', 'L':
			return '1'
		case 'o', 'O':
			return '0'
		}
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
	buf, err := recoveryEncoding.DecodeString(clean)
	if err != nil {
		return k, fmt.Errorf("%w: %v", ErrRecoveryKey, err)
	}
	if len(buf) != KeySize+4 {
		return k, fmt.Errorf("%w: %d characters, want 58", ErrRecoveryKey, len(clean))
	}
	copy(k[:], buf)
	c := crc32.Checksum(k[:], castagnoli)
	if byte(c>>24) != buf[KeySize] || byte(c>>16) != buf[KeySize+1] || byte(c>>8) != buf[KeySize+2] || byte(c) != buf[KeySize+3] {
		return MasterKey{}, fmt.Errorf("%w: checksum mismatch (a character is mistyped)", ErrRecoveryKey)
	}
	return k, nil
}
