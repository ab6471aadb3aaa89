// Package firmware will own the appliance's trust anchor: sealing the store's
// master key to the TPM under the boot measurements, the recovery key,
// signed-update verification and A/B boot slots. Nothing is implemented yet;
// until it lands the master key lives in a key file (see store/crypt).
package firmware
