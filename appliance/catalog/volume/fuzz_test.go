package volume

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"testing"
)

// fixChecksums recomputes the GPT and LVM checksums of a mutated image,
// so that the fuzzer gets past them to the structures they guard.
func fixChecksums(img []byte) {
	le := binary.LittleEndian
	for _, h := range []int{512, len(img) - 512} {
		if h < 512 || h+92 > len(img) || !bytes.Equal(img[h:h+8], gptSignature) {
			continue
		}
		n, es, lba := int(le.Uint32(img[h+80:])), int(le.Uint32(img[h+84:])), le.Uint64(img[h+72:])
		if n <= maxGPTEntries && es <= maxGPTEntrySize && lba < uint64(len(img))/512 {
			if a := int(lba) * 512; a+n*es <= len(img) {
				le.PutUint32(img[h+88:], crc32.ChecksumIEEE(img[a:a+n*es]))
			}
		}
		if hs := int(le.Uint32(img[h+12:])); hs >= 92 && hs <= 512 {
			clear(img[h+16 : h+20])
			le.PutUint32(img[h+16:], crc32.ChecksumIEEE(img[h:h+hs]))
		}
	}
	for s := 0; s < 4 && (s+1)*512 <= len(img); s++ {
		l := img[s*512 : (s+1)*512]
		if !bytes.Equal(l[:8], lvmLabelID) {
			continue
		}
		if off := int(le.Uint32(l[20:])); off >= 32 && off+88+16 <= 512 {
			for p := l[off+40:]; len(p) >= 16; p = p[16:] { // skip data areas
				if le.Uint64(p) == 0 && le.Uint64(p[8:]) == 0 {
					p = p[16:]
					if len(p) >= 16 {
						fixMDA(img, int64(le.Uint64(p)), int64(le.Uint64(p[8:])))
					}
					break
				}
			}
		}
		le.PutUint32(l[16:], lvmCRC(l[20:]))
	}
}

func fixMDA(img []byte, off, size int64) {
	le := binary.LittleEndian
	if off < 0 || size < 1024 || off > int64(len(img)) || size > int64(len(img))-off {
		return
	}
	m := img[off : off+size]
	lo, ls := le.Uint64(m[40:]), le.Uint64(m[48:])
	if lo >= 512 && lo < uint64(size) && ls <= uint64(size)-512 {
		text := make([]byte, 0, ls)
		for i := uint64(0); i < ls; i++ {
			p := lo + i
			if p >= uint64(size) {
				p = p - uint64(size) + 512
			}
			text = append(text, m[p])
		}
		le.PutUint32(m[56:], lvmCRC(text))
	}
	le.PutUint32(m, lvmCRC(m[4:512]))
}

func smallImages(f *testing.F) [][]byte {
	gpt := sparse(f, "sg.img", 96<<10)
	run(f, "", "sgdisk", "-a", "1", "-n1:34:+20", "-t1:ef00", "-c1:esp", "-n2:60:+40", "-t2:8e00", gpt)
	mbr := sparse(f, "sm.img", 96<<10)
	run(f, "label: dos\n1,20,83\n21,100,5\n22,10,83\n33,10,82\n", "sfdisk", "-q", mbr)
	var out [][]byte
	for _, p := range []string{gpt, mbr} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	base := defaultPV("")
	out = append(out, defaultPV(vgText("vgs", base, linearLV("lin", visible, 2, 4), typedLV("t", "thin"))).build())
	return out
}

// FuzzDiscover feeds arbitrary disk images to Discover and reads every
// volume it returns.
func FuzzDiscover(f *testing.F) {
	for _, b := range smallImages(f) {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, img []byte) {
		fixChecksums(img)
		vols, _, err := Discover(context.Background(), []Disk{memDisk("f", img), memDisk("g", img)})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		for _, v := range vols {
			if v.Scheme != SchemeLVM && (v.Offset < 0 || v.Size < 0 || v.Offset+v.Size > int64(len(img))) {
				t.Fatalf("%s at %d+%d outside the %d-byte disk", v.ID, v.Offset, v.Size, len(img))
			}
			v.R.ReadAt(buf, 0)
			v.R.ReadAt(buf, max(0, v.Size-100))
		}
	})
}

// FuzzMetadata feeds arbitrary metadata text to the parser and the LV
// mapping, without the checksums that guard them on disk.
func FuzzMetadata(f *testing.F) {
	base := defaultPV("")
	f.Add([]byte(vgText("vgs", base, linearLV("lin", visible, 2, 4), typedLV("t", "thin"))))
	f.Add([]byte(`v { id = "x" seqno = 1 extent_size = 8 physical_volumes { pv0 { id = "` + dashed(synthUUID) + `" pe_start = 32 pe_count = 100 } }
logical_volumes { s { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 4 type = "striped" stripe_count = 2 stripe_size = 2 stripes = [ "pv0", 0, "pv0", 50 ] } } } }`))
	disk := make([]byte, 64<<10)
	pv := &pvInfo{disk: "f", where: "disk f", r: bytes.NewReader(disk), size: int64(len(disk)), uuid: synthUUID}
	byUUID := map[string]*pvInfo{synthUUID: pv}
	f.Fuzz(func(t *testing.T, text []byte) {
		vg, err := parseVGMetadata(text)
		if err != nil {
			return
		}
		buf := make([]byte, 8192)
		for _, lv := range vg.lvs {
			v, _, _, err := mapLV(vg, lv, byUUID)
			if err != nil || v.R == nil {
				continue
			}
			if v.Size <= 0 {
				t.Fatalf("LV %s size %d", lv.name, v.Size)
			}
			v.R.ReadAt(buf, 0)
			v.R.ReadAt(buf, v.Size/2)
			v.R.ReadAt(buf, max(0, v.Size-5000))
		}
	})
}
