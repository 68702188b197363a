package core

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Transactor is an optional interface of a [Store] whose backend can hold
// the handler's own writes (stores/pgxstore: the handler's Postgres
// writes). With [WithTransactions], the Engine begins a transaction after
// the claim is acquired, runs the handler with the context Begin returned
// (from which the handler takes the transaction, e.g. pgxstore.Tx), and
// completes the record inside that transaction as it commits: the
// handler's writes and the stored response become durable together or
// not at all. A crash, a panic or a lost lease before the commit leaves
// nothing behind but a pending claim whose lease lapses, so a retry runs
// the handler once more; a commit that landed leaves a completed record,
// which a retry replays. docs/contract.md tabulates each crash point.
type Transactor interface {
	// Begin starts a transaction for the claim of key held with token. The
	// returned context derives from ctx and carries the transaction for
	// the handler; the returned Transaction ends it, once.
	Begin(ctx context.Context, key string, token Token) (context.Context, Transaction, error)
}

// Transaction is a transaction begun by [Transactor.Begin].
type Transaction interface {
	// Commit completes the record of the claim with resp, retained for ttl,
	// inside the transaction and commits it. The completion is fenced like
	// [Store.Complete]: when the claim is no longer held with its token
	// under a live lease, Commit rolls the transaction back and returns an
	// error wrapping [ErrLeaseLost]. Any error means the handler's writes
	// may not have been applied; an error wrapping ErrLeaseLost means they
	// were not. resp is handed over as for Store.Complete.
	Commit(ctx context.Context, resp *Response, ttl time.Duration) error
	// Rollback abandons the transaction and the handler's writes in it.
	Rollback(ctx context.Context) error
}

// WithTransactions runs every guarded handler in a transaction of the
// store, which must implement [Transactor] (New panics otherwise), and
// completes the record in it [false]. A response the completion policy
// would release (or a panic, or [MarkNotApplied]) rolls the transaction
// back and releases the claim. A transaction that cannot begin or commit
// answers 503 with Retry-After, as a store outage does: the handler's
// writes were rolled back, or (a commit whose reply was lost) landed with
// the record, which a retry then replays ([WithFailOpen] does not run a
// handler whose transaction could not begin). A wrapping store (a tiered
// store, say) hides its inner store's Transactor: give the Engine the
// Transactor. Background completion ([WithCompleteWait]) does not apply: a
// transaction is committed by its request or not at all.
func WithTransactions(enabled bool) Option { return func(c *config) { c.transactions = enabled } }

// ErrTxNotCommitted reports, in an [Event], a transaction that did not
// commit: the handler's writes were rolled back (or, with a lost reply,
// committed with the record) and the client was answered 503.
var ErrTxNotCommitted = errors.New("core: the handler's transaction did not commit")

// executeTx is execute for an Engine with transactions: the handler runs
// inside a transaction that stores its response as it commits.
func (e *Engine) executeTx(ctx context.Context, x Exchange, skey string, fp Fingerprint, token Token, body []byte, latency time.Duration, claimed time.Time, ttl time.Duration) {
	bg := context.WithoutCancel(ctx)
	start := e.clock()
	tctx, tx, err := e.tx.Begin(ctx, skey, token)
	if err != nil {
		// No handler ran: free the key at once and ask for a retry.
		rerr := e.release(bg, skey, token)
		status := e.sendProblem(x, problemStoreUnavailable, "", e.cfg.retryAfter)
		e.observe(ctx, x, Event{Outcome: OutcomeStoreUnavailable, KeyHash: skey, Status: status, StoreLatency: latency + e.since(start),
			Err: txErr(fmt.Errorf("begin: %w", errors.Join(err, rerr)))})
		return
	}
	latency += e.since(start)
	rollback := func(ctx context.Context) error { return e.rollback(ctx, tx) }
	resp, release, why, _ := e.runHandler(ctx, bg, tctx, x, skey, token, body, claimed, rollback)
	if release {
		e.releaseAfter(ctx, bg, x, skey, token, resp, why, latency, rollback)
		return
	}

	start = e.clock()
	stored := e.seal(e.storable(resp), skey, fp)
	err = e.commit(bg, skey, tx, stored, ttl)
	if err != nil {
		// The handler's writes were rolled back (or, the reply of a commit
		// that landed being lost, are stored with the record): never show
		// a response that may not have happened. Releasing frees the key
		// for a retry at once; it fails harmlessly on a record the commit
		// did complete, or that another holder took over.
		if !errors.Is(err, ErrLeaseLost) {
			err = errors.Join(err, e.release(bg, skey, token))
		} else {
			e.observe(ctx, x, Event{Outcome: EventLeaseLost, KeyHash: skey, Err: err})
		}
		status := e.sendProblem(x, problemStoreUnavailable, "", e.cfg.retryAfter)
		e.observe(ctx, x, Event{Outcome: OutcomeStoreUnavailable, KeyHash: skey, Status: status, StoreLatency: latency + e.since(start),
			Err: txErr(err)})
		return
	}
	x.Send(resp)
	e.observe(ctx, x, Event{Outcome: OutcomeExecuted, KeyHash: skey, Status: resp.Status, StoreLatency: latency + e.since(start)})
}

// commit completes the record in tx, retained for ttl, and commits it, bounded by the store
// timeout when one is set.
func (e *Engine) commit(ctx context.Context, skey string, tx Transaction, resp *Response, ttl time.Duration) error {
	ctx, end := e.phase(ctx, PhaseComplete, skey)
	ctx, cancel := e.storeCtx(ctx)
	defer cancel()
	err := tx.Commit(ctx, resp, ttl)
	if err != nil && !errors.Is(err, ErrStoreUnavailable) && !errors.Is(err, ErrLeaseLost) {
		err = fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	end(err)
	return err
}

// rollback ends tx without its writes, bounded by the store timeout.
func (e *Engine) rollback(ctx context.Context, tx Transaction) error {
	ctx, cancel := e.storeCtx(ctx)
	defer cancel()
	return tx.Rollback(ctx)
}

// txErr is the error reported for a transaction that did not commit: it
// wraps ErrTxNotCommitted and, as every 503 of the Engine, ErrStoreUnavailable
// (what [Engine.Do] returns).
func txErr(err error) error {
	if errors.Is(err, ErrStoreUnavailable) {
		return fmt.Errorf("%w: %w", ErrTxNotCommitted, err)
	}
	return fmt.Errorf("%w: %w: %w", ErrTxNotCommitted, ErrStoreUnavailable, err)
}
