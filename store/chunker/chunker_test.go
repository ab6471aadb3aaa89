package chunker_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"coffer.dev/coffer/store/chunker"
)

// diskLike returns n blocks that look like a disk: runs of random data,
// zero runs, blocks ending in zero padding, and a few sparse blocks.
func diskLike(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	var b []byte
	for len(b) < n*bs {
		switch r.IntN(6) {
		case 0:
			b = append(b, make([]byte, bs*(1+r.IntN(5)))...)
		case 1:
			blk := randomBlock(r, bs)
			clear(blk[bs-64-r.IntN(2000):])
			b = append(b, blk...)
		case 2:
			blk := make([]byte, bs)
			blk[r.IntN(bs)] = 1
			b = append(b, blk...)
		default:
			for range 1 + r.IntN(40) {
				b = append(b, randomBlock(r, bs)...)
			}
		}
	}
	return b[:n*bs]
}

func TestParamsValidate(t *testing.T) {
	for _, p := range []chunker.Params{
		chunker.DefaultParams,
		{AvgBlocks: 1, MaxBlocks: 1, ZeroTail: 0, Window: 8},
		{AvgBlocks: 256, MaxBlocks: 256, ZeroTail: bs, Window: bs},
		{AvgBlocks: 4, MaxBlocks: 7, ZeroTail: 1, Window: 100},
	} {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
		if _, err := chunker.New(testKey, p); err != nil {
			t.Errorf("New(%+v): %v", p, err)
		}
	}
	for _, p := range []chunker.Params{
		{},
		{AvgBlocks: 0, MaxBlocks: 16, ZeroTail: 64, Window: 64},
		{AvgBlocks: -8, MaxBlocks: 16, ZeroTail: 64, Window: 64},
		{AvgBlocks: 3, MaxBlocks: 16, ZeroTail: 64, Window: 64},
		{AvgBlocks: 12, MaxBlocks: 16, ZeroTail: 64, Window: 64},
		{AvgBlocks: 8, MaxBlocks: 7, ZeroTail: 64, Window: 64},
		{AvgBlocks: 8, MaxBlocks: 257, ZeroTail: 64, Window: 64},
		{AvgBlocks: 512, MaxBlocks: 512, ZeroTail: 64, Window: 64},
		{AvgBlocks: 8, MaxBlocks: 16, ZeroTail: -1, Window: 64},
		{AvgBlocks: 8, MaxBlocks: 16, ZeroTail: bs + 1, Window: 64},
		{AvgBlocks: 8, MaxBlocks: 16, ZeroTail: 64, Window: 7},
		{AvgBlocks: 8, MaxBlocks: 16, ZeroTail: 64, Window: bs + 1},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v: accepted", p)
		}
		if c, err := chunker.New(testKey, p); err == nil || c != nil {
			t.Errorf("New(%+v): accepted", p)
		}
	}
}

func TestIsZero(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 63, 64, 65, 127, 128, 4095, 4096} {
		b := make([]byte, n)
		if !chunker.IsZero(b) {
			t.Fatalf("%d zeros: not zero", n)
		}
		for i := range n {
			b[i] = 0x80
			if chunker.IsZero(b) {
				t.Fatalf("%d bytes with byte %d set: zero", n, i)
			}
			b[i] = 0
		}
	}
}

func TestSplitInvariants(t *testing.T) {
	for _, p := range []chunker.Params{
		chunker.DefaultParams,
		{AvgBlocks: 1, MaxBlocks: 1, ZeroTail: 0, Window: 8},
		{AvgBlocks: 2, MaxBlocks: 3, ZeroTail: 1, Window: 4096},
		{AvgBlocks: 64, MaxBlocks: 256, ZeroTail: bs, Window: 64},
	} {
		c := newChunker(t, testKey, p)
		for seed := range uint64(4) {
			buf := diskLike(seed, 600)
			for _, cut := range []int{len(buf), len(buf) - 1, len(buf) - bs + 1, 5*bs + 17} {
				b := buf[:cut]
				pieces := c.Split(nil, b)
				if err := checkSplit(c, b, pieces); err != nil {
					t.Fatalf("%+v, seed %d, %d bytes: %v", p, seed, cut, err)
				}
			}
		}
	}
}

func TestSplitDeterministic(t *testing.T) {
	buf := diskLike(7, 2000)
	a := newChunker(t, testKey, chunker.DefaultParams)
	b := newChunker(t, append([]byte(nil), testKey...), chunker.DefaultParams)
	pa := a.Split(nil, buf)
	if len(pa) < 100 {
		t.Fatalf("only %d pieces", len(pa))
	}
	if pb := b.Split(nil, buf); !slices.Equal(pa, pb) {
		t.Fatal("two chunkers with the same key and parameters disagree")
	}
	if again := a.Split(nil, buf); !slices.Equal(pa, again) {
		t.Fatal("splitting twice disagrees")
	}
	// Split appends.
	prefix := []chunker.Piece{{Off: -1, Len: 99}}
	if got := a.Split(slices.Clone(prefix), buf); !slices.Equal(got, append(prefix, pa...)) {
		t.Fatal("Split does not append to dst")
	}
	// Another key cuts elsewhere: chunk lengths depend on the key.
	other := newChunker(t, []byte("another key"), chunker.DefaultParams).Split(nil, buf)
	if slices.Equal(pa, other) {
		t.Fatal("another key gives the same pieces")
	}
	// Another window too.
	p := chunker.DefaultParams
	p.Window = 32
	if slices.Equal(pa, newChunker(t, testKey, p).Split(nil, buf)) {
		t.Fatal("another window gives the same pieces")
	}
}

func TestChunkSizes(t *testing.T) {
	// Random data (no padding, no zeros): chunks of 1 to MaxBlocks blocks,
	// mostly past AvgBlocks thanks to normalisation.
	c := newChunker(t, testKey, chunker.DefaultParams)
	r := rand.New(rand.NewPCG(3, 3))
	buf := randomBlock(r, 8000*bs)
	for off := 0; off < len(buf); off += bs {
		buf[off] |= 1 // no zero blocks
	}
	pieces := c.Split(nil, buf)
	if err := checkSplit(c, buf, pieces); err != nil {
		t.Fatal(err)
	}
	var hist [17]int
	for _, pc := range pieces {
		if pc.Zero {
			t.Fatal("zero piece in random data")
		}
		hist[pc.Len/bs]++
	}
	avg := float64(len(buf)) / float64(len(pieces)) / bs
	t.Logf("average chunk %.2f blocks, sizes %v", avg, hist)
	if avg < 4 || avg > 12 {
		t.Errorf("average chunk of %.2f blocks", avg)
	}
	if hist[chunker.DefaultParams.MaxBlocks] == 0 || hist[1] == 0 {
		t.Errorf("sizes are not spread: %v", hist)
	}
}

func TestZeroTailRule(t *testing.T) {
	c := newChunker(t, testKey, chunker.DefaultParams)
	p := chunker.DefaultParams
	p.ZeroTail = 0
	off := newChunker(t, testKey, p) // the same chunker without the rule
	r := rand.New(rand.NewPCG(5, 5))
	for n := 1; n < p.MaxBlocks; n++ {
		blk := randomBlock(r, bs)
		clear(blk[bs-64:])
		if !c.CutAfter(blk, n) {
			t.Fatalf("a block whose last 64 bytes are zero does not end a chunk of %d blocks", n)
		}
		// One non-zero byte in the tail: the hash decides, as without the rule.
		blk[bs-64+r.IntN(64)] = 1
		if c.CutAfter(blk, n) != off.CutAfter(blk, n) {
			t.Fatalf("a block with data in its last 64 bytes is cut by the zero-tail rule")
		}
	}

	// In a split: a run of data blocks with a padded block in the middle
	// always has a cut right after the padded block.
	for trial := range 50 {
		buf := randomBlock(r, 12*bs)
		for o := 0; o < len(buf); o += bs {
			buf[o] |= 1
		}
		at := 1 + trial%10
		clear(buf[(at+1)*bs-64-trial : (at+1)*bs])
		pieces := c.Split(nil, buf)
		if err := checkSplit(c, buf, pieces); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(pieces, func(pc chunker.Piece) bool { return pc.Off == (at+1)*bs }) {
			t.Fatalf("no cut after the padded block %d: %v", at, pieces)
		}
	}

	// With the rule off, padding alone does not cut.
	kept := 0
	for range 20 {
		blk := randomBlock(r, bs)
		clear(blk[bs-64:])
		if !off.CutAfter(blk, 1) {
			kept++
		}
	}
	if kept == 0 {
		t.Fatal("with ZeroTail 0, every padded block still ends a chunk")
	}
}

func TestCutAfter(t *testing.T) {
	p := chunker.Params{AvgBlocks: 4, MaxBlocks: 9, ZeroTail: 64, Window: 64}
	c := newChunker(t, testKey, p)
	r := rand.New(rand.NewPCG(9, 9))
	blk := randomBlock(r, bs)
	if !c.CutAfter(blk, p.MaxBlocks) || !c.CutAfter(blk, p.MaxBlocks+1) {
		t.Fatal("no cut at MaxBlocks")
	}
	if !c.CutAfter(blk[:bs-1], 1) || !c.CutAfter(blk[:1], 1) {
		t.Fatal("no cut after a short block")
	}
	// Only the last Window bytes of a block feed the hash.
	varied := 0
	for range 200 {
		b := randomBlock(r, bs)
		b2 := append(randomBlock(r, bs-p.Window), b[bs-p.Window:]...)
		for n := 1; n < p.MaxBlocks; n++ {
			if c.CutAfter(b, n) != c.CutAfter(b2, n) {
				t.Fatal("bytes before the window change the decision")
			}
		}
		if c.CutAfter(b, 1) != c.CutAfter(b, p.AvgBlocks) {
			varied++
		}
	}
	// Normalisation: cuts are likelier once a chunk reaches AvgBlocks.
	cutsBefore, cutsAfter := 0, 0
	for range 4000 {
		b := randomBlock(r, bs)
		if c.CutAfter(b, 1) {
			cutsBefore++
		}
		if c.CutAfter(b, p.AvgBlocks) {
			cutsAfter++
		}
	}
	if cutsAfter <= cutsBefore*2 {
		t.Fatalf("cuts before AvgBlocks %d, after %d: no normalisation", cutsBefore, cutsAfter)
	}
	if varied == 0 {
		t.Fatal("the block count never changes the decision")
	}
}

func TestZeroRuns(t *testing.T) {
	c := newChunker(t, testKey, chunker.DefaultParams)
	r := rand.New(rand.NewPCG(11, 11))
	d := func() []byte { return randomBlock(r, bs) }
	z := func(n int) []byte { return make([]byte, n) }
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	for _, tc := range []struct {
		name  string
		buf   []byte
		zeros [][2]int // the zero pieces, as (offset, length)
	}{
		{"all zero", z(10 * bs), [][2]int{{0, 10 * bs}}},
		{"all zero, short tail", z(10*bs + 100), [][2]int{{0, 10*bs + 100}}},
		{"one short zero block", z(100), [][2]int{{0, 100}}},
		{"one zero byte", z(1), [][2]int{{0, 1}}},
		{"data then one zero byte", cat(d(), z(1)), [][2]int{{bs, 1}}},
		{"zero run between data", cat(d(), z(3*bs), d()), [][2]int{{bs, 3 * bs}}},
		{"zero runs at both ends", cat(z(2*bs), d(), d(), z(bs)), [][2]int{{0, 2 * bs}, {4 * bs, bs}}},
		{"short zero tail after data", cat(d(), z(50)), [][2]int{{bs, 50}}},
		{"short data tail after zeros", cat(z(bs), d()[:50]), [][2]int{{0, bs}}},
		{"sparse block is data", cat(z(bs), func() []byte { b := z(bs); b[100] = 1; return b }(), z(bs)), [][2]int{{0, bs}, {2 * bs, bs}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pieces := c.Split(nil, tc.buf)
			if err := checkSplit(c, tc.buf, pieces); err != nil {
				t.Fatal(err)
			}
			var zeros [][2]int
			for _, pc := range pieces {
				if pc.Zero {
					zeros = append(zeros, [2]int{pc.Off, pc.Len})
				}
			}
			if !slices.Equal(zeros, tc.zeros) {
				t.Fatalf("zero pieces %v, want %v (all: %v)", zeros, tc.zeros, pieces)
			}
		})
	}
	if got := c.Split(nil, nil); len(got) != 0 {
		t.Fatalf("empty buffer: %v", got)
	}
}

func TestResumeFromCut(t *testing.T) {
	for _, p := range []chunker.Params{chunker.DefaultParams, {AvgBlocks: 2, MaxBlocks: 5, ZeroTail: 200, Window: 16}} {
		c := newChunker(t, testKey, p)
		buf := diskLike(13, 400)
		buf = buf[:len(buf)-77]
		pieces := c.Split(nil, buf)
		if err := checkResume(c, buf, pieces); err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
	}
}

func TestStateFrames(t *testing.T) {
	c := newChunker(t, testKey, chunker.DefaultParams)
	buf := diskLike(17, 300)
	want := c.Split(nil, buf)
	if got := feedAt(c, buf, 0); !slices.Equal(got, want) {
		t.Fatal("Feed from 0 differs from Split")
	}
	const base = 1<<40 + 3*bs
	got := feedAt(c, buf, base)
	if len(got) != len(want) {
		t.Fatalf("%d pieces, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Off != want[i].Off+base || got[i].Len != want[i].Len || got[i].Zero != want[i].Zero {
			t.Fatalf("piece %d: %+v, want %+v shifted by %d", i, got[i], want[i], base)
		}
	}
}

func TestStateAccessors(t *testing.T) {
	c := newChunker(t, testKey, chunker.Params{AvgBlocks: 256, MaxBlocks: 256, ZeroTail: 64, Window: 64})
	r := rand.New(rand.NewPCG(19, 19))
	var s chunker.State
	s.Reset(10 * bs)
	if s.Start() != 10*bs || s.Pending() || s.PendingZero() {
		t.Fatalf("after Reset: start %d pending %v zero %v", s.Start(), s.Pending(), s.PendingZero())
	}
	blk := randomBlock(r, bs)
	for c.CutAfter(blk, 1) {
		blk = randomBlock(r, bs)
	}
	out := s.Feed(c, nil, blk, 10*bs)
	if len(out) != 0 || !s.Pending() || s.PendingZero() || s.Start() != 10*bs {
		t.Fatalf("after a data block: %v pending %v zero %v", out, s.Pending(), s.PendingZero())
	}
	out = s.Feed(c, out, make([]byte, bs), 11*bs)
	if !slices.Equal(out, []chunker.Piece{{Off: 10 * bs, Len: bs}}) || !s.PendingZero() || s.Start() != 11*bs {
		t.Fatalf("after a zero block: %v zero %v start %d", out, s.PendingZero(), s.Start())
	}
	out = s.Flush(out, 12*bs)
	if !slices.Equal(out, []chunker.Piece{{Off: 10 * bs, Len: bs}, {Off: 11 * bs, Len: bs, Zero: true}}) || s.Pending() || s.Start() != 12*bs {
		t.Fatalf("after Flush: %v pending %v start %d", out, s.Pending(), s.Start())
	}
	if again := s.Flush(nil, 12*bs); len(again) != 0 {
		t.Fatalf("second Flush: %v", again)
	}

	// ResumeZeroRun: a zero run that began earlier goes on through new
	// zero blocks and ends at the next data block.
	s.ResumeZeroRun(3 * bs)
	if !s.PendingZero() || s.Start() != 3*bs {
		t.Fatal("ResumeZeroRun did not open a zero run")
	}
	out = s.Feed(c, nil, make([]byte, bs), 5*bs)
	out = s.Feed(c, out, blk, 6*bs)
	if !slices.Equal(out, []chunker.Piece{{Off: 3 * bs, Len: 3 * bs, Zero: true}}) {
		t.Fatalf("resumed zero run: %v", out)
	}
}
