// Package image will own building the bootable appliance: the u-root
// initramfs with coffer as init, the Debian kernel and modules, the UEFI disk
// image and the QEMU launcher. Nothing is implemented yet; it lands with its
// issue.
package image
