package container

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"

	"coffer.dev/coffer/store/crypt"
)

// Compression holds the zstd encoder and decoder shared by all goroutines of
// a store (both are safe for concurrent EncodeAll/DecodeAll).
type Compression struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
	// scratch holds plaintext buffers for SealRegion.
	scratch sync.Pool
}

// NewCompression makes the shared zstd state.
func NewCompression() (*Compression, error) {
	// The fastest level: compression is most of a backup's CPU time. A
	// region is one single-segment frame without checksum (regions are
	// authenticated by AES-GCM); literals are entropy-coded only where that
	// pays. Concurrency bounds parallel EncodeAll calls, not goroutines.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)*2), zstd.WithZeroFrames(true),
		zstd.WithSingleSegment(true), zstd.WithAllLitEntropyCompression(false),
		zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxRegionRaw+1))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return &Compression{enc: enc, dec: dec}, nil
}

// Close releases the decoder's goroutines.
func (c *Compression) Close() { c.dec.Close() }

// incompressible: keep the raw payload unless zstd saves at least 1/32.
func worthIt(compressed, raw int) bool { return compressed < raw-raw/32 }

// SealedRegion is a region ready to append to a container: its header and
// sealed bytes, with what the footer must record.
type SealedRegion struct {
	Bytes  []byte // region header followed by the sealed payload
	RawLen uint32
	Codec  Codec
}

// SealRegion compresses (when it pays) and encrypts raw as region number
// index of container id. buf is reused for the result when large enough.
func SealRegion(c *Compression, aead *crypt.AEAD, storeID [16]byte, id uint64, index uint32, raw []byte, buf []byte) SealedRegion {
	var plain []byte
	if p, ok := c.scratch.Get().(*[]byte); ok && cap(*p) >= regionPlainHeader+len(raw) {
		plain = (*p)[:regionPlainHeader]
	} else {
		plain = make([]byte, regionPlainHeader, regionPlainHeader+len(raw)+len(raw)/8)
	}
	defer func() { c.scratch.Put(&plain) }()
	codec := CodecRaw
	plain = c.enc.EncodeAll(raw, plain)
	if worthIt(len(plain)-regionPlainHeader, len(raw)) {
		codec = CodecZstd
	} else {
		plain = append(plain[:regionPlainHeader], raw...)
	}
	plain[0] = byte(codec)
	binary.LittleEndian.PutUint32(plain[1:], uint32(len(raw)))
	out := buf[:0]
	if cap(out) < RegionHeaderSize+len(plain)+crypt.Overhead {
		out = make([]byte, 0, RegionHeaderSize+len(plain)+crypt.Overhead)
	}
	out = out[:RegionHeaderSize]
	out = aead.Seal(out, plain, regionAAD(storeID, id, index))
	copy(out, regionHeader(out[RegionHeaderSize:], index))
	return SealedRegion{Bytes: out, RawLen: uint32(len(raw)), Codec: codec}
}

// OpenRegion checks, decrypts and decompresses a region read from a
// container (header and sealed bytes), appending the payload to dst.
func OpenRegion(c *Compression, aead *crypt.AEAD, storeID [16]byte, id uint64, index uint32, want Region, b []byte, dst []byte) ([]byte, error) {
	crc, err := ParseRegionHeader(b, want, index)
	if err != nil {
		return nil, err
	}
	sealed := b[RegionHeaderSize:]
	if uint32(len(sealed)) != want.StoredLen {
		return nil, formatErr("region %d: %d sealed bytes, want %d", index, len(sealed), want.StoredLen)
	}
	if crcOf(sealed) != crc {
		return nil, formatErr("region %d: checksum mismatch", index)
	}
	plain, err := aead.Open(nil, sealed, regionAAD(storeID, id, index))
	if err != nil {
		return nil, fmt.Errorf("region %d: %w", index, err)
	}
	if len(plain) < regionPlainHeader {
		return nil, formatErr("region %d: short payload", index)
	}
	codec := Codec(plain[0])
	rawLen := binary.LittleEndian.Uint32(plain[1:])
	if codec != want.Codec || rawLen != want.RawLen {
		return nil, formatErr("region %d: codec/length disagree with the footer", index)
	}
	payload := plain[regionPlainHeader:]
	start := len(dst)
	switch codec {
	case CodecRaw:
		dst = append(dst, payload...)
	case CodecZstd:
		// zstd counts what dst already holds against its memory limit:
		// decode into dst only when it is empty.
		if start == 0 {
			dst, err = c.dec.DecodeAll(payload, dst[:0])
		} else {
			var out []byte
			if out, err = c.dec.DecodeAll(payload, make([]byte, 0, rawLen)); err == nil {
				dst = append(dst, out...)
			}
		}
		if err != nil {
			return nil, formatErr("region %d: zstd: %v", index, err)
		}
	default:
		return nil, formatErr("region %d: unknown codec %d", index, codec)
	}
	if n := len(dst) - start; uint32(n) != rawLen {
		return nil, formatErr("region %d: payload is %d bytes, want %d", index, n, rawLen)
	}
	return dst, nil
}
