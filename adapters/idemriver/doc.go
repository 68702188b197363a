// Package idemriver runs the work of River jobs at most once per
// idempotency key: a worker middleware that puts every job through
// [core.Engine.Do]. A job River works again — retried after a completion it
// could not record, rescued after RescueStuckJobsAfter while its first
// worker still runs, or the same logical job inserted twice — performs its
// side effect once.
//
//	engine := core.New(pgxstore.New(pool))
//	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
//		Queues:     map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
//		Workers:    workers,
//		Middleware: []rivertype.Middleware{idemriver.Middleware(engine)},
//	})
//
// # Keys and scopes
//
// A job's key is, in this order: the key [WithArgsKey] takes from the args
// of its kind (a key the producer chose, the same for every insert of one
// logical job), the key of [WithKeyFunc], or [JobIDKey], which guards one
// job's own redeliveries. Keys are scoped by job kind (see [WithScope]).
// The job's kind is the call's name and its encoded args its input: a key
// reused with other args is refused.
//
// # What happens to the job
//
//   - first delivery: the worker runs under a claim; whatever it returns is
//     the job's result (nil completes it, an error is River's to retry, a
//     snooze or a cancel is River's as well). A success is stored; an error
//     releases the claim, so River's retry runs the worker again — unless the
//     worker declared its side effect done with [core.MarkApplied], then the
//     failure is stored and the retry is cancelled without running.
//   - a delivery after a success: the worker does not run, and Work returns
//     nil: River completes the job.
//   - while another worker holds the key: the job is snoozed (River's
//     JobSnooze, which is not an attempt) for the holder's remaining lease,
//     at least a second, and looks again then.
//   - the key reused with other args: the job is cancelled (River's
//     JobCancel, never retried), wrapping [core.ErrFingerprintMismatch]; the
//     same for a key the engine refuses, args over its body limit, a stored
//     failure ([core.ErrFailureReplayed]) and a key function's error.
//   - the store unreachable: an error wrapping [core.ErrStoreUnavailable],
//     the worker not run; River retries with its backoff.
//
// # Leases, JobTimeout and RescueStuckJobsAfter
//
// The engine's lease ([core.WithLease], 30 s) needs no matching to River's
// timeouts: it is renewed every third of its length for as long as the
// worker runs, even past JobTimeout when a worker ignores its context. A
// job River rescues after RescueStuckJobsAfter while its first worker still
// runs is therefore snoozed, not run a second time; once that worker
// returns, the next delivery completes the job without running it. A worker
// that returned, its result stored, in a process that stopped before River
// recorded the completion is covered as well: the rescued job completes
// without running. A worker process that dies mid-job is the at-least-once
// case of docs/contract.md C-LEASE-1: its claim lapses one lease later, and the
// rescued job runs again. A worker whose side effect is a write of its own
// can make that write conditional on still holding the claim, with the
// fencing token of [core.HeldClaim].
//
// Keep the engine's TTL ([core.WithTTL], 24 h) longer than the time in which
// the same logical job may be inserted again: after it, a new insert runs.
//
// River's unique jobs refuse a duplicate insert only while an earlier job
// with the same unique properties is in one of the unique states; this
// middleware guards the work itself, for as long as the TTL keeps the
// record.
//
// Jobs run through [core.Engine.Do], which has no native request object
// and never calls the engine's scope, skip or route-options functions
// ([core.WithKeyScope], [core.ScopeBy], [core.SkipBy],
// [core.RouteOptionsBy], …): an engine shared with an HTTP adapter keeps
// them for HTTP, and jobs are scoped by [WithScope] (a function of the
// *rivertype.JobRow) instead.
package idemriver
