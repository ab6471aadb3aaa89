// Package jobs decides what the appliance backs up and when, and keeps
// the record of it. It owns:
//
//   - backup policies: which VMs (a Selection evaluated against the
//     inventory at every run, so new VMs that match are protected without
//     editing anything), when (a schedule.Event and schedule.Window in the
//     policy's time zone), how (consistency, guest hooks, credentials) and
//     for how long (a store.Retention applied after each good backup);
//   - the persistent job queue and the job history;
//   - the scheduler, which queues a job at each schedule instant and,
//     after downtime, one "missed" run per policy;
//   - the runner and its concurrency limits: VM backups per ESXi host, per
//     datastore and in all, and disk streams in all;
//   - live events for user interfaces, and the protection report (which
//     VMs are unprotected or miss their recovery point objective).
//
// It never talks to vSphere or the store itself. It uses the interfaces
// Backupper (*vsphere.Engine), InventorySource (*vsphere.Client),
// PointStore (*store.Store) and Secrets.
//
// # State
//
// A Manager keeps its state in a directory: policies/<id>.json,
// jobs/<id>.json (queued, running and finished jobs; the newest 1000
// finished ones are kept) and schedule.json (the last schedule instant
// handled per policy). Each file is replaced atomically (temporary file,
// fsync, rename, directory fsync), so a crash leaves the old or the new
// version, never half of one. A file that cannot be read is renamed to
// *.corrupt, logged, and otherwise ignored.
//
// When Open finds a job that was running, the appliance stopped during
// it: the job and its running VMs are marked interrupted, and Start sweeps
// the snapshots the crash may have left (Backupper.SweepSnapshots) before
// it runs anything, noting the outcome on the interrupted job. Queued jobs
// stay queued and run.
//
// # Running jobs
//
// Jobs start in queue order (the policy's priority, higher first, then
// age), up to Options.MaxJobs at once. A started job lists the VMs its
// policy selects, by name, and starts each as soon as the limits allow; the
// jobs running together share the limits, and VMs of higher-priority jobs
// are considered first. A VM on several datastores takes a slot on each.
// A VM that another job is backing up is skipped, saying which job.
//
// Scheduled and missed runs respect the policy's window: VMs that have not
// started when it closes are skipped ("backup window ended"); those
// running finish. Manual runs ignore the window.
//
// After each successful VM backup the VM's points are pruned with the
// policy's retention (if several policies select the VM, each count is the
// largest of theirs, so that no policy loses points it wants kept).
// Retention errors become job warnings. Every VerifyEvery-th good backup of
// a VM (counted from the history, across policies) asks the engine to
// verify changed block tracking.
//
// A job ends succeeded when every VM was backed up without warnings,
// warning when some VM has warnings or was skipped (or the policy selected
// nothing), failed when a VM failed or the job could not start (policy
// deleted, inventory unreadable), canceled after Cancel and interrupted
// when the manager stopped (Close) or crashed while it ran.
//
// # Scheduling
//
// Every enabled policy with a schedule gets a job at each instant of its
// schedule that falls inside its window; a policy whose previous job is
// still queued or running is not queued again. The instants handled are
// persisted, so that after downtime schedule.Missed tells whether runs
// were missed; if so, one job with trigger "missed" is queued (when the
// window is open; otherwise when it next opens). The clock is injectable
// (Options.Now, Options.After and Manager.Wake) so that tests do not wait.
//
// # Recovery point objectives
//
// A policy's RPO defaults to 1.5 times the longest interval between two of
// its runs over the next 14 days, and at least an hour (see
// Policy.EffectiveRPO). The protection report flags a VM when a policy
// selecting it has existed longer than its RPO and the VM's newest point
// (whoever made it) is older than that RPO, or missing.
package jobs
