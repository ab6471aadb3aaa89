package vsphere

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"coffer.dev/coffer/store"
)

func TestPlanWindows(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name string
		exts []store.Extent
		gap  int64
		want [][2]int64
	}{
		{"adjacent merge", []store.Extent{{Offset: 0, Length: 64 << 10}, {Offset: 64 << 10, Length: 64 << 10}}, 0, [][2]int64{{0, 128 << 10}}},
		{"small gap merges", []store.Extent{{Offset: 0, Length: 64 << 10}, {Offset: 128 << 10, Length: 64 << 10}}, 64 << 10, [][2]int64{{0, 192 << 10}}},
		{"large gap splits", []store.Extent{{Offset: 0, Length: 64 << 10}, {Offset: 256 << 10, Length: 64 << 10}}, 64 << 10, [][2]int64{{0, 64 << 10}, {256 << 10, 64 << 10}}},
		{"max read splits", []store.Extent{{Offset: 0, Length: 12 * mib}}, 0, [][2]int64{{0, 8 * mib}, {8 * mib, 4 * mib}}},
		{"never crosses a store range", []store.Extent{{Offset: 15 * mib, Length: 2 * mib}}, 0, [][2]int64{{15 * mib, mib}, {16 * mib, mib}}},
		{"unsorted input", []store.Extent{{Offset: mib, Length: 4096}, {Offset: 0, Length: 4096}}, 0, [][2]int64{{0, 4096}, {mib, 4096}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws := planWindows(tc.exts, 64*mib, 8*mib, tc.gap)
			var got [][2]int64
			for _, w := range ws {
				got = append(got, [2]int64{w.off, w.len})
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestPrefetchReaderServesAnyRead reads a disk through planned windows
// with reads that span windows, fall between them and come out of order,
// from several goroutines, and compares with the source.
func TestPrefetchReaderServesAnyRead(t *testing.T) {
	const size = 48 << 20
	src := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < size; i += 8 {
		binary.LittleEndian.PutUint64(src[i:], r.Uint64())
	}
	var exts []store.Extent
	for off := int64(0); off < size; off += int64(r.IntN(4)+1) << 20 {
		exts = append(exts, store.Extent{Offset: off, Length: int64(r.IntN(1024)+1) << 10})
	}
	var mu sync.Mutex
	fetched := 0
	fetch := func(ctx context.Context, off int64, p []byte) error {
		mu.Lock()
		fetched += len(p)
		mu.Unlock()
		copy(p, src[off:])
		return nil
	}
	pr := newPrefetchReader(context.Background(), planWindows(exts, size, 8<<20, 64<<10), 4, fetch)
	defer pr.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rr := rand.New(rand.NewPCG(uint64(g), 9))
			for i := 0; i < 200; i++ {
				off := rr.Int64N(size - 1)
				n := min(int64(rr.IntN(3<<20)+1), size-off)
				p := make([]byte, n)
				if _, err := pr.ReadAt(p, off); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(p, src[off:off+n]) {
					errs <- errors.New("wrong bytes")
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The planned extents themselves come from the windows.
	for _, e := range exts {
		p := make([]byte, min(e.Length, size-e.Offset))
		if _, err := pr.ReadAt(p, e.Offset); err != nil || !bytes.Equal(p, src[e.Offset:e.Offset+int64(len(p))]) {
			t.Fatalf("extent %v: %v", e, err)
		}
	}
	if st := pr.Stats(); st.Requests == 0 || st.Bytes == 0 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestPrefetchReaderReportsFetchErrors(t *testing.T) {
	boom := errors.New("connection reset")
	pr := newPrefetchReader(context.Background(), planWindows([]store.Extent{{Offset: 0, Length: 1 << 20}}, 4<<20, 8<<20, 0), 2,
		func(ctx context.Context, off int64, p []byte) error { return boom })
	defer pr.Close()
	if _, err := pr.ReadAt(make([]byte, 4096), 0); !errors.Is(err, boom) {
		t.Fatalf("window error: %v", err)
	}
	if _, err := pr.ReadAt(make([]byte, 4096), 2<<20); !errors.Is(err, boom) {
		t.Fatalf("direct error: %v", err)
	}
}
