package index

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"google.golang.org/protobuf/proto"
)

// validateTables checks every table file of a badger directory before
// badger opens it: footer, index checksum and every block checksum.
// Badger trusts its files and panics (in goroutines we cannot recover) on
// some damaged ones; a damaged table here means "rebuild the index".
//
// Only the tables the manifest lists are checked: a table a killed process
// was writing is not in it yet, and badger deletes such orphans itself.
func validateTables(dir string, o badger.Options) error {
	live, err := manifestTables(dir, o)
	if err != nil {
		return fmt.Errorf("%w: manifest: %v", ErrDamaged, err)
	}
	for id := range live {
		name := table.IDToFilename(id)
		if err := validateTable(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("%w: table %s: %v", ErrDamaged, name, err)
		}
	}
	return nil
}

// manifestTables returns the IDs of the tables the manifest lists (none for
// a new index).
func manifestTables(dir string, o badger.Options) (ids map[uint64]struct{}, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable: %v", r)
		}
	}()
	f, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, _, err := badger.ReplayManifestFile(f, o.ExternalMagicVersion, o)
	if err != nil {
		return nil, err
	}
	ids = make(map[uint64]struct{}, len(m.Tables))
	for id := range m.Tables {
		ids[id] = struct{}{}
	}
	return ids, nil
}

func validateTable(path string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable: %v", r)
		}
	}()
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	u32 := func(b []byte) int { return int(binary.BigEndian.Uint32(b)) }
	n := len(data)
	if n < 8 {
		return fmt.Errorf("%d bytes", n)
	}
	chkLen := u32(data[n-4:])
	if chkLen > n-8 {
		return fmt.Errorf("checksum length %d", chkLen)
	}
	var chk pb.Checksum
	if err := proto.Unmarshal(data[n-4-chkLen:n-4], &chk); err != nil {
		return fmt.Errorf("index checksum: %v", err)
	}
	pos := n - 4 - chkLen - 4
	idxLen := u32(data[pos:])
	if idxLen > pos {
		return fmt.Errorf("index length %d", idxLen)
	}
	index := data[pos-idxLen : pos]
	if err := y.VerifyChecksum(index, &chk); err != nil {
		return fmt.Errorf("index: %v", err)
	}
	ti := fb.GetRootAsTableIndex(index, 0)
	var ko fb.BlockOffset
	for i := 0; i < ti.OffsetsLength(); i++ {
		if !ti.Offsets(&ko, i) {
			return fmt.Errorf("block %d: no offset", i)
		}
		off, ln := int(ko.Offset()), int(ko.Len())
		if off < 0 || ln < 8 || off+ln > pos-idxLen {
			return fmt.Errorf("block %d at %d+%d out of bounds", i, off, ln)
		}
		blk := data[off : off+ln]
		cl := u32(blk[ln-4:])
		if cl > ln-8 {
			return fmt.Errorf("block %d: checksum length %d", i, cl)
		}
		var bc pb.Checksum
		if err := proto.Unmarshal(blk[ln-4-cl:ln-4], &bc); err != nil {
			return fmt.Errorf("block %d checksum: %v", i, err)
		}
		if err := y.VerifyChecksum(blk[:ln-4-cl], &bc); err != nil {
			return fmt.Errorf("block %d: %v", i, err)
		}
	}
	return nil
}
