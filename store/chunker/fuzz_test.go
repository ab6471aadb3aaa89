package chunker_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"coffer.dev/coffer/store/chunker"
)

// FuzzSplit's input describes a buffer block by block, so that short inputs
// make multi-block buffers with the structures that matter. Each layout
// byte is one block; its low two bits choose:
//
//	0: all zero
//	1: random data
//	2: random data whose last (b>>2)*65 bytes are zero (padding)
//	3: zero but for one byte at (b>>2)*65 (sparse)
//
// tail%BlockSize bytes follow as a short last block, random unless tail's
// top bit asks for zeros. pbits chooses the parameters; 0 is DefaultParams.
const maxFuzzBlocks = 96

func fuzzBuffer(layout []byte, tail uint16) []byte {
	layout = layout[:min(len(layout), maxFuzzBlocks)]
	buf := make([]byte, 0, len(layout)*bs+bs)
	for i, b := range layout {
		r := rand.New(rand.NewPCG(uint64(i), uint64(b)))
		arg := int(b>>2) * 65 // 0..4095
		switch b & 3 {
		case 0:
			buf = append(buf, make([]byte, bs)...)
		case 1:
			buf = append(buf, randomBlock(r, bs)...)
		case 2:
			blk := randomBlock(r, bs)
			clear(blk[bs-arg:])
			buf = append(buf, blk...)
		case 3:
			blk := make([]byte, bs)
			blk[arg] = 1
			buf = append(buf, blk...)
		}
	}
	if n := int(tail) % bs; n > 0 {
		if tail&0x8000 != 0 {
			buf = append(buf, make([]byte, n)...)
		} else {
			buf = append(buf, randomBlock(rand.New(rand.NewPCG(uint64(len(layout)), 99)), n)...)
		}
	}
	return buf
}

func fuzzParams(pbits uint32) chunker.Params {
	if pbits == 0 {
		return chunker.DefaultParams
	}
	avg := 1 << ((pbits & 7) % 5) // 1..16
	return chunker.Params{
		AvgBlocks: avg,
		MaxBlocks: avg + int((pbits>>3)&0xff)%(257-avg),
		ZeroTail:  int((pbits>>11)&0x1fff) % (bs + 1),
		Window:    8 + int(pbits>>24)*16, // 8..4088
	}
}

func splitSeeds() []fuzzSeed {
	rep := func(b byte, n int) []byte { return slices.Repeat([]byte{b}, n) }
	return []fuzzSeed{
		seed("empty", []byte{}, uint16(0), uint32(0)),
		seed("short-only", []byte{}, uint16(100), uint32(0)),
		seed("short-zero-only", []byte{}, uint16(0x8000|100), uint32(0)),
		seed("data", rep(1, 40), uint16(0), uint32(0)),
		seed("zeros", rep(0, 20), uint16(0x8000|7), uint32(0)),
		seed("padded", []byte{1, 1, 2 | 4<<2, 1, 1, 2 | 1<<2, 1, 1, 2 | 63<<2, 1}, uint16(0), uint32(0)),
		seed("sparse", []byte{3, 3 | 63<<2, 0, 0, 3 | 10<<2, 1, 1, 0}, uint16(33), uint32(0)),
		seed("disk-like", []byte{1, 1, 1, 2 | 5<<2, 0, 0, 0, 1, 1, 3, 1, 1, 1, 1, 1, 1, 2 | 1<<2, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2 | 2<<2, 0}, uint16(4000), uint32(0)),
		seed("tiny-chunks", rep(1, 30), uint16(5), uint32(0|0<<3|64<<11|0<<24)),
		seed("big-chunks", rep(1, 90), uint16(0), uint32(4|200<<3|4096<<11|3<<24)),
		seed("no-zero-tail", []byte{1, 2 | 60<<2, 1, 2 | 60<<2, 1}, uint16(0), uint32(3|9<<3|0<<11|255<<24)),
	}
}

func TestWriteFuzzSeeds(t *testing.T) {
	skipUnlessWritingSeeds(t)
	writeFuzzSeeds(t, "FuzzSplit", splitSeeds())
}

func FuzzSplit(f *testing.F) {
	addSeeds(f, splitSeeds())
	chunkers := map[chunker.Params]*chunker.Chunker{}
	f.Fuzz(func(t *testing.T, layout []byte, tail uint16, pbits uint32) {
		p := fuzzParams(pbits)
		c, ok := chunkers[p]
		if !ok {
			var err error
			if c, err = chunker.New(testKey, p); err != nil {
				t.Fatalf("%+v: %v", p, err)
			}
			if len(chunkers) > 1000 {
				clear(chunkers)
			}
			chunkers[p] = c
		}
		buf := fuzzBuffer(layout, tail)
		pieces := c.Split(nil, buf)
		if err := checkSplit(c, buf, pieces); err != nil {
			t.Fatalf("%+v: %v\npieces: %v", p, err, pieces)
		}
		if again := c.Split(nil, buf); !slices.Equal(again, pieces) {
			t.Fatalf("second split differs:\n%v\n%v", pieces, again)
		}
		if err := checkResume(c, buf, pieces); err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		const base = 1 << 40
		shifted := feedAt(c, buf, base)
		for i := range shifted {
			shifted[i].Off -= base
		}
		if !slices.Equal(shifted, pieces) {
			t.Fatalf("feeding at %d differs:\n%v\n%v", base, pieces, shifted)
		}
	})
}
