package pgxstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemkit/idemkit/core"
)

// DefaultStepRetention is how long a recorded step is kept; see
// [WithStepRetention]. It equals [core.DefaultTTL].
const DefaultStepRetention = core.DefaultTTL

// WithStepRetention sets how long a step recorded by [Store.Step] is kept
// [DefaultStepRetention]: it must cover the time from a crash to the
// retry that resumes the request, and should not exceed the engine's TTL
// ([core.WithTTL]), so that a key reused with the same payload after its
// record expired starts over. d must be positive (New panics otherwise).
func WithStepRetention(d time.Duration) Option {
	return func(c *config) { c.stepRetention = d }
}

// ErrNoClaim is returned by [Store.Step] when its context carries no claim
// (the handler is not guarded by an Engine).
var ErrNoClaim = errors.New("pgxstore: step: the context carries no claim")

// stepLookupSQL: $1 key, $2 step name, $3 token. A step counts for the
// claim held with $3 when it was recorded for the same key and
// fingerprint: by an earlier holder of the same request.
const stepLookupSQL = `SELECT s.payload FROM %[2]s s JOIN %[1]s r ON r.key = s.key AND r.fingerprint = s.fingerprint
WHERE s.key = $1 AND s.name = $2 AND s.expires_at > now()
	AND r.state = 'pending' AND r.lease_token = $3 AND r.expires_at > now()`

// stepRecordSQL: $1 key, $2 step name, $3 token, $4 payload, $5 retention
// in microseconds. It records the step for the record pending with $3
// under a lease live at the statement's time (inside the step's
// transaction now() is its start), holding the record's row lock until the
// commit so no takeover slips in between. A step of the key left by
// another request (another fingerprint) or expired is replaced. No row
// means the claim is lost.
const stepRecordSQL = `INSERT INTO %[2]s AS s (key, name, fingerprint, payload, created_at, expires_at)
SELECT r.key, $2, r.fingerprint, $4, statement_timestamp(), statement_timestamp() + $5::bigint * interval '1 microsecond'
FROM %[1]s r
WHERE r.key = $1 AND r.state = 'pending' AND r.lease_token = $3 AND r.expires_at > statement_timestamp()
FOR SHARE
ON CONFLICT (key, name) DO UPDATE SET fingerprint = excluded.fingerprint, payload = excluded.payload,
	created_at = excluded.created_at, expires_at = excluded.expires_at
WHERE s.fingerprint <> excluded.fingerprint OR s.expires_at <= statement_timestamp()`

// pruneStepsSQL deletes at most $1 expired steps, as pruneSQL does records.
const pruneStepsSQL = `DELETE FROM %[1]s
WHERE ctid = ANY(ARRAY(
	SELECT ctid FROM %[1]s
	WHERE expires_at <= now()
	LIMIT $1
	FOR UPDATE SKIP LOCKED
)) AND expires_at <= now()`

// Step is a recovery point (an atomic phase) of the request the handler
// with context ctx runs under: the first time, it runs fn in a transaction
// of its own and records the step named name, with fn's payload, in that
// transaction as it commits, so the step's writes and its record become
// durable together. When the step was already recorded for this request —
// by an attempt that crashed, panicked or was released after it — Step
// returns the recorded payload without running fn. A retry after a crash
// thus resumes after the last recorded step instead of starting over, and
// ends like any request: its response is stored and replayed.
//
// The step is fenced like [Store.Complete]: when the claim is no longer
// held with its token under a live lease at the commit, Step rolls fn's
// writes back and returns an error wrapping [core.ErrLeaseLost]. An error
// from fn rolls back too and is returned as it is (wrapped); nothing is
// recorded. ctx must carry the claim ([core.HeldClaim]: the handler's
// context under an Engine), or Step returns [ErrNoClaim]. Steps of one
// request run one after another; name identifies a step within the
// request. Work outside the database in fn (a call to a payment provider)
// runs again when the process dies after it and before the commit: give
// such calls an idempotency key of their own, e.g. derived from an earlier
// step's payload. The handler's transaction of transactional mode ([Tx])
// is distinct: its writes commit with the response, at the end.
func (s *Store) Step(ctx context.Context, name string, fn func(ctx context.Context, tx pgx.Tx) ([]byte, error)) ([]byte, error) {
	key, token, ok := core.HeldClaim(ctx)
	if !ok {
		return nil, ErrNoClaim
	}
	if name == "" {
		return nil, errors.New("pgxstore: step: empty name")
	}
	if err := checkText("step name", name); err != nil {
		return nil, fmt.Errorf("pgxstore: step: %w", err)
	}
	var payload []byte
	err := s.pool.QueryRow(ctx, s.stepLookupSQL, key, name, string(token)).Scan(&payload)
	switch {
	case err == nil:
		if payload == nil {
			payload = []byte{}
		}
		return payload, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, wrap("step "+name, err)
	}
	tx, err := s.pool.BeginTx(ctx, s.cfg.txOptions)
	if err != nil {
		return nil, wrap("step "+name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	payload, err = fn(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("pgxstore: step %s: %w", name, err)
	}
	if payload == nil {
		payload = []byte{}
	}
	tag, err := tx.Exec(ctx, s.stepRecordSQL, key, name, string(token), payload, micros(s.cfg.stepRetention))
	if err := completed("step "+name, tag.RowsAffected(), err); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, wrap("step "+name+": commit", err)
	}
	return payload, nil
}
