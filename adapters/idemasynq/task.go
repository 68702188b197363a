package idemasynq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/idemkit/idemkit/core"
)

// ErrNoClaim reports that [TaskKey] or [NewTask] was called with a context
// that carries no idempotency claim: not from inside a handler guarded by
// idemkit (an HTTP middleware, or [core.Engine.Do]).
var ErrNoClaim = errors.New("idemasynq: the context carries no idempotency claim")

// TaskKey derives, inside a guarded handler, the idempotency key of a task
// of type typ that the handler enqueues: a digest of the handler's own
// scoped key (its storage key, [core.HeldClaim]), the task type and parts,
// 64 hexadecimal characters. A retry of the request (same key, same scope)
// derives the same key; tasks of other types, or with other parts, get
// other keys, so one request can enqueue several tasks. It returns
// [ErrNoClaim] when ctx carries no claim.
func TaskKey(ctx context.Context, typ string, parts ...string) (string, error) {
	storage, _, ok := core.HeldClaim(ctx)
	if !ok {
		return "", ErrNoClaim
	}
	h := sha256.New()
	for _, s := range append([]string{"idemasynq", storage, typ}, parts...) {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// NewTask returns, inside a guarded handler, a task of type typ whose
// idempotency key is [TaskKey](ctx, typ): set as its [HeaderKey] header, so
// that the consumer's [Middleware] runs it once, and as its asynq.TaskID,
// so that a retried request does not enqueue it twice while the first copy
// is queued ([Enqueue] treats that conflict as success). opts come after
// the TaskID option (a TaskID among them replaces it). The payload must be
// the same on every retry of the request: another payload under the same
// key is refused by the consumer (archived). It returns [ErrNoClaim] when
// ctx carries no claim.
func NewTask(ctx context.Context, typ string, payload []byte, opts ...asynq.Option) (*asynq.Task, error) {
	key, err := TaskKey(ctx, typ)
	if err != nil {
		return nil, err
	}
	return asynq.NewTaskWithHeaders(typ, payload, map[string]string{HeaderKey: key},
		append([]asynq.Option{asynq.TaskID(key)}, opts...)...), nil
}

// Enqueue enqueues t with client, as client.EnqueueContext does, and
// treats asynq.ErrTaskIDConflict as success (with a nil TaskInfo): the task
// is already queued, by an earlier try of the same request.
func Enqueue(ctx context.Context, client *asynq.Client, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	info, err := client.EnqueueContext(ctx, t, opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil, nil
	}
	return info, err
}
