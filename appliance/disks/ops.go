package disks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// AddDisk erases disk and adds it to array (a name or path, see Array):
// to a degraded array it is a replacement and the rebuild starts, to a
// whole one a spare. The disk passes the same checks as a new pool's:
// never a system disk, one that holds data only when confirmed.
func (h *Host) AddDisk(ctx context.Context, array, disk string, confirmed bool) error {
	name, err := h.resolveArray(array)
	if err != nil {
		return err
	}
	var conf []string
	if confirmed {
		conf = []string{disk}
	}
	ds, err := h.choose(ctx, []string{disk}, conf)
	if err != nil {
		return err
	}
	if err := h.wipe(ctx, ds[0]); err != nil {
		return err
	}
	if _, err := h.run(ctx, "mdadm", "--manage", h.dev(name), "--add", ds[0].Path); err != nil {
		return fmt.Errorf("add %s to %s: %w", disk, name, err)
	}
	return nil
}

// RemoveFailed removes the failed members from array.
func (h *Host) RemoveFailed(ctx context.Context, array string) error {
	name, err := h.resolveArray(array)
	if err != nil {
		return err
	}
	if _, err := h.run(ctx, "mdadm", "--manage", h.dev(name), "--remove", "failed"); err != nil {
		return fmt.Errorf("remove the failed disks of %s: %w", name, err)
	}
	return nil
}

// FailDisk marks member (a kernel name, "sdc") of array failed: for
// tests and for an administrator retiring a disk.
func (h *Host) FailDisk(ctx context.Context, array, member string) error {
	name, err := h.resolveArray(array)
	if err != nil {
		return err
	}
	member = strings.TrimPrefix(member, "/dev/")
	if _, err := h.run(ctx, "mdadm", "--manage", h.dev(name), "--fail", h.dev(member)); err != nil {
		return fmt.Errorf("fail %s in %s: %w", member, name, err)
	}
	return nil
}

// StartScrub starts a check of array: md reads every stripe and counts
// the sectors whose parity or copies disagree (mismatch_cnt). It refuses
// while another sync runs.
func (h *Host) StartScrub(ctx context.Context, array string) error {
	name, err := h.resolveArray(array)
	if err != nil {
		return err
	}
	path := h.sys("block", name, "md", "sync_action")
	cur := readString(path)
	if cur == "" {
		return fmt.Errorf("scrub %s: %s is unreadable", name, path)
	}
	if cur != "idle" {
		return fmt.Errorf("scrub %s: the array is busy (%s)", name, cur)
	}
	if err := os.WriteFile(path, []byte("check\n"), 0o644); err != nil {
		return fmt.Errorf("scrub %s: %w", name, err)
	}
	return nil
}

// ScrubResult reads the outcome of array's last check: running while
// it goes on, else the number of mismatched sectors it found.
func (h *Host) ScrubResult(ctx context.Context, array string) (mismatches int64, running bool, err error) {
	name, err := h.resolveArray(array)
	if err != nil {
		return 0, false, err
	}
	md := h.sys("block", name, "md")
	action := readString(filepath.Join(md, "sync_action"))
	if action == "" {
		return 0, false, fmt.Errorf("scrub result of %s: no sync_action", name)
	}
	if action != "idle" {
		return 0, true, nil
	}
	n, ok := readInt(filepath.Join(md, "mismatch_cnt"))
	if !ok {
		return 0, false, fmt.Errorf("scrub result of %s: no mismatch_cnt", name)
	}
	return n, false, nil
}
