#!/usr/bin/env bash
# Builds, once, the corpus of VM disk images that `make bench` measures:
#
#   corpus/diskA.img      3 GiB GPT disk: ESP 256 MiB + ext4 root (Debian
#                         bookworm with a web server and a compiler toolchain)
#   corpus/diskB.img      3 GiB GPT disk: ESP 512 MiB + swap 256 MiB + ext4
#                         root (minbase with a database server and tools)
#   corpus/diskA2.img     disk A after one day of use (logs, a database file,
#                         updated libraries, removed docs)
#   corpus/changedA2.txt  the 64 KiB changed-extent list between diskA.img and
#                         diskA2.img ("offset length" per line, bytes)
#
# Usage: tests/bench/corpus.sh [BASE]   (BASE defaults to var/bench of the repo)
#
# Every step is skipped when its stamp (corpus/.done-STEP) and its output
# exist. Outputs are built under *.part names and renamed only when complete,
# so an interrupted run leaves nothing that a later run would trust. Needs
# root, debootstrap, gdisk (sgdisk), e2fsprogs (mke2fs, debugfs, e2fsck), Go,
# and network access to the Debian mirror (BENCH_MIRROR) for the first run;
# downloaded packages are kept in BASE/debs.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
base=${1:-$repo/var/bench}
mkdir -p "$base"
base=$(cd "$base" && pwd)
corpus=$base/corpus
work=$base/work
debs=$base/debs
mirror=${BENCH_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
disk_bytes=$((3 << 30))

# Package sets. A is the bigger one (a build host that also serves web
# pages); B is a database server. Both keep the default Debian mirror layout.
pkgs_A=openssh-server,nginx-light,python3,curl,build-essential,git
variant_B=minbase
pkgs_B=postgresql,git,vim-nox,python3,rsyslog,openssh-server

log() { printf '[corpus %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, file ownership in the images)"
for t in debootstrap sgdisk mke2fs debugfs e2fsck mkswap dd truncate go; do
	command -v "$t" >/dev/null || die "missing tool: $t (apt-get install debootstrap gdisk e2fsprogs)"
done

mkdir -p "$corpus" "$work" "$debs"
exec 9>"$base/.corpus.lock"
flock -n 9 || die "another corpus build is running on $base"

# release_mounts DIR: unmounts whatever a killed debootstrap left mounted
# below DIR (proc, sys, dev binds); refuses to continue if that fails, since
# deleting DIR would then reach into the host's /dev or /proc.
mounts_below() { awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r; }
release_mounts() {
	local m
	for m in $(mounts_below "$1"); do umount "$m" 2>/dev/null || umount -l "$m" || true; done
	[ -z "$(mounts_below "$1")" ] || die "$1 still has mounts below it; not deleting it"
}
remove_tree() {
	[ -e "$1" ] || return 0
	release_mounts "$1"
	rm -rf --one-file-system "$1"
}

# Leftovers of an interrupted run are never trusted.
for p in "$work"/*.part "$corpus"/*.part; do
	[ -e "$p" ] || continue
	log "removing leftover $p"
	remove_tree "$p"
done

# part_geom DISK N: prints "FIRST_SECTOR SECTORS" of partition N.
part_geom() {
	sgdisk -i "$2" "$1" | awk '
		/^First sector:/ { first = $3 }
		/^Partition size:/ { size = $3 }
		END { if (first == "" || size == "") exit 1; print first, size }'
}

# write_at IMG DISK OFFSET: copies IMG into DISK at byte OFFSET, skipping
# all-zero blocks (DISK must be a fresh sparse file there).
write_at() {
	dd if="$1" of="$2" bs=1M seek="$3" oflag=seek_bytes conv=notrunc,sparse status=none
}

# label_disk DISK LAYOUT: a fresh sparse 3 GiB file with the GPT of LAYOUT.
# Prints the number of the root partition. (No -q: with -n it did nothing.)
label_disk() {
	local disk=$1
	rm -f "$disk"
	truncate -s "$disk_bytes" "$disk"
	case $2 in
	A)
		sgdisk -o -n 1:2048:+256M -t 1:ef00 -c 1:EFI \
			-n 2:0:0 -t 2:8304 -c 2:root "$disk" >/dev/null
		echo 2
		;;
	B)
		sgdisk -o -n 1:2048:+512M -t 1:ef00 -c 1:EFI \
			-n 2:0:+256M -t 2:8200 -c 2:swap \
			-n 3:0:0 -t 3:8304 -c 3:root "$disk" >/dev/null
		echo 3
		;;
	*) die "unknown layout $2" ;;
	esac
}

# make_rootfs NAME: debootstraps work/rootNAME (kept until its disk is built;
# it exists only once complete, being renamed from rootNAME.part).
make_rootfs() {
	local name=$1 dir=$work/root$1 variant pkgs
	if [ -d "$dir" ]; then
		log "root$name: cached in $dir"
		return
	fi
	remove_tree "$dir.part"
	eval "pkgs=\$pkgs_$name"
	variant=$(eval "echo \${variant_$name:-}")
	log "root$name: debootstrap $suite ${variant:+--variant=$variant }--include=$pkgs"
	debootstrap ${variant:+--variant=$variant} --include="$pkgs" \
		--cache-dir="$debs" "$suite" "$dir.part" "$mirror" >"$work/debootstrap-$name.log" 2>&1 ||
		{
			tail -n 20 "$work/debootstrap-$name.log" >&2
			release_mounts "$dir.part"
			die "debootstrap of root$name failed (log: $work/debootstrap-$name.log)"
		}
	release_mounts "$dir.part"
	# Clean what a real system would not carry: the apt archive cache.
	rm -f "$dir.part"/var/cache/apt/archives/*.deb
	mv "$dir.part" "$dir"
	log "root$name: $(du -sm --apparent-size "$dir" | cut -f1) MB"
}

# make_disk NAME LABEL: corpus/diskNAME.img from work/rootNAME.
make_disk() {
	local name=$1 root=$work/root$1 disk=$corpus/disk$1.img.part fs=$work/fs$1.img.part
	local part first sectors
	make_rootfs "$name"
	part=$(label_disk "$disk" "$name")
	read -r first sectors < <(part_geom "$disk" "$part") || die "no partition $part on $disk"
	rm -f "$fs"
	truncate -s $((sectors * 512)) "$fs"
	mke2fs -q -t ext4 -b 4096 -d "$root" -L "$2" "$fs" $((sectors * 512 / 4096)) ||
		die "mke2fs of disk $name failed"
	e2fsck -fn "$fs" >"$work/e2fsck-$name.log" 2>&1 || die "fresh fs of disk $name is not clean"
	write_at "$fs" "$disk" $((first * 512))
	rm -f "$fs"
	if [ "$name" = B ]; then # a swap signature in the swap partition
		local swap=$work/swapB.img.part sfirst ssectors
		read -r sfirst ssectors < <(part_geom "$disk" 2)
		truncate -s $((ssectors * 512)) "$swap"
		mkswap -L swap "$swap" >/dev/null 2>&1 || die "mkswap failed"
		write_at "$swap" "$disk" $((sfirst * 512))
		rm -f "$swap"
	fi
	sync "$disk"
	mv "$disk" "$corpus/disk$name.img"
	[ -n "${BENCH_KEEP_WORK:-}" ] || remove_tree "$root"
}

build_diskA() { make_disk A vm-a-root; }
build_diskB() { make_disk B vm-b-root; }

# gen_log FILE SEED BYTES: deterministic application-log text.
gen_log() {
	awk -v seed="$2" -v want="$3" 'BEGIN {
		srand(seed)
		split("GET GET GET GET POST POST PUT DELETE", meth, " ")
		split("orders items users carts invoices search health metrics", res, " ")
		split("200 200 200 200 200 200 201 204 304 400 404 500", st, " ")
		split("info info info info info warn debug error", lvl, " ")
		t = 1715644800 + seed * 3600
		while (n < want) {
			t += rand() * 0.4
			s = int(t); ms = int((t - s) * 1000)
			line = sprintf("2024-05-14T%02d:%02d:%02d.%03dZ vm-a app-api[%d]: level=%s req=%08x%04x method=%s path=/api/v1/%s/%d status=%s bytes=%d dur_ms=%d user=u%05d",
				int(s / 3600) % 24, int(s / 60) % 60, s % 60, ms, 2800 + seed,
				lvl[int(rand() * 8) + 1], int(rand() * 2147483647), int(rand() * 65535),
				meth[int(rand() * 8) + 1], res[int(rand() * 8) + 1], int(rand() * 100000),
				st[int(rand() * 12) + 1], int(rand() * 65536), int(rand() * rand() * 2000),
				int(rand() * 50000))
			print line
			n += length(line) + 1
		}
	}' >"$1"
}

# list_files FS DIR MIN MAX: regular files directly in DIR of the image, with
# sizes in [MIN, MAX] and plain names, sorted by name.
list_files() {
	debugfs -R "ls -p $2" "$1" 2>/dev/null | awk -F/ -v min="$3" -v max="$4" '
		$3 ~ /^100/ && $7 + 0 >= min && $7 + 0 <= max && $6 ~ /^[A-Za-z0-9._+-]+$/ { print $6 }' | sort
}

# pick N: every k-th line of stdin so that about N lines are chosen.
pick() { awk -v n="$1" '{ l[NR] = $0 } END { if (NR == 0) exit; k = NR / n; if (k < 1) k = 1; for (i = 1; i <= NR && c < n; i += k) { print l[int(i)]; c++ } }'; }

# build_diskA2: disk A after a day of use, applied with debugfs.
build_diskA2() {
	local d=$work/day2.part fs first sectors f i n
	rm -f "$corpus/.done-changedA2"
	remove_tree "$d"
	mkdir -p "$d/logs" "$d/lib" "$d/doc"
	fs=$d/fs.img
	read -r first sectors < <(part_geom "$corpus/diskA.img" 2)
	dd if="$corpus/diskA.img" of="$fs" bs=1M skip=$((first * 512)) count=$((sectors * 512)) \
		iflag=skip_bytes,count_bytes conv=sparse status=none
	truncate -s $((sectors * 512)) "$fs"

	local cmds=$d/cmds
	: >"$cmds"
	# 1. ~100 files removed under /usr/share/doc (changelogs, copyrights).
	debugfs -R "rdump /usr/share/doc $d/doc" "$fs" >/dev/null 2>&1 || die "rdump /usr/share/doc failed"
	(cd "$d/doc" && find doc -type f | grep -E '^[A-Za-z0-9./_+-]+$' | sort | pick 100) |
		while read -r f; do echo "rm /usr/share/$f"; done >>"$cmds"
	[ "$(grep -c '^rm ' "$cmds")" -ge 90 ] || die "too few files found under /usr/share/doc"

	# 2. ~50 files under /usr/lib replaced by updated versions: the same
	#    content with 512 bytes changed in the middle and 1-8 KiB appended.
	local dir dumps=$d/dumps
	: >"$dumps"
	n=0
	for dir in /usr/lib/x86_64-linux-gnu /usr/lib/python3.11 /usr/lib/gcc/x86_64-linux-gnu/12; do
		for f in $(list_files "$fs" "$dir" 16384 8388608 | pick 17); do
			n=$((n + 1))
			echo "dump -p $dir/$f $d/lib/$n" >>"$dumps"
			printf 'rm %s/%s\ncd %s\nwrite %s/lib/%s %s\n' "$dir" "$f" "$dir" "$d" "$n" "$f" >>"$cmds"
		done
	done
	[ "$n" -ge 45 ] || die "too few files found under /usr/lib ($n)"
	debugfs -f "$dumps" "$fs" >"$d/dumps.log" 2>&1
	for i in $(seq 1 "$n"); do
		f=$d/lib/$i
		[ -s "$f" ] || die "dump of file $i failed (see $d/dumps.log)"
		head -c 512 /dev/urandom | dd of="$f" bs=512 seek=$(($(stat -c %s "$f") / 2 / 512)) conv=notrunc status=none
		head -c $((1024 * (1 + i % 8))) /dev/urandom | base64 >>"$f"
	done

	# 3. ~40 MB of new application logs in a new directory.
	echo "mkdir /var/log/app" >>"$cmds"
	echo "cd /var/log/app" >>"$cmds"
	for i in $(seq -w 1 20); do
		gen_log "$d/logs/api-$i.log" "$((10#$i))" 2000000
		echo "write $d/logs/api-$i.log api-$i.log" >>"$cmds"
	done

	# 4. A 16 MiB database file of random pages.
	head -c $((16 << 20)) /dev/urandom >"$d/orders.db"
	printf 'mkdir /var/lib/appdb\ncd /var/lib/appdb\nwrite %s orders.db\n' "$d/orders.db" >>"$cmds"

	debugfs -w -f "$cmds" "$fs" >"$d/debugfs.log" 2>&1 || die "debugfs failed (see $d/debugfs.log)"
	# debugfs exits 0 even when a command fails: every output line must be an
	# echoed command or an inode allocation notice.
	if grep -vE '^(debugfs [0-9.]+ \(|debugfs: |Allocated inode: |$)' "$d/debugfs.log" >&2; then
		die "debugfs reported errors (see $d/debugfs.log)"
	fi
	e2fsck -fn "$fs" >"$d/e2fsck.log" 2>&1 || die "day-2 fs is not clean (see $d/e2fsck.log)"

	# Same disk, same GPT: copy the label regions of disk A, then the new fs.
	local disk=$corpus/diskA2.img.part pend=$(((first + sectors) * 512))
	rm -f "$disk"
	truncate -s "$disk_bytes" "$disk"
	dd if="$corpus/diskA.img" of="$disk" bs=1M count=$((first * 512)) iflag=count_bytes \
		conv=notrunc,sparse status=none
	dd if="$corpus/diskA.img" of="$disk" bs=1M skip="$pend" seek="$pend" iflag=skip_bytes \
		oflag=seek_bytes conv=notrunc,sparse status=none
	write_at "$fs" "$disk" $((first * 512))
	sync "$disk"
	mv "$disk" "$corpus/diskA2.img"
	remove_tree "$d"
}

build_changedA2() {
	local out=$corpus/changedA2.txt.part
	(cd "$repo" && go run ./tests/bench/cmd/cbtdiff -block 65536 -o "$out" \
		"$corpus/diskA.img" "$corpus/diskA2.img")
	mv "$out" "$corpus/changedA2.txt"
}

# step NAME OUTPUT INVALIDATES...: runs build_NAME unless done; a rebuilt step
# drops the stamps of the steps that were made from its output.
step() {
	local name=$1 out=$2 t0=$SECONDS s
	shift 2
	if [ -e "$corpus/.done-$name" ] && [ -e "$out" ]; then
		log "$name: cached"
		return
	fi
	rm -f "$corpus/.done-$name"
	for s; do rm -f "$corpus/.done-$s"; done
	log "$name: building"
	"build_$name"
	[ -e "$out" ] || die "$name did not produce $out"
	touch "$corpus/.done-$name"
	log "$name: done in $((SECONDS - t0))s"
}

t_all=$SECONDS
step diskA "$corpus/diskA.img" diskA2 changedA2
step diskB "$corpus/diskB.img"
step diskA2 "$corpus/diskA2.img" changedA2
step changedA2 "$corpus/changedA2.txt"

for f in diskA.img diskB.img diskA2.img; do
	log "$f: $(($(stat -c %s "$corpus/$f") >> 20)) MiB apparent, $(($(stat -c %b "$corpus/$f") * 512 >> 20)) MiB allocated"
done
log "changedA2.txt: $(wc -l <"$corpus/changedA2.txt") extents, $(awk '{ s += $2 } END { printf "%.1f", s / 1048576 }' "$corpus/changedA2.txt") MiB"
log "corpus ready in $((SECONDS - t_all))s: $corpus"
