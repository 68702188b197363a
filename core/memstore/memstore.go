package memstore

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idemkit/idemkit/core"
)

// Defaults of the options below.
const (
	DefaultMaxEntries    = 100_000
	DefaultShards        = 64
	DefaultSweepInterval = time.Minute
)

var (
	// ErrFull reports that a Claim found its shard full of pending claims
	// with live leases, none of which may be evicted. It wraps
	// [core.ErrStoreUnavailable].
	ErrFull = fmt.Errorf("memstore: full: %w", core.ErrStoreUnavailable)
	// ErrClosed reports a call after [Store.Close]. It wraps
	// [core.ErrStoreUnavailable].
	ErrClosed = fmt.Errorf("memstore: closed: %w", core.ErrStoreUnavailable)
)

var _ core.Store = (*Store)(nil)

type config struct {
	maxEntries    int
	shards        int
	sweepInterval time.Duration
}

// Option configures a [Store].
type Option func(*config)

// WithMaxEntries bounds the number of records held [100 000]. Each shard
// holds at most ceil(n/shards) records, so the bound is exact when n is a
// multiple of the shard count. n must be positive.
func WithMaxEntries(n int) Option { return func(c *config) { c.maxEntries = n } }

// WithShards sets the number of shards [64], each a map behind its own
// mutex. n must be a power of two.
func WithShards(n int) Option { return func(c *config) { c.shards = n } }

// WithSweepInterval sets how often the janitor deletes expired records
// [1 min]. A non-positive d disables the janitor: expired records are then
// still treated as absent, and dropped when their shard needs room or their
// key is touched.
func WithSweepInterval(d time.Duration) Option { return func(c *config) { c.sweepInterval = d } }

// Store is the in-memory [core.Store]. Create it with [New] and stop its
// janitor with [Store.Close]. The zero value is not usable.
type Store struct {
	shards   []shard
	mask     uint64
	seed     maphash.Seed
	perShard int

	closed    atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// New returns a Store configured by opts and starts its janitor. It panics
// if an option is out of range (a programmer error).
func New(opts ...Option) *Store {
	c := config{
		maxEntries:    DefaultMaxEntries,
		shards:        DefaultShards,
		sweepInterval: DefaultSweepInterval,
	}
	for _, o := range opts {
		o(&c)
	}
	if c.maxEntries < 1 {
		panic(fmt.Sprintf("memstore: WithMaxEntries(%d): want a positive count", c.maxEntries))
	}
	if c.shards < 1 || c.shards&(c.shards-1) != 0 {
		panic(fmt.Sprintf("memstore: WithShards(%d): want a power of two", c.shards))
	}
	s := &Store{
		shards:   make([]shard, c.shards),
		mask:     uint64(c.shards - 1),
		seed:     maphash.MakeSeed(),
		perShard: (c.maxEntries + c.shards - 1) / c.shards,
		done:     make(chan struct{}),
	}
	for i := range s.shards {
		s.shards[i].m = make(map[string]*record)
	}
	if c.sweepInterval > 0 {
		s.wg.Add(1)
		go s.janitor(c.sweepInterval)
	}
	return s
}

// Claim implements [core.Store.Claim]. When the key is new and its shard is
// full, it makes room as the package documentation describes, or returns
// an error wrapping [ErrFull].
func (s *Store) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	if err := ctxErr(ctx); err != nil {
		return core.Claim{}, fmt.Errorf("memstore: claim: %w", err)
	}
	sh := s.shard(req.Key)
	now := time.Now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s.closed.Load() {
		return core.Claim{}, fmt.Errorf("memstore: claim: %w", ErrClosed)
	}
	if r := sh.live(req.Key, now); r != nil {
		switch {
		case r.fp != req.Fingerprint:
			return core.Claim{Status: core.ClaimMismatch}, nil
		case r.resp != nil:
			return core.Claim{Status: core.ClaimReplay, Response: cloneResponse(r.resp)}, nil
		default:
			return core.Claim{Status: core.ClaimInFlight, RetryAfter: r.expires.Sub(now)}, nil
		}
	}
	if len(sh.m) >= s.perShard && !sh.makeRoom(s.perShard, now) {
		return core.Claim{}, fmt.Errorf("memstore: claim: %w (%d live claims in shard)", ErrFull, len(sh.m))
	}
	r := &record{key: req.Key, fp: req.Fingerprint, token: req.Token, expires: now.Add(req.Lease)}
	sh.m[req.Key] = r
	heap.Push(&sh.pending, r)
	return core.Claim{Status: core.ClaimAcquired}, nil
}

// Complete implements [core.Store.Complete]. It stores a deep copy of resp;
// a non-positive ttl stores a record that has already expired.
func (s *Store) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	if resp == nil {
		return errors.New("memstore: complete: nil response")
	}
	cp := cloneResponse(resp) // outside the lock: the body may be large
	return s.withHeld(ctx, "complete", key, token, func(sh *shard, r *record, now time.Time) {
		heap.Remove(&sh.pending, r.index)
		r.token = ""
		r.resp = cp
		r.expires = now.Add(ttl)
		heap.Push(&sh.completed, r)
	})
}

// Release implements [core.Store.Release].
func (s *Store) Release(ctx context.Context, key string, token core.Token) error {
	return s.withHeld(ctx, "release", key, token, func(sh *shard, r *record, _ time.Time) {
		sh.remove(r)
	})
}

// Renew implements [core.Store.Renew].
func (s *Store) Renew(ctx context.Context, key string, token core.Token, lease time.Duration) error {
	return s.withHeld(ctx, "renew", key, token, func(sh *shard, r *record, now time.Time) {
		r.expires = now.Add(lease)
		heap.Fix(&sh.pending, r.index)
	})
}

// withHeld runs f under the shard lock if key is pending with a live lease
// held with token, and reports ErrLeaseLost otherwise.
func (s *Store) withHeld(ctx context.Context, op, key string, token core.Token, f func(*shard, *record, time.Time)) error {
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("memstore: %s: %w", op, err)
	}
	sh := s.shard(key)
	now := time.Now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("memstore: %s: %w", op, ErrClosed)
	}
	r := sh.live(key, now)
	switch {
	case r == nil:
		return fmt.Errorf("memstore: %s: %w: no live record", op, core.ErrLeaseLost)
	case r.resp != nil:
		return fmt.Errorf("memstore: %s: %w: record already completed", op, core.ErrLeaseLost)
	case r.token != token:
		return fmt.Errorf("memstore: %s: %w: held with another token", op, core.ErrLeaseLost)
	}
	f(sh, r, now)
	return nil
}

// Len returns the number of records held, counting expired records that
// have not been dropped yet.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// Close stops the janitor, waits for it to exit and drops every record.
// Later calls of any method return an error wrapping [ErrClosed]. Close is
// idempotent and always returns nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.done)
		s.wg.Wait()
		for i := range s.shards {
			sh := &s.shards[i]
			sh.mu.Lock()
			sh.m = map[string]*record{}
			sh.pending, sh.completed = nil, nil
			sh.mu.Unlock()
		}
	})
	return nil
}

func (s *Store) janitor(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// sweep drops every expired record, one shard at a time.
func (s *Store) sweep() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.dropExpired(time.Now())
		sh.mu.Unlock()
	}
}

func (s *Store) shard(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)&s.mask]
}

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", core.ErrStoreUnavailable, err)
	}
	return nil
}

// record is a pending claim (resp == nil: fingerprint, token, lease expiry)
// or a completed response (fingerprint, response, retention expiry).
type record struct {
	key     string
	fp      core.Fingerprint
	token   core.Token
	resp    *core.Response
	expires time.Time
	index   int // position in the shard's pending or completed heap
}

func (r *record) expired(now time.Time) bool { return !now.Before(r.expires) }

type shard struct {
	mu        sync.Mutex
	m         map[string]*record
	pending   recordHeap // pending claims by lease expiry
	completed recordHeap // completed records by retention expiry
	_         [40]byte   // keep neighbouring shards' mutexes off one cache line
}

// live returns the record for key, or nil if it is absent or expired; an
// expired record is dropped on the way.
func (sh *shard) live(key string, now time.Time) *record {
	r := sh.m[key]
	if r != nil && r.expired(now) {
		sh.remove(r)
		return nil
	}
	return r
}

func (sh *shard) remove(r *record) {
	if r.resp != nil {
		heap.Remove(&sh.completed, r.index)
	} else {
		heap.Remove(&sh.pending, r.index)
	}
	delete(sh.m, r.key)
}

func (sh *shard) dropExpired(now time.Time) {
	for _, h := range []*recordHeap{&sh.pending, &sh.completed} {
		for len(*h) > 0 && (*h)[0].expired(now) {
			r := heap.Pop(h).(*record)
			delete(sh.m, r.key)
		}
	}
}

// makeRoom applies the eviction rule to a full shard and reports whether
// there is now room for one more record.
func (sh *shard) makeRoom(limit int, now time.Time) bool {
	sh.dropExpired(now)
	if len(sh.m) < limit {
		return true
	}
	if len(sh.completed) == 0 {
		return false // only live pending claims: never evicted
	}
	r := heap.Pop(&sh.completed).(*record)
	delete(sh.m, r.key)
	return true
}

// recordHeap is a min-heap of records by expiry that keeps each record's
// index up to date, for O(log n) removal and fixing.
type recordHeap []*record

func (h recordHeap) Len() int           { return len(h) }
func (h recordHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h recordHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *recordHeap) Push(x any) {
	r := x.(*record)
	r.index = len(*h)
	*h = append(*h, r)
}

func (h *recordHeap) Pop() any {
	old := *h
	n := len(old) - 1
	r := old[n]
	old[n] = nil
	r.index = -1
	*h = old[:n]
	return r
}

// cloneResponse deep-copies r. The copy has a non-nil header and a non-nil
// body, empty when r's is nil or empty.
func cloneResponse(r *core.Response) *core.Response {
	h := r.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	body := make([]byte, len(r.Body))
	copy(body, r.Body)
	return &core.Response{Status: r.Status, Header: h, Body: body, BodyOmitted: r.BodyOmitted}
}
