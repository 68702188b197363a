package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
)

// mapStore is the kind of store a user writes for a backend of their own:
// here a map behind one mutex, holding each response in the byte form of
// [codec.EncodeResponse], as a key-value backend would. Expired records are
// dropped when their key is touched.
type mapStore struct {
	mu sync.Mutex
	m  map[string]mapRecord
}

type mapRecord struct {
	fp      core.Fingerprint
	token   core.Token // of the pending claim, then of the completion; empty once released
	resp    []byte     // encoded response; nil while pending
	expires time.Time  // end of the lease, or of the retention
}

var _ core.Store = (*mapStore)(nil)

func newMapStore() *mapStore { return &mapStore{m: make(map[string]mapRecord)} }

// live returns the unexpired record for key. The caller holds s.mu.
func (s *mapStore) live(key string, now time.Time) (mapRecord, bool) {
	r, ok := s.m[key]
	if ok && !now.Before(r.expires) {
		delete(s.m, key)
		return mapRecord{}, false
	}
	return r, ok
}

func (s *mapStore) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	if err := ctx.Err(); err != nil {
		return core.Claim{}, fmt.Errorf("mapstore: claim: %w: %w", core.ErrStoreUnavailable, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	r, ok := s.live(req.Key, now)
	switch {
	case !ok:
		s.m[req.Key] = mapRecord{fp: req.Fingerprint, token: req.Token, expires: now.Add(req.Lease)}
		return core.Claim{Status: core.ClaimAcquired}, nil
	case r.fp != req.Fingerprint:
		return core.Claim{Status: core.ClaimMismatch}, nil
	case r.resp != nil:
		resp, err := codec.DecodeResponse(r.resp) // read-only for the caller; a fresh decode is simplest
		if err != nil {
			return core.Claim{}, fmt.Errorf("mapstore: claim: %w", err)
		}
		return core.Claim{Status: core.ClaimReplay, Response: resp}, nil
	case r.token == req.Token: // the holder's claim, sent again
		r.expires = now.Add(req.Lease)
		s.m[req.Key] = r
		return core.Claim{Status: core.ClaimAcquired}, nil
	default:
		return core.Claim{Status: core.ClaimInFlight, RetryAfter: r.expires.Sub(now)}, nil
	}
}

// held runs f on the live pending record of key if token holds it.
func (s *mapStore) held(ctx context.Context, key string, token core.Token, f func(r *mapRecord, now time.Time)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mapstore: %w: %w", core.ErrStoreUnavailable, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	r, ok := s.live(key, now)
	if !ok || r.resp != nil || r.token != token {
		return fmt.Errorf("mapstore: %w", core.ErrLeaseLost)
	}
	f(&r, now)
	if r.token == "" && r.resp == nil {
		delete(s.m, key)
	} else {
		s.m[key] = r
	}
	return nil
}

func (s *mapStore) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	enc := codec.EncodeResponse(resp) // the record keeps its own encoding
	err := s.held(ctx, key, token, func(r *mapRecord, now time.Time) {
		r.resp, r.expires = enc, now.Add(ttl)
	})
	if errors.Is(err, core.ErrLeaseLost) && s.completedWith(key, token) {
		return nil // a retried Complete: the record holds this token's completion
	}
	return err
}

// completedWith reports whether key holds a live completion made with token.
func (s *mapStore) completedWith(key string, token core.Token) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.live(key, time.Now())
	return ok && r.resp != nil && r.token == token
}

func (s *mapStore) Release(ctx context.Context, key string, token core.Token) error {
	return s.held(ctx, key, token, func(r *mapRecord, _ time.Time) { r.token = "" })
}

func (s *mapStore) Renew(ctx context.Context, key string, token core.Token, lease time.Duration) error {
	return s.held(ctx, key, token, func(r *mapRecord, now time.Time) { r.expires = now.Add(lease) })
}

// TestExampleMapStore runs the suite against mapStore, for real.
func TestExampleMapStore(t *testing.T) {
	t.Parallel()
	conformance.TestStore(t, func(t *testing.T) core.Store { return newMapStore() })
}

// A store author checks a store with one call from one of their own tests:
// TestStore runs every subtest against the stores the factory returns, one
// per subtest. TestExampleMapStore in this package is such a test, for a
// mutex-and-map store written in about seventy lines.
func ExampleTestStore() {
	// In a _test.go file next to your store:
	TestMyStore := func(t *testing.T) {
		conformance.TestStore(t, func(t *testing.T) core.Store {
			st := newMapStore() // or a client of your backend, with t.Cleanup to close it
			return st
		})
	}
	_ = TestMyStore
}
