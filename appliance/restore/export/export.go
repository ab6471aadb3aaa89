package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"coffer.dev/coffer/store"
)

// Source is one disk to export: random access to its bytes, its size and
// the extents that may hold non-zero data (everything else reads as zeros).
// *store.DiskReader implements it.
type Source interface {
	io.ReaderAt
	Size() int64
	DataExtents(ctx context.Context) ([]store.Extent, error)
}

// Format is an output image format.
type Format string

// The supported formats.
const (
	Raw   Format = "raw"
	VMDK  Format = "vmdk"
	VHDX  Format = "vhdx"
	QCOW2 Format = "qcow2"
)

// Formats lists the supported formats.
var Formats = []Format{Raw, VMDK, VHDX, QCOW2}

// ParseFormat parses a format name (case-insensitive; "qcow" and "img" are
// accepted as aliases of qcow2 and raw).
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "raw", "img":
		return Raw, nil
	case "vmdk":
		return VMDK, nil
	case "vhdx":
		return VHDX, nil
	case "qcow2", "qcow":
		return QCOW2, nil
	}
	return "", fmt.Errorf("unknown export format %q (supported: raw, vmdk, vhdx, qcow2)", s)
}

// String returns the format name.
func (f Format) String() string { return string(f) }

// ContentType returns the MIME type to serve the format with.
func (f Format) ContentType() string {
	switch f {
	case VMDK:
		return "application/x-vmdk"
	case VHDX:
		return "application/x-vhdx"
	case QCOW2:
		return "application/x-qemu-disk"
	}
	return "application/octet-stream"
}

// Ext returns the file name extension of the format, with its dot.
func (f Format) Ext() string {
	switch f {
	case VMDK:
		return ".vmdk"
	case VHDX:
		return ".vhdx"
	case QCOW2:
		return ".qcow2"
	}
	return ".raw"
}

// RawReadSeeker returns a reader over the raw disk for http.ServeContent
// (which handles Range requests with it).
func RawReadSeeker(src Source) io.ReadSeeker {
	return io.NewSectionReader(src, 0, src.Size())
}

// Write streams src in format f to w, sequentially: w may be an
// http.ResponseWriter or a pipe, it is never seeked and nothing is staged
// in a temporary file. All-zero clusters, grains and blocks are left
// unallocated. It returns the bytes written; an error of ctx is returned as
// is when ctx ends mid-write.
func Write(ctx context.Context, w io.Writer, src Source, f Format) (int64, error) {
	cw := &countWriter{w: w}
	var err error
	switch f {
	case Raw:
		err = writeRaw(ctx, cw, src)
	case QCOW2:
		var l *qcowLayout
		if l, err = planQcow2(ctx, src); err == nil {
			err = l.write(ctx, cw, src)
		}
	case VHDX:
		var l *vhdxLayout
		if l, err = planVHDX(ctx, src); err == nil {
			err = l.write(ctx, cw, src)
		}
	case VMDK:
		err = writeVMDK(ctx, cw, src)
	default:
		_, err = ParseFormat(string(f))
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			// A read or write that failed because ctx ended.
			err = ctxErr
		}
		return cw.n, fmt.Errorf("export %s: %w", f, err)
	}
	return cw.n, nil
}

// Size predicts the exact length Write produces for src in format f, where
// the format allows it without compressing: raw, qcow2 and vhdx (these
// scan the disk's data extents to find the zero clusters). ok is false for
// vmdk, whose grains are compressed.
func Size(ctx context.Context, src Source, f Format) (n int64, ok bool, err error) {
	switch f {
	case Raw:
		return src.Size(), true, nil
	case QCOW2:
		l, err := planQcow2(ctx, src)
		if err != nil {
			return 0, false, fmt.Errorf("export %s: %w", f, err)
		}
		return l.size(), true, nil
	case VHDX:
		l, err := planVHDX(ctx, src)
		if err != nil {
			return 0, false, fmt.Errorf("export %s: %w", f, err)
		}
		return l.size(), true, nil
	case VMDK:
		return 0, false, nil
	}
	_, err = ParseFormat(string(f))
	return 0, false, err
}

// countWriter counts the bytes written.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// zeros is a shared all-zero buffer (never written to).
var zeros = make([]byte, 1<<20)

// writeZeros writes n zero bytes.
func writeZeros(w io.Writer, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := w.Write(zeros[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// writeRaw writes the disk's bytes, zeros for the areas outside its data
// extents (without reading them).
func writeRaw(ctx context.Context, w io.Writer, src Source) error {
	size := src.Size()
	exts, err := dataExtents(ctx, src)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	var pos int64
	for _, e := range exts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := writeZeros(w, e.Offset-pos); err != nil {
			return err
		}
		for pos = e.Offset; pos < e.End(); {
			if err := ctx.Err(); err != nil {
				return err
			}
			b := buf[:min(int64(len(buf)), e.End()-pos)]
			if err := readFull(src, b, pos); err != nil {
				return err
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
			pos += int64(len(b))
		}
	}
	return writeZeros(w, size-pos)
}
