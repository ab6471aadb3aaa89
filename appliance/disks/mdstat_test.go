package disks

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// Samples in the kernel's format (drivers/md/md.c md_seq_show,
// status_resync; raid5/raid1/raid10 status; md-bitmap status).
const (
	mdstatClean6 = `Personalities : [raid6] [raid5] [raid4] [linear] [multipath] [raid0] [raid1] [raid10] 
md127 : active raid6 sdd[3] sdc[2] sdb[1] sda[0]
      20953088 blocks super 1.2 level 6, 512k chunk, algorithm 2 [4/4] [UUUU]
      bitmap: 0/1 pages [0KB], 65536KB chunk

unused devices: <none>
`
	mdstatDegraded6 = `Personalities : [raid6] [raid5] [raid4] 
md127 : active raid6 sdd[3] sdc[2](F) sdb[1] sda[0]
      20953088 blocks super 1.2 level 6, 512k chunk, algorithm 2 [4/3] [UU_U]
      bitmap: 1/1 pages [4KB], 65536KB chunk

unused devices: <none>
`
	mdstatRecovery6 = `Personalities : [raid6] [raid5] [raid4] 
md127 : active raid6 sde[4] sdd[3] sdb[1] sda[0]
      20953088 blocks super 1.2 level 6, 512k chunk, algorithm 2 [4/3] [UU_U]
      [==>..................]  recovery = 12.6% (1234/5678) finish=1.2min speed=1000K/sec
      bitmap: 1/1 pages [4KB], 65536KB chunk

unused devices: <none>
`
	mdstatResync1 = `Personalities : [raid1] 
md0 : active raid1 sdb1[1] sda1[0]
      10476544 blocks super 1.2 [2/2] [UU]
      [=>...................]  resync =  8.3% (871232/10476544) finish=0.7min speed=217808K/sec
      bitmap: 1/1 pages [4KB], 65536KB chunk

unused devices: <none>
`
	mdstatCheck10 = `Personalities : [raid10] 
md0 : active raid10 sdd[3] sdc[2] sdb[1] sda[0]
      20953088 blocks super 1.2 512K chunks 2 near-copies [4/4] [UUUU]
      [===>.................]  check = 17.4% (3646464/20953088) finish=1.4min speed=202581K/sec
      bitmap: 0/1 pages [0KB], 65536KB chunk

unused devices: <none>
`
	mdstatInactive = `Personalities : 
md127 : inactive sdb[1](S) sda[0](S)
      20953088 blocks super 1.2
       
unused devices: <none>
`
	mdstatTwo = `Personalities : [raid1] [raid6] [raid5] [raid4] 
md1 : active (auto-read-only) raid1 sdb2[1] sda2[0](W) sdc2[2](S)
      1046528 blocks super 1.2 [2/2] [UU]
      	resync=PENDING
      
md0 : active raid5 sdc1[3] sdb1[1] sda1[0]
      41908224 blocks super 1.2 level 5, 512k chunk, algorithm 2 [3/2] [UU_]
      [>....................]  recovery =  0.3% (64512/20954112) finish=5.3min speed=64512K/sec
      bitmap: 0/1 pages [0KB], 65536KB chunk, file: /var/md0-bitmap

unused devices: <none>
`
)

func TestParseMdstat(t *testing.T) {
	m := func(name string, role int) Member { return Member{Name: name, Role: role, Slot: -1} }
	four := []Member{m("sda", 0), m("sdb", 1), m("sdc", 2), m("sdd", 3)}
	failed := []Member{m("sda", 0), m("sdb", 1), {Name: "sdc", Role: 2, Slot: -1, Faulty: true}, m("sdd", 3)}
	for _, c := range []struct {
		name  string
		in    string
		want  []Array
		state []string
	}{
		{"clean raid6", mdstatClean6, []Array{{
			Name: "md127", Level: "raid6", State: StateClean, Devices: four, Size: 20953088 << 10,
			Total: 4, Active: 4, Status: "UUUU", Bitmap: true,
		}}, nil},
		{"degraded raid6", mdstatDegraded6, []Array{{
			Name: "md127", Level: "raid6", State: StateDegraded, Devices: failed, Size: 20953088 << 10,
			Total: 4, Active: 3, Status: "UU_U", Bitmap: true,
		}}, nil},
		{"recovering raid6", mdstatRecovery6, []Array{{
			Name: "md127", Level: "raid6", State: StateRecovering,
			Devices: []Member{m("sda", 0), m("sdb", 1), m("sdd", 3), m("sde", 4)},
			Size:    20953088 << 10, Total: 4, Active: 3, Status: "UU_U", Bitmap: true,
			Action: "recovery", Progress: 12.6, Done: 1234, ToDo: 5678, Finish: 72 * time.Second, Speed: 1000 << 10,
		}}, nil},
		{"resyncing raid1", mdstatResync1, []Array{{
			Name: "md0", Level: "raid1", State: StateResyncing, Devices: []Member{m("sda1", 0), m("sdb1", 1)},
			Size: 10476544 << 10, Total: 2, Active: 2, Status: "UU", Bitmap: true,
			Action: "resync", Progress: 8.3, Done: 871232, ToDo: 10476544, Finish: 42 * time.Second, Speed: 217808 << 10,
		}}, nil},
		{"checking raid10", mdstatCheck10, []Array{{
			Name: "md0", Level: "raid10", State: StateChecking, Devices: four, Size: 20953088 << 10,
			Total: 4, Active: 4, Status: "UUUU", Bitmap: true,
			Action: "check", Progress: 17.4, Done: 3646464, ToDo: 20953088, Finish: 84 * time.Second, Speed: 202581 << 10,
		}}, nil},
		{"inactive", mdstatInactive, []Array{{
			Name: "md127", State: StateInactive, Size: 20953088 << 10,
			Devices: []Member{{Name: "sda", Role: 0, Slot: -1, Spare: true}, {Name: "sdb", Role: 1, Slot: -1, Spare: true}},
		}}, nil},
		{"two arrays", mdstatTwo, []Array{{
			Name: "md1", Level: "raid1", State: StateResyncing, ReadOnly: true, Size: 1046528 << 10,
			Devices: []Member{{Name: "sdc2", Role: 2, Slot: -1, Spare: true}, {Name: "sda2", Role: 0, Slot: -1, WriteMostly: true}, m("sdb2", 1)},
			Total:   2, Active: 2, Status: "UU", Action: "resync", Pending: "PENDING",
		}, {
			Name: "md0", Level: "raid5", State: StateRecovering, Size: 41908224 << 10,
			Devices: []Member{m("sda1", 0), m("sdb1", 1), m("sdc1", 3)},
			Total:   3, Active: 2, Status: "UU_", Bitmap: true,
			Action: "recovery", Progress: 0.3, Done: 64512, ToDo: 20954112, Finish: 318 * time.Second, Speed: 64512 << 10,
		}}, nil},
		{"no arrays", "Personalities : \nunused devices: <none>\n", nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseMdstat([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, c.want)
			}
		})
	}
}

func TestArraysSysfs(t *testing.T) {
	f := newFake(t)
	f.write("proc/mdstat", mdstatCheck10)
	f.write("sys/block/md0/md/sync_action", "check\n")
	f.write("sys/block/md0/md/mismatch_cnt", "128\n")
	f.write("sys/block/md0/md/degraded", "0\n")
	f.write("sys/block/md0/md/array_state", "clean\n")
	for i, n := range []string{"sda", "sdb", "sdc", "sdd"} {
		f.write("sys/block/md0/md/dev-"+n+"/slot", string(rune('0'+i))+"\n")
		f.write("sys/block/md0/md/dev-"+n+"/state", "in_sync\n")
	}
	f.mdNode("coffer", "md0", 1<<20)
	as, err := f.h.Arrays(context.Background())
	if err != nil || len(as) != 1 {
		t.Fatalf("%+v %v", as, err)
	}
	a := as[0]
	if a.Alias != "coffer" || a.SyncAction != "check" || a.Mismatches != 128 || a.Degraded != 0 || a.ArrayState != "clean" || a.State != StateChecking {
		t.Errorf("%+v", a)
	}
	if a.Devices[2].Slot != 2 || a.Devices[2].State != "in_sync" {
		t.Errorf("members %+v", a.Devices)
	}
	for _, id := range []string{"md0", "/dev/md0", "coffer", "/dev/md/coffer", f.dev("md/coffer")} {
		if a, err := f.h.Array(context.Background(), id); err != nil || a.Name != "md0" {
			t.Errorf("Array(%q): %v %v", id, a.Name, err)
		}
	}
	if _, err := f.h.Array(context.Background(), "other"); err == nil {
		t.Error("no error for an unknown array")
	}
}

func TestArraysWithoutMD(t *testing.T) {
	f := newFake(t)
	as, err := f.h.Arrays(context.Background())
	if err != nil || as != nil {
		t.Fatalf("%v %v", as, err)
	}
}
