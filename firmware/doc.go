// Package firmware owns the appliance's trust anchor in the TPM 2.0 and the
// verification of signed updates:
//
//   - sealing the store's master key to the boot measurements (Seal,
//     SealTo, Unseal), so that the appliance unlocks its store unattended
//     only when it booted the expected firmware, boot loader, kernel and
//     initrd; when the measurements differ Unseal fails with
//     ErrPolicyMismatch and the caller asks for the recovery key;
//   - the appliance's identity key, an ECC P-256 key resident in the TPM
//     that is the same on every boot without being stored (IdentityKey);
//   - reading and extending PCRs (ReadPCRs, Extend, ExtendedValue);
//   - signing and verifying update images (SignUpdate, VerifyUpdate; the
//     detached signature format is in FORMAT.md).
//
// The recovery key and the A/B boot slots are not implemented yet; until
// the appliance calls Unseal at boot, the master key lives in a key file
// (see store/crypt).
//
// # TPM usage
//
// Everything runs against the kernel's resource manager (/dev/tpmrm0, Open)
// or swtpm's unix socket (OpenSocket, used by the tests), through
// github.com/google/go-tpm, without cgo. Nothing is ever written to TPM NV
// memory: the storage root key (SRK) and the identity key are primary keys,
// which the TPM derives afresh from the owner hierarchy's seed and a fixed
// template each time they are needed. Both therefore stay the same until the
// TPM is cleared; a cleared TPM has a new SRK and a new identity, and what
// was sealed under the old SRK is lost (Unseal: ErrSRKMismatch), which is
// why the recovery key exists. The hierarchies are assumed to have no
// authorization value, as a Linux system leaves them.
//
// The SRK uses the TCG standard ECC P-256 storage template. The master key
// is sealed in a keyed-hash data object under it, with no password and an
// authPolicy of TPM2_PolicyPCR over the SHA-256 bank, computed from the
// current values (Seal) or from predicted ones (SealTo, to re-seal for a new
// image before an update switches to it). The secret crosses the bus
// encrypted both ways: Create uses an HMAC session salted to the SRK with
// AES-128-CFB parameter encryption of the sensitive area, and Unseal a
// policy session salted to the SRK that encrypts the returned data. Unseal
// checks the SRK's name against the one recorded at sealing before salting
// a session to it.
//
// # PCR selection
//
// BootPCRs is the default selection, the measurements of a UEFI boot of a
// unified kernel image:
//
//   - 0: the platform firmware (UEFI code);
//   - 2: option ROMs and other pluggable firmware (for example a storage
//     controller's or network card's UEFI driver);
//   - 4: the boot manager and the EFI applications it starts: the boot
//     loader and the kernel image (the UKI);
//   - 7: the Secure Boot state and policy (on/off, PK, KEK, db, dbx);
//   - 9: the initrd, which the Linux kernel's EFI stub measures into 9;
//   - 11: the UKI's sections (kernel, initrd, command line, os-release),
//     measured by systemd-stub.
//
// PCR 1 (firmware configuration, including the boot order and the hardware
// inventory) and PCR 3 are left out: they change with BIOS settings and
// hardware changes that do not affect what code boots. PCR 8 (the GRUB
// command line) is unused with a UKI, whose command line is in 11. The tests
// use the debug PCRs 16 and 23, which boot firmware never extends.
package firmware
