package index

import (
	"encoding/binary"
	"sync"

	"coffer.dev/coffer/store/chunk"
)

// bitsPerKey sizes the Bloom filter: about 1% false positives with the
// blocked layout and 7 probes, 1.25 bytes per chunk.
const bitsPerKey = 10

// blockWords is one 512-bit (cache line) block of the filter.
const blockWords = 8

const probes = 7

// Filter is the summary vector: a blocked Bloom filter over chunk IDs that
// grows by adding parts of doubling capacity. Chunk IDs are keyed hashes
// already, so their bytes are used as the hash values. Safe for concurrent
// use.
type Filter struct {
	mu    sync.RWMutex
	parts []*bloom
}

type bloom struct {
	words    []uint64
	capacity int64
	count    int64
}

func newBloom(capacity int64) *bloom {
	capacity = max(capacity, 1<<12)
	blocks := (capacity*bitsPerKey + 511) / 512
	return &bloom{words: make([]uint64, blocks*blockWords), capacity: capacity}
}

func (b *bloom) positions(id *chunk.ID) (block uint64, bitsv [probes]uint16) {
	nblocks := uint64(len(b.words) / blockWords)
	block = binary.LittleEndian.Uint64(id[0:8]) % nblocks
	v := binary.LittleEndian.Uint64(id[8:16])
	for i := range bitsv {
		bitsv[i] = uint16(v & 511)
		v >>= 9
	}
	return
}

func (b *bloom) add(id *chunk.ID) {
	blk, pos := b.positions(id)
	w := b.words[blk*blockWords : blk*blockWords+blockWords]
	for _, p := range pos {
		w[p>>6] |= 1 << (p & 63)
	}
	b.count++
}

func (b *bloom) has(id *chunk.ID) bool {
	blk, pos := b.positions(id)
	w := b.words[blk*blockWords : blk*blockWords+blockWords]
	for _, p := range pos {
		if w[p>>6]&(1<<(p&63)) == 0 {
			return false
		}
	}
	return true
}

// NewFilter returns a filter sized for capacity IDs before it first grows.
func NewFilter(capacity int64) *Filter {
	return &Filter{parts: []*bloom{newBloom(capacity)}}
}

// Add records id.
func (f *Filter) Add(id chunk.ID) {
	f.mu.Lock()
	last := f.parts[len(f.parts)-1]
	if last.count >= last.capacity {
		last = newBloom(last.capacity * 2)
		f.parts = append(f.parts, last)
	}
	last.add(&id)
	f.mu.Unlock()
}

// MayContain reports false only when id was certainly never added.
func (f *Filter) MayContain(id chunk.ID) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, p := range f.parts {
		if p.has(&id) {
			return true
		}
	}
	return false
}

// Bytes returns the memory the filter holds.
func (f *Filter) Bytes() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var n int64
	for _, p := range f.parts {
		n += int64(len(p.words) * 8)
	}
	return n
}
