package notify

import (
	"sync"
	"time"
)

// repeatKey is one alert on one channel.
type repeatKey struct {
	channel int // index in Notifier.channels
	kind    Kind
	subject string
}

// repeats remembers when each alert last went to each channel. Safe for
// concurrent use.
type repeats struct {
	every time.Duration // <= 0: nothing is held back

	mu        sync.Mutex
	sent      map[repeatKey]time.Time
	lastPrune time.Time
}

func newRepeats(every time.Duration) *repeats {
	return &repeats{every: every, sent: map[repeatKey]time.Time{}}
}

// claim tells whether the alert k may be sent now. If so, it counts as
// sent at now; undo forgets that again, for when the delivery failed.
func (r *repeats) claim(k repeatKey, now time.Time) (undo func(), ok bool) {
	if r.every <= 0 {
		return func() {}, true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prune(now)
	prev, had := r.sent[k]
	if had && now.Sub(prev) < r.every {
		return nil, false
	}
	r.sent[k] = now
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if t, ok := r.sent[k]; !ok || !t.Equal(now) {
			return // claimed again since
		}
		if had {
			r.sent[k] = prev
		} else {
			delete(r.sent, k)
		}
	}, true
}

// prune forgets the alerts that no longer hold anything back, at most
// once a minute. r.mu is held.
func (r *repeats) prune(now time.Time) {
	if now.Sub(r.lastPrune) < time.Minute && now.After(r.lastPrune) {
		return
	}
	r.lastPrune = now
	for k, t := range r.sent {
		if now.Sub(t) >= r.every {
			delete(r.sent, k)
		}
	}
}
