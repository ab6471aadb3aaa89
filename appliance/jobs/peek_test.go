package jobs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestPeek(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.inv.set(vmOn("a", "h1", "ds1"))
	p := e.policy(Policy{Name: "p", Selection: Selection{All: true}})
	e.start()
	id := e.run(p.ID, TriggerManual)
	e.waitJob(id)
	b, _ := os.ReadFile(filepath.Join(e.dir, "jobs", id+".json"))
	fmt.Println(string(b))
	b, _ = os.ReadFile(filepath.Join(e.dir, "policies", p.ID+".json"))
	fmt.Println(string(b))
}
