package xfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"coffer.dev/coffer/appliance/catalog/fsys"
	"coffer.dev/coffer/appliance/catalog/fsys/fsystest"
)

// TestRemoteSymlink checks symlinks whose targets live in blocks (with
// the v5 header), spanning two blocks on a 1 KiB-block filesystem.
func TestRemoteSymlink(t *testing.T) {
	target := "/" + strings.Repeat("remote-symlink-component/", 39) + "end" // 1000 bytes
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"v5-4k", nil},
		{"v5-1k", []string{"-b", "size=1024"}},
		{"v4-1k", []string{"-m", "crc=0", "-b", "size=1024"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Symlink(target, filepath.Join(dir, "remote")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("short", filepath.Join(dir, "inline")); err != nil {
				t.Fatal(err)
			}
			img := mkfs(t, dir, 300<<20, tc.args...)
			r, size := fsystest.OpenImage(t, img)
			fs, err := Open(r, size)
			if err != nil {
				t.Fatal(err)
			}
			ents := walkAll(t, fs)
			for name, want := range map[string]string{"/remote": target, "/inline": "short"} {
				e := ents[name]
				if e == nil || e.Type != fsys.TypeSymlink || e.Target != want || e.Size != int64(len(want)) {
					t.Errorf("%s: %+v, want a symlink to %d bytes", name, e, len(want))
				}
			}
			in, err := fs.readInode(ents["/remote"].Ref)
			if err != nil || in.format != fmtExtents {
				t.Fatalf("remote symlink is not in blocks: %v", err)
			}
			if !fs.crc {
				return
			}
			// mkfs.xfs 6.1 leaves out the v5 header (the fallback read
			// it above); write the blocks as the kernel does and read
			// again, then damage the header's CRC.
			exts, err := fs.extents(in)
			if err != nil {
				t.Fatal(err)
			}
			bs := int(fs.sb.blockSize)
			per := bs - symlinkHeader
			nblk := (len(target) + per - 1) / per
			mapped := 0
			for _, e := range exts {
				mapped += int(e.count)
			}
			if mapped < nblk {
				return // mkfs allocated too few blocks for the headers
			}
			img2 := make([]byte, nblk*bs)
			for i := 0; i < nblk; i++ {
				b := img2[i*bs : (i+1)*bs]
				part := target[i*per : min(len(target), (i+1)*per)]
				copy(b, "XSLM")
				binary.BigEndian.PutUint32(b[4:], uint32(i*per))
				binary.BigEndian.PutUint32(b[8:], uint32(len(part)))
				copy(b[16:32], fs.sb.uuid[:])
				binary.BigEndian.PutUint64(b[32:], in.ino)
				copy(b[symlinkHeader:], part)
				binary.LittleEndian.PutUint32(b[12:], crcOf(b[:symlinkHeader+len(part)], 12))
			}
			w, err := os.OpenFile(img, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			writeBlocks := func(data []byte) {
				for i := 0; i < nblk; i++ {
					k := searchExtent(exts, uint64(i))
					off, err := fs.blockOffset(exts[k].fsb + uint64(i) - exts[k].off)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := w.WriteAt(data[i*bs:(i+1)*bs], off); err != nil {
						t.Fatal(err)
					}
				}
			}
			writeBlocks(img2)
			fs2, err := Open(r, size)
			if err != nil {
				t.Fatal(err)
			}
			if e := walkAll(t, fs2)["/remote"]; e == nil || e.Target != target {
				t.Errorf("remote symlink with headers: %+v", e)
			}
			img2[symlinkHeader+5] ^= 1
			writeBlocks(img2)
			fs3, _ := Open(r, size)
			err = fs3.Walk(context.Background(), func(*fsys.Entry) error { return nil })
			if err == nil || !strings.Contains(err.Error(), "/remote: symlink inode") || !strings.Contains(err.Error(), "CRC") {
				t.Errorf("damaged remote symlink: walk = %v", err)
			}
		})
	}
}

func packExtent(e extent) []byte {
	b := make([]byte, 16)
	l0 := e.off<<9 | e.fsb>>43
	if e.unwritten {
		l0 |= 1 << 63
	}
	binary.BigEndian.PutUint64(b, l0)
	binary.BigEndian.PutUint64(b[8:], e.fsb<<21|e.count)
	return b
}

// synthFS is a v5 filesystem of one AG of 1024 blocks of 4 KiB held in
// memory, for hand-built metadata that mkfs does not produce (block map
// b-trees of fragmented files).
func synthFS(vol []byte) *FS {
	sb := &superblock{blockSize: 4096, blockLog: 12, agBlocks: 1024, agBlkLog: 10, agCount: 1, dblocks: 1024,
		inodeSize: 512, inodeLog: 9, inoPBlock: 8, inoPBLog: 3, sectSize: 512, sectLog: 9}
	r := bytes.NewReader(vol)
	return &FS{r: r, size: int64(len(vol)), sb: sb, crc: true, ftype: true, dirBlk: 4096, inodeCore: 176,
		cache: newBlockCache(r, int64(len(vol)), 16)}
}

// bmbtLeaf writes a v5 block map leaf at fsb holding exts.
func bmbtLeaf(vol []byte, fsb uint64, owner uint64, level uint16, recs [][]byte) {
	b := vol[fsb*4096 : (fsb+1)*4096]
	copy(b, "BMA3")
	binary.BigEndian.PutUint16(b[4:], level)
	binary.BigEndian.PutUint16(b[6:], uint16(len(recs)))
	binary.BigEndian.PutUint64(b[56:], owner)
	for i, r := range recs {
		copy(b[72+i*16:], r)
	}
	binary.LittleEndian.PutUint32(b[64:], crcOf(b, 64))
}

func TestBtreeExtentMap(t *testing.T) {
	const ino = 99
	vol := make([]byte, 1024*4096)
	// 40 one-block extents with a hole between each, the odd ones
	// unwritten; data block i holds byte i+1.
	var exts []extent
	for i := uint64(0); i < 40; i++ {
		e := extent{off: 2 * i, fsb: 100 + i, count: 1, unwritten: i%2 == 1}
		exts = append(exts, e)
		copy(vol[(100+i)*4096:], bytes.Repeat([]byte{byte(i + 1)}, 4096))
	}
	var recs [][]byte
	for _, e := range exts {
		recs = append(recs, packExtent(e))
	}
	bmbtLeaf(vol, 10, ino, 0, recs[:25])
	bmbtLeaf(vol, 11, ino, 0, recs[25:])
	// Root in the inode: level 1, two pointers.
	fork := make([]byte, 336)
	maxrecs := (len(fork) - 4) / 16
	binary.BigEndian.PutUint16(fork, 1)
	binary.BigEndian.PutUint16(fork[2:], 2)
	binary.BigEndian.PutUint64(fork[4:], 0)
	binary.BigEndian.PutUint64(fork[12:], 50)
	binary.BigEndian.PutUint64(fork[4+maxrecs*8:], 10)
	binary.BigEndian.PutUint64(fork[4+maxrecs*8+8:], 11)
	fs := synthFS(vol)
	in := &inode{ino: ino, format: fmtBtree, nextents: 40, fork: fork, size: 80 * 4096}

	got, err := fs.extents(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 40 || got[39] != exts[39] || got[0] != exts[0] {
		t.Fatalf("extents %v", got[:min(3, len(got))])
	}
	f, err := fs.mappedFile(int64(in.size), got)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		t.Fatal(err)
	}
	for blk := 0; blk < 80; blk++ {
		want := byte(0)
		if i := blk / 2; blk%2 == 0 && i%2 == 0 {
			want = byte(i + 1)
		}
		if b := data[blk*4096 : (blk+1)*4096]; !bytes.Equal(b, bytes.Repeat([]byte{want}, 4096)) {
			t.Fatalf("block %d: got %d, want %d", blk, b[0], want)
		}
	}

	for _, tc := range []struct {
		name   string
		damage func(vol, fork []byte, in *inode)
		want   string
	}{
		{"wrong owner", func(vol, fork []byte, in *inode) { in.ino = 98 }, "owned by inode"},
		{"bad CRC", func(vol, fork []byte, in *inode) { vol[10*4096+80] ^= 1 }, "CRC mismatch"},
		{"too many records", func(vol, fork []byte, in *inode) { in.nextents = 39 }, "more records"},
		{"pointer outside", func(vol, fork []byte, in *inode) { binary.BigEndian.PutUint64(fork[4+maxrecs*8:], 5000) }, "outside"},
		{"root level too deep", func(vol, fork []byte, in *inode) { binary.BigEndian.PutUint16(fork, 200) }, "bad root"},
		{"self loop", func(vol, fork []byte, in *inode) {
			bmbtLeaf(vol, 10, ino, 1, [][]byte{make([]byte, 16)})
			b := vol[10*4096:]
			binary.BigEndian.PutUint64(b[72+((4096-72)/16)*8:], 10)
			binary.LittleEndian.PutUint32(b[64:], crcOf(b[:4096], 64))
		}, "level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := bytes.Clone(vol)
			fk := bytes.Clone(fork)
			in2 := *in
			in2.fork = fk
			tc.damage(v, fk, &in2)
			_, err := synthFS(v).extents(&in2)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("extents = %v, want error with %q", err, tc.want)
			}
		})
	}
}

// zeroExtended is a volume of size bytes whose first len(b) bytes are b
// and the rest zeros.
type zeroExtended struct {
	b    []byte
	size int64
}

func (z zeroExtended) ReadAt(p []byte, off int64) (int, error) {
	if off >= z.size {
		return 0, io.EOF
	}
	n := len(p)
	var err error
	if int64(n) > z.size-off {
		n, err = int(z.size-off), io.EOF
	}
	clear(p[:n])
	if off < int64(len(z.b)) {
		copy(p[:n], z.b[off:])
	}
	return n, err
}

// FuzzImage feeds mutated copies of the start of a small real image
// (superblock, AG headers, inode chunks, directory blocks) to Open,
// Walk, Open of every file and Check.
func FuzzImage(f *testing.F) {
	dir := f.TempDir()
	for i := 0; i < 3; i++ {
		os.WriteFile(filepath.Join(dir, "f"+strings.Repeat("x", i)), bytes.Repeat([]byte{'a'}, i*5000), 0o644)
	}
	// Subdirectories would go to other AGs, beyond the seed: the root
	// itself is made multi-block.
	for i := 0; i < 120; i++ {
		os.WriteFile(filepath.Join(dir, strings.Repeat("n", 1+i%60)+string(rune('a'+i%26))+string(rune('a'+i/26))), nil, 0o644)
	}
	os.Symlink(strings.Repeat("t/", 300), filepath.Join(dir, "link"))
	for _, args := range [][]string{nil, {"-m", "crc=0"}} {
		img := mkfs(f, dir, 300<<20, args...)
		// Keep up to the last non-zero byte of the first 512 KiB.
		r, _ := fsystest.OpenImage(f, img)
		b := make([]byte, 512<<10)
		if _, err := r.ReadAt(b, 0); err != nil {
			f.Fatal(err)
		}
		b = b[:len(bytes.TrimRight(b, "\x00"))]
		// The seed must hold the whole tree.
		fs, err := Open(zeroExtended{b, 300 << 20}, 300<<20)
		if err != nil {
			f.Fatal(err)
		}
		n := 0
		if err := fs.Walk(context.Background(), func(*fsys.Entry) error { n++; return nil }); err != nil || n != 1+3+1+120 {
			f.Fatalf("seed of %d bytes: walk %v, %d entries", len(b), err, n)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, err := Open(zeroExtended{data, 300 << 20}, 300<<20)
		if err != nil {
			return
		}
		fs.Walk(context.Background(), func(e *fsys.Entry) error {
			if e.Type == fsys.TypeFile {
				if fl, err := fs.Open(e); err == nil {
					p := make([]byte, 4096)
					fl.ReadAt(p, 0)
				}
			}
			return nil
		})
		fs.Check(context.Background())
	})
}

// dirShape reports how directory in stores its entries: the data fork
// format, the number of extents and the number of directory blocks in
// the leaf range (1: leaf form, more: node form).
func dirShape(t *testing.T, fs *FS, in *inode) (format uint8, nextents int, leafDirBlocks uint64) {
	t.Helper()
	exts, err := fs.extents(in)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := uint64(leafOffset)>>fs.sb.blockLog, uint64(2*leafOffset)>>fs.sb.blockLog
	var n uint64
	for _, e := range exts {
		if e.off >= lo && e.off < hi {
			n += min(e.off+e.count, hi) - e.off
		}
	}
	return in.format, len(exts), n >> fs.sb.dirBlkLog
}

// TestLargeDirectories builds directories that mkfs stores in node form
// and, with a data block per file interleaved with the directory's own
// blocks, in b-tree form.
func TestLargeDirectories(t *testing.T) {
	src := t.TempDir()
	one := filepath.Join(src, "one")
	if err := os.WriteFile(one, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(src, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	long := func(i int) string { return fmt.Sprintf("%s-%05d", strings.Repeat("long-name-", 20), i) }
	short := func(i int) string { return fmt.Sprintf("n%05d", i) }
	var b strings.Builder
	b.WriteString("large\n0 0\nd--755 0 0\n")
	const nNode, nBtree = 1200, 2000
	b.WriteString(" node d--755 0 0\n")
	for i := 0; i < nNode; i++ {
		fmt.Fprintf(&b, "  %s ---644 0 0 %s\n", short(i), empty)
	}
	b.WriteString(" $\n btree d--755 0 0\n")
	for i := 0; i < nBtree; i++ {
		fmt.Fprintf(&b, "  %s ---644 0 0 %s\n", long(i), one)
	}
	b.WriteString(" $\n$\n")
	proto := filepath.Join(src, "proto")
	if err := os.WriteFile(proto, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{nil, {"-i", "nrext64=1"}, {"-m", "crc=0"}} {
		t.Run(strings.Join(append([]string{"mkfs"}, args...), " "), func(t *testing.T) {
			testLargeDirectories(t, src, proto, args, nNode, nBtree, short, long)
		})
	}
}

func testLargeDirectories(t *testing.T, src, proto string, args []string, nNode, nBtree int, short, long func(int) string) {
	img := filepath.Join(t.TempDir(), "large.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 300<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.xfs", append(append([]string{"-q", "-f", "-p", proto}, args...), img)...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v\n%s", err, out)
	}
	r, size := fsystest.OpenImage(t, img)
	fs, err := Open(r, size)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	ents := map[string]*fsys.Entry{}
	if err := fs.Walk(context.Background(), func(e *fsys.Entry) error {
		order = append(order, e.Path)
		c := *e
		ents[e.Path] = &c
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(order) != 1+2+nNode+nBtree {
		t.Fatalf("walked %d entries", len(order))
	}
	// v4 inodes (256 bytes) hold fewer extents: the node directory is
	// in b-tree form there.
	nodeFormat := uint8(fmtExtents)
	if len(args) > 0 && args[1] == "crc=0" {
		nodeFormat = fmtBtree
	}
	for _, tc := range []struct {
		dir    string
		n      int
		name   func(int) string
		format uint8
		size   int64
	}{
		{"/node", nNode, short, nodeFormat, 0},
		{"/btree", nBtree, long, fmtBtree, 1},
	} {
		in, err := fs.readInode(ents[tc.dir].Ref)
		if err != nil {
			t.Fatal(err)
		}
		format, nexts, leafBlocks := dirShape(t, fs, in)
		t.Logf("%s: format %d, %d extents, %d leaf-range directory blocks", tc.dir, format, nexts, leafBlocks)
		if format != tc.format || leafBlocks < 2 {
			t.Errorf("%s: format %d with %d leaf-range blocks, want format %d in node form", tc.dir, format, leafBlocks, tc.format)
		}
		for i := 0; i < tc.n; i++ {
			e := ents[tc.dir+"/"+tc.name(i)]
			if e == nil || e.Type != fsys.TypeFile || e.Size != tc.size {
				t.Fatalf("%s: entry %d: %+v", tc.dir, i, e)
			}
		}
	}
}

// TestInode64 puts directories in the AGs of a sparse 4 TiB image, where
// inode numbers pass 2^32 (short-form directories with 8-byte inode
// numbers) and data lies terabytes into the volume.
func TestInode64(t *testing.T) {
	src := t.TempDir()
	content := bytes.Repeat([]byte("inode64 "), 1000)
	srcFile := filepath.Join(src, "content")
	if err := os.WriteFile(srcFile, content, 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("i64\n0 0\nd--755 0 0\n")
	for _, d := range []string{"a", "b", "c", "d"} {
		fmt.Fprintf(&b, " %s d--755 0 0\n  file ---644 0 0 %s\n $\n", d, srcFile)
	}
	b.WriteString(" cdev c--644 0 0 1 3\n bdev b--600 0 0 8 0\n fifo p--640 0 0\n$\n")
	proto := filepath.Join(src, "proto")
	if err := os.WriteFile(proto, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(src, "i64.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 4<<40); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.xfs", "-q", "-f", "-l", "size=64m", "-p", proto, img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v\n%s", err, out)
	}
	r, size := fsystest.OpenImage(t, img)
	fs, err := Open(r, size)
	if err != nil {
		t.Fatal(err)
	}
	ents := walkAll(t, fs)
	if len(ents) != 12 {
		t.Fatalf("walked %d entries", len(ents))
	}
	for p, want := range map[string]struct {
		typ  fsys.EntryType
		mode uint32
	}{"/cdev": {fsys.TypeCharDevice, 0o644}, "/bdev": {fsys.TypeBlockDevice, 0o600}, "/fifo": {fsys.TypeFIFO, 0o640}} {
		if e := ents[p]; e == nil || e.Type != want.typ || e.Mode != want.mode {
			t.Errorf("%s: %+v, want %s %o", p, e, want.typ, want.mode)
		}
	}
	big := 0
	for _, d := range []string{"a", "b", "c", "d"} {
		e := ents["/"+d+"/file"]
		if e == nil {
			t.Fatalf("no /%s/file", d)
		}
		if ents["/"+d].Ref > 1<<32 {
			big++
		}
		f, err := fs.Open(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
		if err != nil || !bytes.Equal(got, content) {
			t.Errorf("/%s/file: content differs (%v)", d, err)
		}
	}
	if big == 0 {
		t.Errorf("no inode number above 2^32: %v", ents)
	}
	if findings, err := fs.Check(context.Background()); err != nil || len(findings) > 0 {
		t.Errorf("check: %v %q", err, findings)
	}
}

// FuzzParsers feeds arbitrary bytes to the inode, short-form directory,
// directory data block and block map parsers of a v4 (no CRC)
// in-memory filesystem, where nothing is screened out by checksums.
func FuzzParsers(f *testing.F) {
	sf := []byte{2, 0, 0, 0, 0, 128, 1, 0, 48, 'a', 1, 0, 0, 0, 131, 2, 0, 64, 'b', 'c', 2, 0, 0, 0, 132}
	f.Add(sf)
	blk := make([]byte, 64)
	copy(blk, "XD2B")
	binary.BigEndian.PutUint64(blk[16:], 131)
	blk[24] = 3
	copy(blk[25:], "abc")
	f.Add(blk)
	ino := make([]byte, 256)
	copy(ino, "IN")
	binary.BigEndian.PutUint16(ino[2:], sIFDIR|0o755)
	ino[4], ino[5] = 2, fmtLocal
	binary.BigEndian.PutUint64(ino[56:], uint64(len(sf)))
	copy(ino[100:], sf)
	f.Add(ino)
	f.Fuzz(func(t *testing.T, data []byte) {
		vol := make([]byte, 1024*4096)
		copy(vol[20*4096:], data)
		fs := synthFS(vol)
		fs.crc, fs.inodeCore, fs.sb.inodeSize, fs.sb.inodeLog, fs.sb.inoPBlock, fs.sb.inoPBLog = false, 100, 256, 8, 16, 4
		noop := func(dirent) error { return nil }
		b := make([]byte, 256)
		copy(b, data)
		if in, err := fs.parseInode(7, b); err == nil {
			if in.mode&sIFMT == sIFDIR {
				fs.readDir(in, noop)
			}
			if in.mode&sIFMT == sIFLNK {
				fs.symlink(in)
			}
			if exts, err := fs.extents(in); err == nil {
				if fl, err := fs.mappedFile(int64(in.size), exts); err == nil {
					fl.ReadAt(make([]byte, 8192), 0)
				}
			}
		}
		fs.shortformDir(&inode{ino: 7, size: uint64(len(data)), fork: data})
		db := make([]byte, 4096)
		copy(db, data)
		fs.dataBlock(&inode{ino: 7}, 1, db, noop)
		copy(db, "XD2D")
		fs.dataBlock(&inode{ino: 7}, 1, db, noop)
		// As a b-tree root pointing at itself in block 20.
		in := &inode{ino: 7, format: fmtBtree, nextents: 100, fork: data}
		fs.extents(in)
	})
}
