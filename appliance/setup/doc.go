// Package setup is the first-boot setup wizard's backend: the ordered
// steps an administrator goes through on a fresh appliance (account,
// network, storage pool, encryption and recovery key, vCenter, first
// policy, options, summary), each validated before it is recorded, and
// the state kept in setup.json in the state directory so that a restart
// mid-way resumes where it stopped.
//
// The wizard creates the appliance as it goes: the storage step chooses
// where the store lives, the encryption step creates the master key and
// the store (app.Init) and opens it, the vCenter step stores the
// connection, and the policy step starts the job services to create the
// first policy. Finish hands the running services to the caller (the
// HTTPS server), which then serves the whole UI.
//
// The account step itself belongs to the UI (package ui/access); the
// wizard only records that it is done.
package setup
