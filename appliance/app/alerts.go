package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"coffer.dev/coffer/appliance/jobs"
	"coffer.dev/coffer/appliance/notify"
	"coffer.dev/coffer/appliance/secrets"
	"coffer.dev/coffer/store"
)

// notifySecret is the vault entry holding the notification settings
// (they contain the SMTP password and webhook secrets).
const notifySecret = "notifications"

// Notifications returns the notification settings (secrets included:
// callers that show them must use Redact).
func (a *App) Notifications() (notify.Config, error) {
	s, err := a.Vault.Get(notifySecret)
	if errors.Is(err, secrets.ErrNotFound) {
		return notify.Config{}, nil
	}
	if err != nil {
		return notify.Config{}, err
	}
	var c notify.Config
	if err := json.Unmarshal([]byte(s.Password), &c); err != nil {
		return notify.Config{}, fmt.Errorf("read the notification settings: %w", err)
	}
	return c, nil
}

// SetNotifications checks and stores the settings encrypted. An empty
// SMTP password or webhook secret keeps the stored one (forms never see
// the secrets, so they send them empty).
func (a *App) SetNotifications(c notify.Config) error {
	old, _ := a.Notifications()
	if c.Email != nil && old.Email != nil && c.Email.Password == "" && c.Email.Username == old.Email.Username {
		c.Email.Password = old.Email.Password
	}
	for i := range c.Webhooks {
		if c.Webhooks[i].Secret != "" {
			continue
		}
		for _, o := range old.Webhooks {
			if o.URL == c.Webhooks[i].URL {
				c.Webhooks[i].Secret = o.Secret
			}
		}
	}
	if err := c.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return a.Vault.Put(notifySecret, secrets.Secret{Kind: "notify", Password: string(b)})
}

// Redact returns c without its secrets, saying where one is set.
func Redact(c notify.Config) notify.Config {
	if c.Email != nil {
		e := *c.Email
		if e.Password != "" {
			e.Password = "(set)"
		}
		c.Email = &e
	}
	hooks := make([]notify.WebhookConfig, len(c.Webhooks))
	for i, w := range c.Webhooks {
		if w.Secret != "" {
			w.Secret = "(set)"
		}
		hooks[i] = w
	}
	c.Webhooks = hooks
	return c
}

// alerter turns what happens on the appliance into notifications: job
// failures as they end, RPO misses (checked every 15 minutes), verify
// damage, and the daily summary at 08:00.
type alerter struct {
	svc      *Services
	mu       sync.Mutex
	notifier *notify.Notifier
	loaded   time.Time
}

func (al *alerter) current() *notify.Notifier {
	al.mu.Lock()
	defer al.mu.Unlock()
	if al.notifier != nil && time.Since(al.loaded) < time.Minute {
		return al.notifier
	}
	cfg, err := al.svc.app.Notifications()
	if err != nil {
		al.svc.app.Log.Warn("notification settings unreadable", "err", err)
		return nil
	}
	n, err := notify.New(cfg, notify.Options{Log: al.svc.app.Log, Hostname: applianceName()})
	if err != nil {
		al.svc.app.Log.Warn("notification settings invalid", "err", err)
		return nil
	}
	al.notifier, al.loaded = n, time.Now()
	return n
}

// reset makes the next event reload the settings.
func (al *alerter) reset() {
	al.mu.Lock()
	al.notifier = nil
	al.mu.Unlock()
}

func (al *alerter) send(ctx context.Context, e notify.Event) {
	n := al.current()
	if n == nil {
		return
	}
	if err := n.Notify(ctx, e); err != nil {
		al.svc.app.Log.Warn("notification not delivered", "kind", e.Kind, "err", err)
	}
}

func applianceName() string {
	h, _ := os.Hostname()
	return h
}

// run watches the job events and the clock until stop closes.
func (al *alerter) run(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	events, unsub := al.svc.Manager.Subscribe()
	defer unsub()
	rpo := time.NewTicker(15 * time.Minute)
	defer rpo.Stop()
	nextSummary := nextAt(time.Now(), 8)
	summary := time.NewTimer(time.Until(nextSummary))
	defer summary.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Type == jobs.EventJob && (ev.JobState == jobs.JobFailed || ev.JobState == jobs.JobInterrupted) {
				if j, err := al.svc.Job(ev.JobID); err == nil {
					al.send(ctx, JobFailedEvent(j))
				}
			}
		case <-rpo.C:
			al.checkRPO(ctx)
		case <-summary.C:
			al.sendSummary(ctx, nextSummary.Add(-24*time.Hour))
			nextSummary = nextAt(time.Now(), 8)
			summary.Reset(time.Until(nextSummary))
		}
	}
}

// nextAt is the next time the local clock shows hour:00 after now.
func nextAt(now time.Time, hour int) time.Time {
	t := time.Date(now.Year(), now.Month(), now.Day(), hour, 0, 0, 0, now.Location())
	if !t.After(now) {
		t = t.AddDate(0, 0, 1)
	}
	return t
}

// JobFailedEvent describes a failed job for the administrator.
func JobFailedEvent(j jobs.Job) notify.Event {
	var lines []string
	failed := 0
	for _, v := range j.VMs {
		if v.Error != "" {
			failed++
			lines = append(lines, fmt.Sprintf("%s: %s", v.Name, v.Error))
		}
	}
	if j.Error != "" {
		lines = append([]string{j.Error}, lines...)
	}
	subject := fmt.Sprintf("Backup job %s of policy %s %s", j.ID, j.PolicyName, j.State)
	if failed > 0 {
		subject = fmt.Sprintf("Backup of %d VM(s) failed (policy %s)", failed, j.PolicyName)
	}
	return notify.Event{Kind: notify.KindJobFailed, Severity: notify.SeverityCritical, Subject: subject,
		Text:   strings.Join(lines, "\n"),
		Fields: map[string]string{"job": j.ID, "policy": j.PolicyID, "state": string(j.State)}, Link: "/jobs/" + j.ID}
}

func (al *alerter) checkRPO(ctx context.Context) {
	rep, err := al.svc.Protection(ctx)
	if err != nil {
		return
	}
	for _, v := range rep.VMs {
		if !v.RPOMiss {
			continue
		}
		last := "never"
		if !v.LastBackup.IsZero() {
			last = v.LastBackup.Format(time.RFC1123)
		}
		al.send(ctx, notify.Event{Kind: notify.KindRPOMiss, Severity: notify.SeverityWarning,
			Subject: fmt.Sprintf("%s misses its recovery point objective", v.Name),
			Text:    fmt.Sprintf("The newest good backup of %s is from %s; its policies (%s) want one every %s.", v.Name, last, strings.Join(v.Policies, ", "), v.RPO),
			Fields:  map[string]string{"vm": v.Name, "uuid": v.UUID}, Link: "/vms/" + v.UUID})
	}
}

// VerifyDamageEvent reports damaged points found by a verify.
func VerifyDamageEvent(rep *store.VerifyReport) (notify.Event, bool) {
	if rep == nil || (len(rep.Damaged) == 0 && len(rep.ContainersDamaged) == 0) {
		return notify.Event{}, false
	}
	var ids []string
	for _, id := range rep.Damaged {
		ids = append(ids, string(id))
	}
	return notify.Event{Kind: notify.KindVerifyDamage, Severity: notify.SeverityCritical,
		Subject: fmt.Sprintf("Verify found damage: %d point(s), %d container(s)", len(rep.Damaged), len(rep.ContainersDamaged)),
		Text:    "Damaged recovery points:\n" + strings.Join(ids, "\n") + "\n\nThe next backup of each affected VM stores the damaged data again; run a full verify after it.",
		Link:    "/storage"}, true
}

func (al *alerter) sendSummary(ctx context.Context, since time.Time) {
	n := al.current()
	if n == nil {
		return
	}
	s := notify.Summary{Date: since, StoredBytes: -1, FreeBytes: -1}
	for _, j := range al.svc.Jobs(jobs.JobFilter{}) {
		if j.Finished.Before(since) {
			continue
		}
		switch j.State {
		case jobs.JobSucceeded:
			s.JobsSucceeded++
		case jobs.JobWarning:
			s.JobsWarning++
		case jobs.JobFailed, jobs.JobInterrupted:
			s.JobsFailed++
			s.Failed = append(s.Failed, JobFailedEvent(j).Subject)
		}
	}
	if rep, err := al.svc.Protection(ctx); err == nil {
		for _, v := range rep.VMs {
			if v.RPOMiss {
				s.RPOMisses = append(s.RPOMisses, v.Name)
			}
			if v.Unprotected {
				s.Alerts = append(s.Alerts, "unprotected VM: "+v.Name)
			}
		}
	} else {
		s.Alerts = append(s.Alerts, "the vCenter could not be read: "+err.Error())
	}
	if p, err := al.svc.app.PoolState(); err == nil {
		s.StoredBytes, s.FreeBytes = p.Store.Stored, p.Free
	}
	if err := n.Notify(ctx, notify.SummaryEvent(s)); err != nil {
		al.svc.app.Log.Warn("daily summary not delivered", "err", err)
	}
}

// Notifications returns the settings without their secrets.
func (s *Services) Notifications() (notify.Config, error) {
	c, err := s.app.Notifications()
	return Redact(c), err
}

// SetNotifications stores new settings (empty secrets keep the old ones).
func (s *Services) SetNotifications(c notify.Config) error {
	if err := s.app.SetNotifications(c); err != nil {
		return err
	}
	s.alerts.reset()
	return nil
}

// TestNotifications sends a test event to every channel.
func (s *Services) TestNotifications(ctx context.Context) error {
	cfg, err := s.app.Notifications()
	if err != nil {
		return err
	}
	n, err := notify.New(cfg, notify.Options{Log: s.app.Log, Hostname: applianceName()})
	if err != nil {
		return err
	}
	return n.Test(ctx)
}
