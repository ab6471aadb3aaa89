#!/bin/sh
# Builds the Coffer appliance image from Debian packages and Go modules:
#
#   OUT/vmlinuz             the Debian kernel (direct QEMU boot)
#   OUT/initramfs.cpio.zst  u-root initramfs, init = u-root, uinit = coffer boot
#   OUT/coffer.efi          unified kernel image (systemd-stub + kernel + initramfs + command line)
#   OUT/coffer.img          GPT disk image: EFI system partition (systemd-boot,
#                           slot A = coffer.efi) and the configuration partition
#   OUT/coffer.efi.sig      the update signature of coffer.efi (release key)
#
# Usage: image/build.sh OUT [VERSION]. Needs: apt-get (kernel download),
# systemd-boot-efi, binutils, dosfstools, mtools, gdisk, e2fsprogs, zstd.
# docs/image.md describes the layout.
set -eu

OUT=${1:?usage: build.sh OUT [VERSION]}
VERSION=${2:-$(date -u +%Y.%m.%d.%H%M)}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CACHE=$OUT/cache
mkdir -p "$CACHE"
GO=${GO:-go}

# --- kernel: the version linux-image-amd64 points at, unpacked, not installed
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
[ -n "$KPKG" ] || { echo "build.sh: cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 1; }
KVER=${KPKG#linux-image-}
if ! ls "$CACHE"/"$KPKG"_*.deb >/dev/null 2>&1; then
	(cd "$CACHE" && apt-get download "$KPKG" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
fi
ls "$CACHE"/"$KPKG"_*.deb >/dev/null
K=$CACHE/kernel-$KVER
if [ ! -f "$K/boot/vmlinuz-$KVER" ]; then
	rm -rf "$K"
	dpkg -x "$CACHE"/"$KPKG"_*.deb "$K"
	depmod -b "$K" "$KVER"
fi
cp "$K/boot/vmlinuz-$KVER" "$OUT/vmlinuz"

# --- modules the appliance loads at boot, with their dependencies, in order.
# u-root's init reads /lib/modules-load.d/*.conf and resolves modules.dep but
# not soft dependencies, so the checksum providers come first.
MODULES="crc32c_generic crct10dif_generic crc64_rocksoft_generic libcrc32c
virtio_pci virtio_blk virtio_scsi virtio_net ahci nvme sd_mod sg st ch
md_mod raid1 raid456 raid10 ext4 xfs vfat nls_cp437 nls_utf8 efivarfs
e1000 e1000e igb ixgbe"
STAGE=$OUT/stage
rm -rf "$STAGE"
mkdir -p "$STAGE/lib/modules/$KVER" "$STAGE/lib/modules-load.d" "$STAGE/etc/coffer"
: >"$STAGE/lib/modules-load.d/coffer.conf"
for m in $MODULES; do
	deps=$(modprobe -d "$K" -S "$KVER" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" {print $2}') || true
	if [ -z "$deps" ]; then
		if modprobe -d "$K" -S "$KVER" --show-depends "$m" 2>&1 | grep -q builtin; then continue; fi
		echo "build.sh: module $m not found in $KPKG" >&2
		exit 1
	fi
	for f in $deps; do
		rel=${f#"$K"/lib/modules/"$KVER"/}
		mkdir -p "$STAGE/lib/modules/$KVER/$(dirname "$rel")"
		cp -n "$f" "$STAGE/lib/modules/$KVER/$rel"
	done
	echo "$m" >>"$STAGE/lib/modules-load.d/coffer.conf"
done
cp "$K/lib/modules/$KVER/modules.order" "$K/lib/modules/$KVER/modules.builtin" "$STAGE/lib/modules/$KVER/"
depmod -b "$STAGE" "$KVER"

# --- the release key: the public half goes into the image, the private
# half signs updates. A development key is made on first use.
KEYS=${COFFER_RELEASE_KEYS:-$OUT/keys}
BIN=$OUT/bin
mkdir -p "$BIN"
CGO_ENABLED=0 GOAMD64=v1 "$GO" build -trimpath -ldflags "-s -w -X coffer.dev/coffer/appliance/cli.Version=$VERSION" \
	-o "$BIN/coffer" "$ROOT/appliance/cmd/coffer"
if [ ! -f "$KEYS/release.key" ]; then
	mkdir -p "$KEYS"
	"$BIN/coffer" update keygen --dir "$KEYS"
fi
cp "$KEYS/release.pub" "$STAGE/etc/coffer/release.pub"
echo "$VERSION" >"$STAGE/etc/coffer/version"

# --- the initramfs: u-root core commands (support shell), coffer as uinit,
# and the user-space tools coffer calls, with their libraries.
FILES=""
for t in /sbin/mdadm /sbin/mke2fs /sbin/mkfs.ext4 /sbin/e2fsck /sbin/resize2fs /sbin/mkfs.xfs /sbin/wipefs /sbin/blkid; do
	[ -x "$t" ] || { echo "build.sh: $t missing (apt-get install mdadm e2fsprogs xfsprogs util-linux)" >&2; exit 1; }
	FILES="$FILES -files $t:${t#/}"
done
[ -f /etc/mke2fs.conf ] && FILES="$FILES -files /etc/mke2fs.conf:etc/mke2fs.conf"
# shellcheck disable=SC2086
(cd "$ROOT" && GOAMD64=v1 CGO_ENABLED=0 "$GO" tool mkuimage -o "$OUT/initramfs.cpio" \
	-files "$BIN/coffer:bin/coffer" \
	-files "$STAGE/lib/modules:lib/modules" \
	-files "$STAGE/lib/modules-load.d:lib/modules-load.d" \
	-files "$STAGE/etc/coffer:etc/coffer" \
	$FILES \
	-initcmd=init -defaultsh=gosh -uinitcmd="/bin/coffer boot" \
	github.com/u-root/u-root/cmds/core/init \
	github.com/u-root/u-root/cmds/core/gosh \
	github.com/u-root/u-root/cmds/core/cat github.com/u-root/u-root/cmds/core/ls \
	github.com/u-root/u-root/cmds/core/ip github.com/u-root/u-root/cmds/core/dhclient \
	github.com/u-root/u-root/cmds/core/mount github.com/u-root/u-root/cmds/core/umount \
	github.com/u-root/u-root/cmds/core/dmesg github.com/u-root/u-root/cmds/core/ps \
	github.com/u-root/u-root/cmds/core/kill github.com/u-root/u-root/cmds/core/df \
	github.com/u-root/u-root/cmds/core/free github.com/u-root/u-root/cmds/core/grep \
	github.com/u-root/u-root/cmds/core/more github.com/u-root/u-root/cmds/core/shutdown \
	github.com/u-root/u-root/cmds/core/lsmod github.com/u-root/u-root/cmds/core/insmod \
	github.com/u-root/u-root/cmds/core/ping github.com/u-root/u-root/cmds/core/date \
	github.com/u-root/u-root/cmds/core/hexdump github.com/u-root/u-root/cmds/core/dd \
	github.com/u-root/u-root/cmds/core/cp github.com/u-root/u-root/cmds/core/mkdir \
	github.com/u-root/u-root/cmds/core/rm github.com/u-root/u-root/cmds/core/sync)
zstd -q -f -19 -T0 "$OUT/initramfs.cpio" -o "$OUT/initramfs.cpio.zst"
rm -f "$OUT/initramfs.cpio"

# --- unified kernel image: systemd-stub measures its sections into PCR 11
# and the kernel its initrd into PCR 9, which is what the store key is sealed to.
STUB=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
[ -f "$STUB" ] || { echo "build.sh: $STUB missing (apt-get install systemd-boot-efi)" >&2; exit 1; }
printf 'console=ttyS0,115200 console=tty0 panic=10 coffer.version=%s' "$VERSION" >"$OUT/cmdline"
printf 'NAME="Coffer"\nID=coffer\nVERSION_ID=%s\nPRETTY_NAME="Coffer %s"\n' "$VERSION" "$VERSION" >"$OUT/os-release"
ksize=$(stat -c %s "$OUT/vmlinuz")
initrd_vma=$(printf '0x%x' $((0x2000000 + (ksize + 0xfffff) / 0x100000 * 0x100000)))
objcopy \
	--add-section .osrel="$OUT/os-release" --change-section-vma .osrel=0x20000 \
	--add-section .cmdline="$OUT/cmdline" --change-section-vma .cmdline=0x30000 \
	--add-section .linux="$OUT/vmlinuz" --change-section-vma .linux=0x2000000 \
	--add-section .initrd="$OUT/initramfs.cpio.zst" --change-section-vma .initrd="$initrd_vma" \
	"$STUB" "$OUT/coffer.efi"
"$BIN/coffer" update sign --key "$KEYS/release.key" --out "$OUT/coffer.efi.sig" "$OUT/coffer.efi"

# --- the disk image: GPT, ESP (systemd-boot, two slots), configuration partition.
ESP_MB=120
CFG_MB=64
IMG=$OUT/coffer.img
rm -f "$IMG" "$OUT/esp.img" "$OUT/config.img"
mkfs.vfat -C -F 32 -n COFFER-ESP "$OUT/esp.img" $((ESP_MB * 1024)) >/dev/null
mmd -i "$OUT/esp.img" ::/EFI ::/EFI/BOOT ::/EFI/Linux ::/loader ::/loader/entries
mcopy -i "$OUT/esp.img" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
printf 'timeout 0\ndefault coffer-*\nconsole-mode keep\neditor no\n' >"$OUT/loader.conf"
mcopy -i "$OUT/esp.img" "$OUT/loader.conf" ::/loader/loader.conf
mcopy -i "$OUT/esp.img" "$OUT/coffer.efi" "::/EFI/Linux/coffer-$VERSION.efi"
mkdir -p "$OUT/config-empty"
mke2fs -q -F -t ext4 -L COFFER-CFG -d "$OUT/config-empty" "$OUT/config.img" "${CFG_MB}M"
truncate -s $((1 + ESP_MB + CFG_MB + 1))M "$IMG"
sgdisk -q -Z "$IMG" >/dev/null 2>&1 || true
sgdisk -q -n 1:1M:+${ESP_MB}M -t 1:ef00 -c 1:coffer-esp \
	-n 2:0:+${CFG_MB}M -t 2:8300 -c 2:coffer-config "$IMG"
dd if="$OUT/esp.img" of="$IMG" bs=1M seek=1 conv=notrunc status=none
dd if="$OUT/config.img" of="$IMG" bs=1M seek=$((1 + ESP_MB)) conv=notrunc status=none
rm -f "$OUT/esp.img" "$OUT/config.img"
echo "image $VERSION: $IMG ($(du -m --apparent-size "$IMG" | cut -f1) MiB), $OUT/coffer.efi ($(du -m "$OUT/coffer.efi" | cut -f1) MiB), kernel $KVER"
