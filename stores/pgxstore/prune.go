package pgxstore

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Prune deletes the expired records (completed records past their TTL and
// pending records whose lease lapsed) and returns how many it deleted. It
// works in batches of at most [WithPruneBatch] rows, one short statement
// each, locking rows with SKIP LOCKED, so that pruning millions of rows never
// holds long locks nor blocks claims. It stops when a batch comes back short
// or ctx is done, returning the rows deleted so far with the error. It
// then deletes the expired steps ([Store.Step]) the same way; they count
// in the total.
func (s *Store) Prune(ctx context.Context) (int64, error) {
	total, err := s.prune(ctx, s.pruneSQL)
	if err != nil {
		return total, err
	}
	n, err := s.prune(ctx, s.pruneStepsSQL)
	return total + n, err
}

func (s *Store) prune(ctx context.Context, sql string) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, wrap("prune", err)
		}
		tag, err := s.pool.Exec(ctx, sql, s.cfg.pruneBatch)
		if err != nil {
			return total, wrap("prune", err)
		}
		n := tag.RowsAffected()
		total += n
		if n < int64(s.cfg.pruneBatch) {
			return total, nil
		}
	}
}

// StartPruner runs [Store.Prune] every interval in a goroutine until ctx is
// done or stop is called; stop waits for a running prune to return and may
// be called more than once. Each run's result goes to the function set with
// [WithPruneReport], if any. Errors do not stop the pruner. interval must
// be positive: StartPruner panics otherwise.
func (s *Store) StartPruner(ctx context.Context, interval time.Duration) (stop func()) {
	if interval <= 0 {
		panic(fmt.Sprintf("pgxstore: StartPruner(%v): want a positive interval", interval))
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n, err := s.Prune(ctx)
				if ctx.Err() != nil {
					return
				}
				if s.cfg.onPrune != nil {
					s.cfg.onPrune(n, err)
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}
