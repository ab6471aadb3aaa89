package store

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"coffer.dev/coffer/store/point"
)

// Retention is a grandfather-father-son policy: keep the newest Last
// points, and the newest point of each of the most recent Daily days,
// Weekly ISO weeks, Monthly months and Yearly years. Periods are taken in
// the time zone of Location (UTC when nil).
type Retention struct {
	Last     int            `json:"last"`
	Daily    int            `json:"daily"`
	Weekly   int            `json:"weekly"`
	Monthly  int            `json:"monthly"`
	Yearly   int            `json:"yearly"`
	Location *time.Location `json:"-"`
}

// Empty reports whether the policy keeps nothing (which Prune refuses).
func (r Retention) Empty() bool {
	return r.Last <= 0 && r.Daily <= 0 && r.Weekly <= 0 && r.Monthly <= 0 && r.Yearly <= 0
}

// PruneDecision says what happens to one point and why.
type PruneDecision struct {
	ID      point.ID `json:"id"`
	Source  string   `json:"source"`
	Created string   `json:"created"`
	Keep    bool     `json:"keep"`
	Reasons []string `json:"reasons"`
	Deleted bool     `json:"deleted"`
	Error   string   `json:"error,omitempty"`
}

// Plan applies the policy to the points of each source separately and
// returns a decision per point, newest first. Points under a retention
// lock are always kept.
func (r Retention) Plan(pts []*point.RecoveryPoint, locked func(point.ID) time.Time, now time.Time) []PruneDecision {
	loc := r.Location
	if loc == nil {
		loc = time.UTC
	}
	bySource := map[string][]*point.RecoveryPoint{}
	for _, p := range pts {
		bySource[p.Source] = append(bySource[p.Source], p)
	}
	var out []PruneDecision
	for _, src := range slices.Sorted(maps.Keys(bySource)) {
		ps := bySource[src]
		sort.Slice(ps, func(i, j int) bool { return ps[i].Created.After(ps[j].Created) })
		type bucket struct {
			name  string
			n     int
			key   func(time.Time) string
			seen  map[string]bool
			count int
		}
		buckets := []*bucket{
			{name: "daily", n: r.Daily, key: func(t time.Time) string { return t.Format("2006-01-02") }},
			{name: "weekly", n: r.Weekly, key: func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
			{name: "monthly", n: r.Monthly, key: func(t time.Time) string { return t.Format("2006-01") }},
			{name: "yearly", n: r.Yearly, key: func(t time.Time) string { return t.Format("2006") }},
		}
		for _, b := range buckets {
			b.seen = map[string]bool{}
		}
		for i, p := range ps {
			d := PruneDecision{ID: p.ID, Source: p.Source, Created: p.Created.In(loc).Format(time.RFC3339)}
			if i < r.Last {
				d.Keep = true
				d.Reasons = append(d.Reasons, fmt.Sprintf("last %d", r.Last))
			}
			t := p.Created.In(loc)
			for _, b := range buckets {
				k := b.key(t)
				if b.count < b.n && !b.seen[k] {
					b.seen[k] = true
					b.count++
					d.Keep = true
					d.Reasons = append(d.Reasons, b.name+" "+k)
				}
			}
			if until := locked(p.ID); now.Before(until) {
				d.Keep = true
				d.Reasons = append(d.Reasons, "retention lock until "+until.Format(time.RFC3339))
			}
			out = append(out, d)
		}
	}
	return out
}

// Prune deletes the points the policy does not keep (all sources, or
// only source when given). With dryRun nothing is deleted.
func (s *Store) Prune(r Retention, source string, dryRun bool) ([]PruneDecision, error) {
	if r.Empty() {
		return nil, fmt.Errorf("prune: the policy keeps nothing; refusing to delete every point")
	}
	pts, err := s.Points()
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	if source != "" {
		var only []*point.RecoveryPoint
		for _, p := range pts {
			if p.Source == source {
				only = append(only, p)
			}
		}
		pts = only
	}
	locked := func(id point.ID) time.Time {
		t, err := s.RetentionLock(id)
		if err != nil {
			s.log.Warn("prune: retention lock unreadable; keeping the point", "point", id, "err", err)
		}
		return t
	}
	plan := r.Plan(pts, locked, time.Now())
	for i := range plan {
		d := &plan[i]
		if d.Keep || dryRun {
			continue
		}
		if err := s.Delete(d.ID); err != nil {
			d.Error = err.Error()
			d.Keep = true
			continue
		}
		d.Deleted = true
	}
	return plan, nil
}
