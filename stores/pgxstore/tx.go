package pgxstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
)

var _ core.Transactor = (*Store)(nil)

// completeTxSQL is completeSQL judged at the statement's own time:
// inside a transaction now() is the time the transaction began, and the
// lease must be live when the record is completed, not when the handler
// started.
func completeTxSQL(completeSQL string) string {
	return strings.ReplaceAll(completeSQL, "now()", "statement_timestamp()")
}

// WithTxOptions sets the options of the transactions [Store.Begin] opens
// for handlers (isolation level, access mode) [pgx.TxOptions{}: the
// server's default, READ COMMITTED unless configured otherwise].
func WithTxOptions(o pgx.TxOptions) Option {
	return func(c *config) { c.txOptions = o }
}

// completeArgs validates resp and returns the arguments of completeSQL.
func completeArgs(key string, token core.Token, resp *core.Response, ttl time.Duration) ([]any, error) {
	if resp == nil {
		return nil, errors.New("nil response")
	}
	if resp.Status < 100 || resp.Status > 599 {
		return nil, fmt.Errorf("status %d outside 100-599", resp.Status)
	}
	headers := codec.AppendHeader(make([]byte, 0, 64), resp.Header)
	body := resp.Body
	if body == nil || resp.BodyOmitted {
		body = []byte{}
	}
	return []any{key, string(token), int32(resp.Status), headers, body, resp.BodyOmitted, micros(ttl)}, nil
}

// CompleteTx completes the record of key, held with token, inside the
// caller's transaction tx: the handler's writes in tx and the stored
// response commit together or not at all. It is [Store.Complete] (the same
// fencing, the same idempotency for the holder) run on tx, with the lease
// judged at the statement's time. When the claim is no longer held with
// token under a live lease — it lapsed and was perhaps taken over — it
// returns an error wrapping [core.ErrLeaseLost] and changes nothing: the
// caller must roll tx back, so a holder that lost its lease cannot commit
// its writes. Any other error has aborted tx as well. CompleteTx holds
// the record's row lock until tx ends, so commit soon after it.
//
// key and token are those of the claim the work runs under:
// [core.HeldClaim] inside a handler the Engine guards. There, after tx
// commits, the Engine's own Complete finds the record completed with its
// token and leaves it as it is: the response stored is the one given
// here, not the one the handler returns (make them the same), and it
// carries no record MAC, so it does not replay under
// [core.WithHMACSecret]. [core.WithTransactions] has neither limit.
func (s *Store) CompleteTx(ctx context.Context, tx pgx.Tx, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	args, err := completeArgs(key, token, resp, ttl)
	if err != nil {
		return fmt.Errorf("pgxstore: complete in transaction: %w", err)
	}
	tag, err := tx.Exec(ctx, s.completeTxSQL, args...)
	return completed("complete in transaction", tag.RowsAffected(), err)
}

// CompleteSQLTx is [Store.CompleteTx] for a *sql.Tx of database/sql on
// pgx's stdlib driver (or any PostgreSQL driver that takes []byte as
// bytea).
func (s *Store) CompleteSQLTx(ctx context.Context, tx *sql.Tx, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	args, err := completeArgs(key, token, resp, ttl)
	if err != nil {
		return fmt.Errorf("pgxstore: complete in transaction: %w", err)
	}
	res, err := tx.ExecContext(ctx, s.completeTxSQL, args...)
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	return completed("complete in transaction", n, err)
}

func completed(op string, rows int64, err error) error {
	if err != nil {
		return wrap(op, err)
	}
	if rows == 0 {
		return fmt.Errorf("pgxstore: %s: %w", op, core.ErrLeaseLost)
	}
	return nil
}

type txKey struct{}

// Tx returns the transaction the handler with context ctx runs in, under
// [core.WithTransactions] on this store, and whether there is one. The
// handler makes its writes on it and neither commits nor rolls it back
// (its Commit and Rollback return [ErrTxOwned]): the Engine completes the
// record in it and commits once the handler has returned a response to
// store, and rolls it back when the claim is released (an error response
// the completion policy releases, [core.MarkNotApplied], a panic). A
// savepoint (tx.Begin) is the handler's to end.
func Tx(ctx context.Context) (pgx.Tx, bool) {
	t, ok := ctx.Value(txKey{}).(*transaction)
	if !ok {
		return nil, false
	}
	return handlerTx{t.tx}, true
}

// ErrTxOwned is returned by Commit and Rollback of the transaction [Tx]
// returns: the Engine ends it.
var ErrTxOwned = errors.New("pgxstore: the engine commits or rolls back this transaction")

// handlerTx is the transaction as the handler sees it.
type handlerTx struct{ pgx.Tx }

func (handlerTx) Commit(context.Context) error   { return ErrTxOwned }
func (handlerTx) Rollback(context.Context) error { return ErrTxOwned }

// transaction is a handler's transaction: a [core.Transaction].
type transaction struct {
	s     *Store
	tx    pgx.Tx
	key   string
	token core.Token
}

// Begin implements [core.Transactor]: it begins a transaction on the pool
// (with [WithTxOptions]) for the claim of key held with token, and returns
// a context carrying it for [Tx].
func (s *Store) Begin(ctx context.Context, key string, token core.Token) (context.Context, core.Transaction, error) {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	tx, err := s.pool.BeginTx(bctx, s.cfg.txOptions)
	if err != nil {
		return nil, nil, wrap("begin", err)
	}
	t := &transaction{s: s, tx: tx, key: key, token: token}
	return context.WithValue(ctx, txKey{}, t), t, nil
}

// Commit completes the record in the transaction ([Store.CompleteTx]) and
// commits it; when the completion fails, it rolls the transaction back.
func (t *transaction) Commit(ctx context.Context, resp *core.Response, ttl time.Duration) error {
	ctx, cancel := t.s.bound(ctx)
	defer cancel()
	if err := t.s.CompleteTx(ctx, t.tx, t.key, t.token, resp, ttl); err != nil {
		return errors.Join(err, t.rollback(ctx))
	}
	if err := t.tx.Commit(ctx); err != nil {
		return wrap("commit", err)
	}
	return nil
}

// Rollback implements [core.Transaction.Rollback].
func (t *transaction) Rollback(ctx context.Context) error {
	ctx, cancel := t.s.bound(ctx)
	defer cancel()
	return t.rollback(ctx)
}

func (t *transaction) rollback(ctx context.Context) error {
	if err := t.tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return wrap("rollback", err)
	}
	return nil
}
