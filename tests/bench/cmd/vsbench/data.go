package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"sync"

	"golang.org/x/sys/unix"

	"coffer.dev/coffer/appliance/blockdev"
)

const (
	pageSize = 4 << 10
	// slotSize is the stretch of the disk that holds one generated data run:
	// the generated data is spread over the disk, holes in between, as on a
	// file system that has been in use for a while.
	slotSize = 16 << 20
	// Changed runs are 64 KiB to 1 MiB long.
	minChange = 64 << 10
	maxChange = 1 << 20
)

func roundUp(n, m int64) int64 { return (n + m - 1) / m * m }

// copyExtents copies the extents of src to dst (an existing file) at the
// same offsets plus shift, leaving the rest of dst as it is (holes), and
// syncs dst.
func copyExtents(src *blockdev.Disk, ext []blockdev.Extent, dst string, shift int64) error {
	f, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	buf := make([]byte, 4<<20)
	for _, e := range ext {
		for off := e.Offset; off < e.Offset+e.Length; {
			n := min(int64(len(buf)), e.Offset+e.Length-off)
			m, err := src.ReadAt(buf[:n], off)
			if err != nil && !(errors.Is(err, io.EOF) && int64(m) == n) {
				f.Close()
				return fmt.Errorf("read %s at %d: %w", src.Path(), off, err)
			}
			if _, err := f.WriteAt(buf[:n], off+shift); err != nil {
				f.Close()
				return err
			}
			off += n
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// textGen makes text-like data fast: words drawn from a random vocabulary,
// now and then a hexadecimal number and a line break. Every generator
// makes its own data (the store must not find it elsewhere on the disk),
// which compresses about as well as the files of a real system.
type textGen struct {
	rng   *rand.PCG
	words [][]byte
}

var (
	vocabOnce sync.Once
	vocab     [][]byte
)

const vocabBits = 12 // 4096 words

func vocabulary() [][]byte {
	vocabOnce.Do(func() {
		r := rand.New(rand.NewPCG(0x5eed, 0x70c4b))
		vocab = make([][]byte, 1<<vocabBits)
		for i := range vocab {
			n := 2 + r.IntN(5) + r.IntN(6) // 2..12 letters, mostly 4..8
			w := make([]byte, 0, n+2)
			for j := 0; j < n; j++ {
				w = append(w, byte('a'+r.IntN(26)))
			}
			switch r.IntN(16) {
			case 0:
				w[0] -= 'a' - 'A'
			case 1:
				w = append(w, ',')
			case 2:
				w = append(w, '.')
			}
			vocab[i] = append(w, ' ')
		}
	})
	return vocab
}

func newTextGen(seed, stream uint64) *textGen {
	return &textGen{rng: rand.NewPCG(seed, stream), words: vocabulary()}
}

const hexDigits = "0123456789abcdef"

// fill fills p.
func (g *textGen) fill(p []byte) {
	const mask = 1<<vocabBits - 1
	i := 0
	for i < len(p) {
		r := g.rng.Uint64()
		for k := 0; k < 5 && i < len(p); k++ {
			i += copy(p[i:], g.words[r&mask])
			r >>= vocabBits
		}
		// 4 bits left: a number after every other group, a line break
		// after every fourth.
		if r&1 == 0 && i+9 <= len(p) {
			x := g.rng.Uint64()
			for k := 0; k < 8; k++ {
				p[i+k] = hexDigits[x&15]
				x >>= 4
			}
			p[i+8] = ' '
			i += 9
		}
		if r&6 == 0 && i < len(p) {
			p[i] = '\n'
			i++
		}
	}
}

// span is a byte range of the disk.
type span struct{ off, len int64 }

// fillDisk writes about total bytes of generated data into [from, to) of
// the file: one run per slotSize stretch, of random length around the
// average and at a random place in it. It returns the bytes written and
// the number of runs, and syncs the file.
func fillDisk(path string, from, to, total int64, seed uint64) (int64, int, error) {
	if total <= 0 {
		return 0, 0, nil
	}
	slots := (to - from) / slotSize
	if slots <= 0 {
		return 0, 0, fmt.Errorf("no room for generated data between %d and %d", from, to)
	}
	avg := float64(total) / float64(slots)
	if avg > slotSize {
		avg = slotSize
	}
	r := rand.New(rand.NewPCG(seed, 0xf111))
	var runs []span
	var sum int64
	for s := int64(0); s < slots; s++ {
		n := roundUp(int64(avg*(0.5+r.Float64())), 64<<10)
		n = min(n, slotSize, total-sum)
		if n <= 0 {
			break
		}
		off := from + s*slotSize + int64(r.Int64N((slotSize-n)/pageSize+1))*pageSize
		runs = append(runs, span{off, n})
		sum += n
	}

	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	workers := max(1, runtime.NumCPU())
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4<<20)
			for i := w; i < len(runs); i += workers {
				g := newTextGen(seed, uint64(i))
				rn := runs[i]
				for off := rn.off; off < rn.off+rn.len; {
					n := min(int64(len(buf)), rn.off+rn.len-off)
					g.fill(buf[:n])
					if _, err := f.WriteAt(buf[:n], off); err != nil {
						errs[w] = err
						return
					}
					off += n
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, 0, err
	}
	return sum, len(runs), f.Sync()
}

// dataExtents lists the data extents of a sparse file.
func dataExtents(path string) ([]span, error) {
	d, err := blockdev.Open(path)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ext, err := d.Allocated()
	if err != nil {
		return nil, err
	}
	if ext == nil {
		return []span{{0, d.Size()}}, nil
	}
	out := make([]span, len(ext))
	for i, e := range ext {
		out[i] = span{e.Offset, e.Length}
	}
	return out, nil
}

// changeDisk overwrites target bytes of the disk's data (data: its extents)
// with new generated data, in runs of 64 KiB to 1 MiB (4 KiB aligned) at
// random places inside the data extents, no two runs overlapping, through
// write (the simulator's WriteDisk, as the guest would write), then syncs
// the flat file at path. It returns the bytes changed and the number of
// runs.
func changeDisk(path string, data []span, target int64, seed uint64, write func(off int64, p []byte) error) (int64, int, error) {
	// Only extents that can hold a whole run of the smallest size.
	var cands []span
	var cum []int64 // cumulative lengths, to pick a place weighted by size
	var total int64
	for _, d := range data {
		lo, hi := roundUp(d.off, pageSize), (d.off+d.len)/pageSize*pageSize
		if hi-lo >= minChange {
			cands = append(cands, span{lo, hi - lo})
			total += hi - lo
			cum = append(cum, total)
		}
	}
	if total < 2*target {
		return 0, 0, fmt.Errorf("the disk holds %d bytes of data, too little to change %d of it in scattered runs", total, target)
	}
	r := rand.New(rand.NewPCG(seed, 0xc4a9))
	var runs []span // sorted by offset
	var sum int64
	for tries := 0; sum < target; tries++ {
		if tries > 1_000_000 {
			return 0, 0, errors.New("cannot place the changed runs")
		}
		n := minChange + r.Int64N((maxChange-minChange)/pageSize+1)*pageSize
		n = min(n, target-sum)
		at := r.Int64N(total)
		i := sort.Search(len(cum), func(i int) bool { return cum[i] > at })
		c := cands[i]
		if c.len < n {
			continue
		}
		off := c.off + r.Int64N((c.len-n)/pageSize+1)*pageSize
		// No overlap with, nor adjacency to, another run: each run is its
		// own change.
		j := sort.Search(len(runs), func(j int) bool { return runs[j].off+runs[j].len >= off })
		if j < len(runs) && runs[j].off <= off+n {
			continue
		}
		runs = append(runs, span{})
		copy(runs[j+1:], runs[j:])
		runs[j] = span{off, n}
		sum += n
	}

	g := newTextGen(seed^0xda72, 1<<40)
	buf := make([]byte, maxChange)
	for _, rn := range runs {
		g.fill(buf[:rn.len])
		if err := write(rn.off, buf[:rn.len]); err != nil {
			return 0, 0, err
		}
	}
	// Read-only: fsync does not touch the file's mtime, by which the
	// simulator notices writes that bypass WriteDisk.
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	return sum, len(runs), f.Sync()
}

// freeBytes is the space available to this (root) process in dir's file
// system.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
