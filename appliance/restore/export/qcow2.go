package export

import (
	"context"
	"encoding/binary"
	"io"
)

// qcow2 version 3, 64 KiB clusters, 16-bit refcounts, no compression, no
// backing file. Layout, every piece a whole number of clusters, written in
// this order:
//
//	header | L1 table | refcount table | refcount blocks | L2 tables | data clusters
//
// Only the L2 tables that map a data cluster exist, and the data clusters
// are the non-zero clusters of the disk in disk order. Every cluster of
// the file has refcount 1, so L1 and L2 entries carry the COPIED flag.
const (
	qcowClusterBits  = 16
	qcowRefcountBits = 16 // refcount_order 4
	qcowL2Entries    = clusterSize / 8
	qcowRefsPerBlock = clusterSize * 8 / qcowRefcountBits
	qcowCopied       = uint64(1) << 63
	qcowHeaderLen    = 104
)

type qcowLayout struct {
	vsize    int64
	data     []run   // non-zero clusters of the disk
	l2       []int64 // L1 indices that have an L2 table, ascending
	l1Size   int64   // L1 entries
	l1Clus   int64
	rtClus   int64 // refcount table clusters
	rbClus   int64 // refcount blocks
	nData    int64
	total    int64 // clusters in the file
	rtStart  int64 // first cluster of the refcount table
	l2Start  int64
	datStart int64
}

func planQcow2(ctx context.Context, src Source) (*qcowLayout, error) {
	data, err := nonZeroClusters(ctx, src)
	if err != nil {
		return nil, err
	}
	l := &qcowLayout{vsize: virtualSize(src), data: data, nData: count(data)}
	l.l1Size = ceilDiv(ceilDiv(l.vsize, clusterSize), qcowL2Entries)
	l.l1Clus = max(1, ceilDiv(l.l1Size*8, clusterSize))
	for _, r := range coarsen(data, qcowL2Entries) {
		for i := r.start; i < r.start+r.n; i++ {
			l.l2 = append(l.l2, i)
		}
	}
	base := 1 + l.l1Clus + int64(len(l.l2)) + l.nData
	for {
		t := base + l.rbClus + l.rtClus
		rb := ceilDiv(t, qcowRefsPerBlock)
		rt := ceilDiv(rb*8, clusterSize)
		if rb == l.rbClus && rt == l.rtClus {
			l.total = t
			break
		}
		l.rbClus, l.rtClus = rb, rt
	}
	l.rtStart = 1 + l.l1Clus
	l.l2Start = l.rtStart + l.rtClus + l.rbClus
	l.datStart = l.l2Start + int64(len(l.l2))
	return l, nil
}

func (l *qcowLayout) size() int64 { return l.total * clusterSize }

func (l *qcowLayout) header() []byte {
	h := make([]byte, clusterSize)
	be := binary.BigEndian
	copy(h[0:], "QFI\xfb")
	be.PutUint32(h[4:], 3)                 // version
	be.PutUint32(h[20:], qcowClusterBits)  // cluster_bits
	be.PutUint64(h[24:], uint64(l.vsize))  // size
	be.PutUint32(h[36:], uint32(l.l1Size)) // l1_size
	be.PutUint64(h[40:], clusterSize)      // l1_table_offset
	be.PutUint64(h[48:], uint64(l.rtStart*clusterSize))
	be.PutUint32(h[56:], uint32(l.rtClus)) // refcount_table_clusters
	be.PutUint32(h[96:], 4)                // refcount_order
	be.PutUint32(h[100:], qcowHeaderLen)   // header_length
	// The header extension area that follows is zero: the end marker.
	return h
}

func (l *qcowLayout) write(ctx context.Context, w io.Writer, src Source) error {
	be := binary.BigEndian
	if _, err := w.Write(l.header()); err != nil {
		return err
	}
	// L1 table.
	l1 := make([]byte, l.l1Clus*clusterSize)
	for k, i := range l.l2 {
		be.PutUint64(l1[i*8:], uint64((l.l2Start+int64(k))*clusterSize)|qcowCopied)
	}
	if _, err := w.Write(l1); err != nil {
		return err
	}
	// Refcount table then blocks.
	rt := make([]byte, l.rtClus*clusterSize)
	for k := int64(0); k < l.rbClus; k++ {
		be.PutUint64(rt[k*8:], uint64((l.rtStart+l.rtClus+k)*clusterSize))
	}
	if _, err := w.Write(rt); err != nil {
		return err
	}
	blk := make([]byte, clusterSize)
	for k := int64(0); k < l.rbClus; k++ {
		clear(blk)
		for j := int64(0); j < qcowRefsPerBlock && k*qcowRefsPerBlock+j < l.total; j++ {
			be.PutUint16(blk[j*2:], 1)
		}
		if _, err := w.Write(blk); err != nil {
			return err
		}
	}
	// L2 tables: walk the data runs in order, numbering the data clusters.
	host := l.datStart
	ri, rel := 0, int64(0) // position in l.data
	for _, t := range l.l2 {
		if err := ctx.Err(); err != nil {
			return err
		}
		clear(blk)
		lo, hi := t*qcowL2Entries, (t+1)*qcowL2Entries
		for ri < len(l.data) {
			c := l.data[ri].start + rel
			if c >= hi {
				break
			}
			if c >= lo {
				be.PutUint64(blk[(c-lo)*8:], uint64(host*clusterSize)|qcowCopied)
			}
			host++
			if rel++; rel == l.data[ri].n {
				ri, rel = ri+1, 0
			}
		}
		if _, err := w.Write(blk); err != nil {
			return err
		}
	}
	// Data clusters.
	return forEachUnit(ctx, src, l.data, clusterSize, func(_ int64, b []byte) error {
		_, err := w.Write(b)
		return err
	})
}
