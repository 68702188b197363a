// Package idemasynq runs asynq tasks at most once per idempotency key, with
// an idemkit engine ([core.Engine.Do]) over any idemkit store.
//
// asynq delivers a task at least once: a worker that dies mid-task, or
// after the side effect and before asynq recorded the task done, leaves it
// to be delivered again, and TaskID and Unique guard only the enqueue, only
// while the task exists. [Middleware] makes the handler's side effect
// happen once:
//
//	srv := asynq.NewServer(redisOpt, asynq.Config{RetryDelayFunc: idemasynq.RetryDelay(nil)})
//	mux := asynq.NewServeMux()
//	mux.Use(idemasynq.Middleware(engine))
//	mux.HandleFunc("email:send", sendEmail)
//
// A task's key is the Idempotency-Key header its producer set
// (asynq.NewTaskWithHeaders), else its task ID; its scope is its type. A
// repeat is acknowledged without running the handler; a repeat while the
// first delivery runs is retried; a key reused with another payload is
// archived (asynq.SkipRetry); a handler error releases the key, so asynq's
// retry runs the handler again.
//
// One key from request to job: inside an HTTP handler guarded by idemkit,
// [NewTask] derives the task's key from the request's own scoped key and
// sets it as the header and as the asynq TaskID, and [Enqueue] takes a
// TaskID conflict for success, so a retried POST neither enqueues the task
// twice nor runs it twice.
//
// Crashes: while a worker lives, the engine renews its claim and asynq its
// lease; when it dies, the redelivery runs once the engine's lease has
// lapsed (see [Middleware] for how the two leases fit). The rules are those
// of docs/contract.md, applied to tasks.
//
// Tasks run through [core.Engine.Do], which has no native request object
// and never calls the engine's scope, skip or route-options functions
// ([core.WithKeyScope], [core.ScopeBy], [core.SkipBy],
// [core.RouteOptionsBy], …): an engine shared with an HTTP adapter keeps
// them for HTTP, and tasks are scoped by [WithScope] (a function of the
// *asynq.Task) instead.
package idemasynq
