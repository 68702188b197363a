package core_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// txStore is a memstore with a fake Transactor: a transaction buffers the
// handler's writes and applies them to db only when Commit completes the
// record.
type txStore struct {
	*memstore.Store
	mu        sync.Mutex
	db        []string
	begins    int
	rollbacks int
	beginErr  error
	commitErr error // returned by Commit before anything is applied
}

type txKey struct{}

type fakeTx struct {
	s     *txStore
	key   string
	token core.Token
	buf   []string
	done  bool
}

func (s *txStore) Begin(ctx context.Context, key string, token core.Token) (context.Context, core.Transaction, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.beginErr != nil {
		return nil, nil, s.beginErr
	}
	s.begins++
	tx := &fakeTx{s: s, key: key, token: token}
	return context.WithValue(ctx, txKey{}, tx), tx, nil
}

func (tx *fakeTx) Commit(ctx context.Context, resp *core.Response, ttl time.Duration) error {
	if tx.done {
		return errors.New("fake: transaction already ended")
	}
	tx.done = true
	tx.s.mu.Lock()
	defer tx.s.mu.Unlock()
	if tx.s.commitErr != nil {
		return tx.s.commitErr
	}
	if err := tx.s.Complete(ctx, tx.key, tx.token, resp, ttl); err != nil {
		return err
	}
	tx.s.db = append(tx.s.db, tx.buf...)
	return nil
}

func (tx *fakeTx) Rollback(context.Context) error {
	if tx.done {
		return errors.New("fake: transaction already ended")
	}
	tx.done = true
	tx.s.mu.Lock()
	tx.s.rollbacks++
	tx.s.mu.Unlock()
	return nil
}

func write(ctx context.Context, row string) {
	ctx.Value(txKey{}).(*fakeTx).buf = append(ctx.Value(txKey{}).(*fakeTx).buf, row)
}

func (s *txStore) rows() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.db...)
}

func newTxEngine(t *testing.T) (*core.Engine, *txStore) {
	t.Helper()
	s := &txStore{Store: memstore.New()}
	t.Cleanup(func() { s.Close() })
	return core.New(s, core.WithTransactions(true), core.WithLease(time.Second)), s
}

func TestTransactionsCommit(t *testing.T) {
	e, s := newTxEngine(t)
	runs := 0
	fn := func(ctx context.Context) ([]byte, error) {
		runs++
		write(ctx, "row")
		return []byte("done"), nil
	}
	for i := range 2 {
		out, err := e.Do(context.Background(), core.Call{Key: "k"}, fn)
		if err != nil || string(out) != "done" {
			t.Fatalf("Do #%d = %q, %v; want done, nil", i+1, out, err)
		}
	}
	if runs != 1 || len(s.rows()) != 1 || s.begins != 1 || s.rollbacks != 0 {
		t.Errorf("runs %d, rows %q, begins %d, rollbacks %d; want 1 run, 1 row, 1 begin, 0 rollbacks: the second call replays",
			runs, s.rows(), s.begins, s.rollbacks)
	}
}

func TestTransactionsRollback(t *testing.T) {
	e, s := newTxEngine(t)
	fail := errors.New("declined")
	fn := func(ctx context.Context) ([]byte, error) {
		write(ctx, "row")
		return nil, fail
	}
	for i := range 2 {
		if _, err := e.Do(context.Background(), core.Call{Key: "k"}, fn); !errors.Is(err, fail) {
			t.Fatalf("Do #%d error = %v; want %v: an error releases and runs again", i+1, err, fail)
		}
	}
	if len(s.rows()) != 0 || s.rollbacks != 2 {
		t.Errorf("rows %q, rollbacks %d; want none, 2: a released claim's writes roll back", s.rows(), s.rollbacks)
	}
}

func TestTransactionsPanic(t *testing.T) {
	e, s := newTxEngine(t)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the handler's panic did not propagate")
			}
		}()
		_, _ = e.Do(context.Background(), core.Call{Key: "k"}, func(ctx context.Context) ([]byte, error) {
			write(ctx, "row")
			panic("boom")
		})
	}()
	if len(s.rows()) != 0 || s.rollbacks != 1 {
		t.Errorf("after a panic: rows %q, rollbacks %d; want none, 1", s.rows(), s.rollbacks)
	}
	out, err := e.Do(context.Background(), core.Call{Key: "k"}, func(ctx context.Context) ([]byte, error) {
		write(ctx, "row")
		return []byte("ok"), nil
	})
	if err != nil || string(out) != "ok" || len(s.rows()) != 1 {
		t.Errorf("retry after a panic = %q, %v, rows %q; want ok, nil, one row: the claim was released", out, err, s.rows())
	}
}

func TestTransactionsCommitFails(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
	}{
		{"Unavailable", core.ErrStoreUnavailable},
		{"Other", errors.New("fake: commit refused")},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, s := newTxEngine(t)
			s.commitErr = c.err
			ran := 0
			fn := func(ctx context.Context) ([]byte, error) {
				ran++
				write(ctx, "row")
				return []byte("ok"), nil
			}
			_, err := e.Do(context.Background(), core.Call{Key: "k"}, fn)
			if !errors.Is(err, core.ErrStoreUnavailable) || !errors.Is(err, core.ErrTxNotCommitted) {
				t.Fatalf("Do with a failing commit: error %v; want ErrStoreUnavailable and ErrTxNotCommitted", err)
			}
			s.mu.Lock()
			s.commitErr = nil
			s.mu.Unlock()
			out, err := e.Do(context.Background(), core.Call{Key: "k"}, fn)
			if err != nil || string(out) != "ok" || ran != 2 || len(s.rows()) != 1 {
				t.Errorf("retry = %q, %v after %d runs, rows %q; want ok, nil, 2 runs, one row: a failed commit releases the claim", out, err, ran, s.rows())
			}
		})
	}
}

func TestTransactionsLeaseLost(t *testing.T) {
	e, s := newTxEngine(t)
	_, err := e.Do(context.Background(), core.Call{Key: "k"}, func(ctx context.Context) ([]byte, error) {
		key, token, _ := core.HeldClaim(ctx)
		// Another holder's takeover, simulated: the claim is gone.
		if err := s.Release(ctx, key, token); err != nil {
			t.Fatal(err)
		}
		write(ctx, "row")
		return []byte("ok"), nil
	})
	if !errors.Is(err, core.ErrLeaseLost) || !errors.Is(err, core.ErrStoreUnavailable) {
		t.Errorf("Do whose claim was lost: error %v; want ErrLeaseLost (and ErrStoreUnavailable)", err)
	}
	if len(s.rows()) != 0 {
		t.Errorf("rows %q; want none: a holder that lost its claim cannot commit", s.rows())
	}
}

func TestTransactionsBeginFails(t *testing.T) {
	e, s := newTxEngine(t)
	s.beginErr = errors.New("fake: pool exhausted")
	_, err := e.Do(context.Background(), core.Call{Key: "k"}, func(ctx context.Context) ([]byte, error) {
		t.Error("the handler ran without its transaction")
		return nil, nil
	})
	if !errors.Is(err, core.ErrStoreUnavailable) {
		t.Fatalf("Do whose Begin failed: error %v; want ErrStoreUnavailable", err)
	}
	s.beginErr = nil
	if out, err := e.Do(context.Background(), core.Call{Key: "k"}, func(ctx context.Context) ([]byte, error) { return []byte("ok"), nil }); err != nil || string(out) != "ok" {
		t.Errorf("retry = %q, %v; want ok, nil: a failed Begin releases the claim", out, err)
	}
}

func TestTransactionsNeedTransactor(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New(WithTransactions(true)) over a store without Transactor did not panic")
		}
	}()
	core.New(memstore.New(), core.WithTransactions(true))
}
