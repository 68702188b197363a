package memstore

import (
	"bytes"
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
	// ErrFull reports that a Claim (or a Put) found its shard full with
	// nothing it may evict: every record is a pending claim with a live
	// lease, or the completed records there belong to scopes that hold
	// fewer records than the claiming scope, whose own records are all
	// live claims (see the package documentation). It wraps
	// [core.ErrStoreUnavailable].
	ErrFull = fmt.Errorf("memstore: full: %w", core.ErrStoreUnavailable)
	// ErrClosed reports a call after [Store.Close]. It wraps
	// [core.ErrStoreUnavailable].
	ErrClosed = fmt.Errorf("memstore: closed: %w", core.ErrStoreUnavailable)
)

var (
	_ core.Store     = (*Store)(nil)
	_ core.Cache     = (*Store)(nil)
	_ core.Discarder = (*Store)(nil)
)

type config struct {
	maxEntries    int
	shards        int
	sweepInterval time.Duration
	observer      core.Observer
	hashMask      *uint64 // tests only (export_test.go)
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

// WithObserver reports every early eviction to obs: a completed record
// removed before its retention ended, to make room for a new key, is one
// [core.EventEvicted] event whose KeyHash is the record's storage key.
// Observe is called on the goroutine of the Claim or Put that made room,
// after the store's lock is released. Give it the observer the engine
// has ([core.WithObserver]), so evictions are seen with the decisions.
func WithObserver(obs core.Observer) Option { return func(c *config) { c.observer = obs } }

// Store is the in-memory [core.Store]. Create it with [New] and stop its
// janitor with [Store.Close]. The zero value is not usable.
type Store struct {
	shards   []shard
	mask     uint64
	seed     maphash.Seed
	hashMask uint64 // ^0; tests narrow it to make keys collide
	perShard int
	epoch    time.Time
	observer core.Observer // nil: evictions are not reported

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
		hashMask: ^uint64(0),
		perShard: (c.maxEntries + c.shards - 1) / c.shards,
		epoch:    time.Now(),
		observer: c.observer,
		done:     make(chan struct{}),
	}
	if c.hashMask != nil {
		s.hashMask = *c.hashMask
	}
	for i := range s.shards {
		s.shards[i].m = make(map[uint64]*record)
		s.shards[i].scopes = make(map[string]*scope)
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
	sh, r, h, now, err := s.lockLive(ctx, "claim", req.Key)
	if err != nil {
		return core.Claim{}, err
	}
	if r != nil {
		switch {
		case r.fp != req.Fingerprint:
			sh.mu.Unlock()
			return core.Claim{Status: core.ClaimMismatch}, nil
		case r.done:
			// The stored response is never modified: every replay shares it.
			ttl := time.Duration(r.expires - now)
			sh.mu.Unlock()
			return core.Claim{Status: core.ClaimReplay, Response: &r.resp, TTL: ttl}, nil
		case r.token == req.Token:
			// The holder's own claim, sent again: the same claim, with
			// the lease it asks for.
			r.expires = now + int64(req.Lease)
			sh.pending[r.index].exp = r.expires
			heap.Fix(&sh.pending, r.index)
			sh.mu.Unlock()
			return core.Claim{Status: core.ClaimAcquired}, nil
		default:
			ra := time.Duration(r.expires - now)
			sh.mu.Unlock()
			return core.Claim{Status: core.ClaimInFlight, RetryAfter: ra}, nil
		}
	}
	var evicted string
	if sh.n >= s.perShard {
		var ok bool
		if evicted, ok = sh.makeRoom(s.perShard, now, req.Scope); !ok {
			err := sh.fullError("claim", req.Scope)
			sh.mu.Unlock()
			return core.Claim{}, err
		}
	}
	r = &record{key: req.Key, hash: h, fp: req.Fingerprint, token: req.Token, expires: now + int64(req.Lease)}
	sh.insert(r, req.Scope)
	heap.Push(&sh.pending, r)
	sh.mu.Unlock()
	s.reportEviction(ctx, evicted)
	return core.Claim{Status: core.ClaimAcquired}, nil
}

// reportEviction tells the observer that the record of key was evicted
// early; an empty key means none was. The caller holds no lock.
func (s *Store) reportEviction(ctx context.Context, key string) {
	if key != "" && s.observer != nil {
		s.observer.Observe(ctx, core.Event{Outcome: core.EventEvicted, KeyHash: key})
	}
}

// Complete implements [core.Store.Complete]. It keeps resp's header and
// body as they are, without copying: the caller hands them over, as the
// Store contract says. A non-positive ttl stores a record that has already
// expired.
func (s *Store) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	if resp == nil {
		return errors.New("memstore: complete: nil response")
	}
	st := kept(resp)
	sh, r, now, err := s.lockHeld(ctx, "complete", key, token)
	if err != nil {
		if r != nil {
			// Completed with token already: a retried Complete.
			sh.mu.Unlock()
			return nil
		}
		return err
	}
	heap.Remove(&sh.pending, r.index)
	r.done = true // r.token stays: it names the completion
	r.resp = st
	r.expires = now + int64(ttl)
	sh.pushDone(r)
	sh.mu.Unlock()
	return nil
}

// kept returns the response a record keeps for resp: its header and body
// as they are (the caller hands them over), a non-nil empty body, a shared
// empty header for none, no Extra.
func kept(resp *core.Response) core.Response {
	st := *resp
	switch b := st.Body; {
	case b == nil:
		st.Body = []byte{} // no allocation: replays get a non-nil empty body
	case cap(b) > 2*len(b) && cap(b)-len(b) > 4096:
		// A capture buffer much larger than its body: keep only the body.
		st.Body = bytes.Clone(b)
	}
	if st.Header == nil {
		st.Header = emptyHeader
	}
	st.Extra = nil
	return st
}

// Lookup implements [core.Cache.Lookup]: the completed record of key, or
// the zero Cached when there is none (a pending claim included).
func (s *Store) Lookup(ctx context.Context, key string, fp core.Fingerprint) (core.Cached, error) {
	sh, r, _, _, err := s.lockLive(ctx, "lookup", key)
	if err != nil {
		return core.Cached{}, err
	}
	defer sh.mu.Unlock()
	switch {
	case r == nil || !r.done:
		return core.Cached{}, nil
	case r.fp != fp:
		return core.Cached{Mismatch: true}, nil
	}
	return core.Cached{Response: &r.resp}, nil
}

// Put implements [core.Cache.Put]. It replaces a completed record of key
// and leaves a pending claim alone. When the key is new and its shard is
// full, it makes room as Claim does, or returns an error wrapping
// [ErrFull].
func (s *Store) Put(ctx context.Context, key string, fp core.Fingerprint, resp *core.Response, ttl time.Duration) error {
	if resp == nil {
		return errors.New("memstore: put: nil response")
	}
	st := kept(resp)
	sh, r, h, now, err := s.lockLive(ctx, "put", key)
	if err != nil {
		return err
	}
	var evicted string
	switch {
	case r != nil && !r.done:
		sh.mu.Unlock()
		return nil // a pending claim: not the cache's to replace
	case r != nil:
		sh.remove(r)
	case sh.n >= s.perShard:
		var ok bool
		if evicted, ok = sh.makeRoom(s.perShard, now, ""); !ok {
			err := sh.fullError("put", "")
			sh.mu.Unlock()
			return err
		}
	}
	// Put knows no scope: its records share the scope "", as every record
	// of an engine without a scope function does.
	r = &record{key: key, hash: h, fp: fp, done: true, resp: st, expires: now + int64(ttl)}
	sh.insert(r, "")
	sh.pushDone(r)
	sh.mu.Unlock()
	s.reportEviction(ctx, evicted)
	return nil
}

// Discard implements [core.Discarder]: it deletes the completed record of
// req.Key if it is the very record whose response a Claim or Lookup
// returned as req.Response (the same record, not equal bytes), and
// nothing else. memstore never reports a record corrupt itself, so a
// request without a response deletes nothing.
func (s *Store) Discard(ctx context.Context, req core.DiscardRequest) error {
	sh, r, _, _, err := s.lockLive(ctx, "discard", req.Key)
	if err != nil {
		return err
	}
	if r != nil && r.done && req.Response != nil && &r.resp == req.Response && r.fp == req.Fingerprint {
		sh.remove(r)
	}
	sh.mu.Unlock()
	return nil
}

// Release implements [core.Store.Release].
func (s *Store) Release(ctx context.Context, key string, token core.Token) error {
	sh, r, _, err := s.lockHeld(ctx, "release", key, token)
	if err != nil {
		return err
	}
	sh.remove(r)
	sh.mu.Unlock()
	return nil
}

// Renew implements [core.Store.Renew].
func (s *Store) Renew(ctx context.Context, key string, token core.Token, lease time.Duration) error {
	sh, r, now, err := s.lockHeld(ctx, "renew", key, token)
	if err != nil {
		return err
	}
	r.expires = now + int64(lease)
	sh.pending[r.index].exp = r.expires
	heap.Fix(&sh.pending, r.index)
	sh.mu.Unlock()
	return nil
}

// lockHeld locks the shard of key and returns it with the record if key is
// pending with a live lease held with token; the caller then unlocks the
// shard. Otherwise it returns an error (ErrLeaseLost for a lost lease) with
// the shard unlocked — except for a record completed with token: for
// complete (a retried Complete), it returns that record with the
// ErrLeaseLost error and the shard still locked. (No callback: a closure
// would be one more allocation per call on the hot path.)
func (s *Store) lockHeld(ctx context.Context, op, key string, token core.Token) (*shard, *record, int64, error) {
	sh, r, _, now, err := s.lockLive(ctx, op, key)
	if err != nil {
		return nil, nil, now, err
	}
	switch {
	case r == nil:
		err = fmt.Errorf("memstore: %s: %w: no live record", op, core.ErrLeaseLost)
	case r.done:
		err = fmt.Errorf("memstore: %s: %w: record already completed", op, core.ErrLeaseLost)
		if op == "complete" && r.token == token {
			return sh, r, now, err
		}
	case r.token != token:
		err = fmt.Errorf("memstore: %s: %w: held with another token", op, core.ErrLeaseLost)
	}
	if err != nil {
		sh.mu.Unlock()
		return nil, nil, now, err
	}
	return sh, r, now, nil
}

// lockLive locks the shard of key and returns it with the live record of
// key (nil when there is none), the key's hash and the time; the caller
// then unlocks the shard. A done context or a closed store is an error,
// with the shard unlocked. Every method starts here.
func (s *Store) lockLive(ctx context.Context, op, key string) (*shard, *record, uint64, int64, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, nil, 0, 0, fmt.Errorf("memstore: %s: %w", op, err)
	}
	h := s.hash(key)
	sh := &s.shards[h&s.mask]
	now := s.now()
	sh.mu.Lock()
	if s.closed.Load() {
		sh.mu.Unlock()
		return nil, nil, 0, now, fmt.Errorf("memstore: %s: %w", op, ErrClosed)
	}
	return sh, sh.live(key, h, now), h, now, nil
}

// Len returns the number of records held, counting expired records that
// have not been dropped yet.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.n
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
			sh.m, sh.n = map[uint64]*record{}, 0
			sh.pending, sh.completed = nil, nil
			sh.scopes, sh.byCount = map[string]*scope{}, nil
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
		sh.dropExpired(s.now())
		sh.mu.Unlock()
	}
}

// now reads the store's clock: nanoseconds on the monotonic clock since
// New. Expiries are plain integers, so the heaps compare them cheaply and a
// record holds no *time.Location for the GC to scan.
func (s *Store) now() int64 { return int64(time.Since(s.epoch)) }

// hash is the 64-bit hash of key that picks its shard and indexes the
// shard's map. The map is keyed by the hash, not the key: its lookups and
// inserts hash a uint64 instead of 64 hex characters, a growing map
// rehashes integers, and its slots hold no string for the collector to
// scan. Keys whose hashes collide chain through record.next.
func (s *Store) hash(key string) uint64 { return maphash.String(s.seed, key) & s.hashMask }

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", core.ErrStoreUnavailable, err)
	}
	return nil
}

// record is a pending claim (!done: fingerprint, token, lease expiry)
// or a completed response (fingerprint, the token that completed it,
// response, retention expiry).
type record struct {
	key   string
	hash  uint64  // Store.hash(key): its shard and its slot in the shard's map
	next  *record // the next record in its slot: another key, the same hash
	fp    core.Fingerprint
	token core.Token
	done  bool // completed: resp holds the response
	// resp is the completed response, in the record's own allocation. It is
	// never modified once set, so every replay returns a pointer to it
	// (read-only, as the Store contract allows): a replay copies nothing.
	resp    core.Response
	expires int64  // Store.now() value: a monotonic clock, compared as an integer
	index   int    // position in the shard's pending or completed heap
	sc      *scope // its scope's share of the shard
	sindex  int    // position in sc.completed, when done
}

func (r *record) expired(now int64) bool { return now >= r.expires }

type shard struct {
	mu        sync.Mutex
	m         map[uint64]*record // by key hash; a slot chains colliding keys
	n         int                // records in m
	pending   recordHeap         // pending claims by lease expiry
	completed recordHeap         // completed records by retention expiry
	scopes    map[string]*scope  // by core.ClaimRequest.Scope: the scopes holding records in m
	byCount   scopeHeap          // the same scopes, the one holding the most records first
	_         [40]byte           // keep neighbouring shards' mutexes off one cache line
}

// scope is one scope's share of a shard: how many records it holds there,
// and which of them eviction may take.
type scope struct {
	id        string
	n         int        // records of the scope in the shard, pending and completed
	completed scopedHeap // its completed records by retention expiry
	index     int        // position in the shard's byCount heap
}

// live returns the record for key, whose hash is h, or nil if it is
// absent or expired; an expired record is dropped on the way.
func (sh *shard) live(key string, h uint64, now int64) *record {
	r := sh.m[h]
	for r != nil && r.key != key {
		r = r.next
	}
	if r != nil && r.expired(now) {
		sh.remove(r)
		return nil
	}
	return r
}

// insert adds r, whose key has no record in sh, to the map, as a record
// of the scope named id.
func (sh *shard) insert(r *record, id string) {
	r.next = sh.m[r.hash]
	sh.m[r.hash] = r
	sh.n++
	sc := sh.scopes[id]
	if sc == nil {
		sc = &scope{id: id}
		sh.scopes[id] = sc
		heap.Push(&sh.byCount, sc)
	}
	r.sc = sc
	sc.n++
	sh.byCount.up(sc.index)
}

// pushDone adds r, now completed, to the heaps of completed records: the
// shard's and its scope's.
func (sh *shard) pushDone(r *record) {
	heap.Push(&sh.completed, r)
	heap.Push(&r.sc.completed, r)
}

// remove drops r from its heaps and from the map.
func (sh *shard) remove(r *record) {
	if r.done {
		heap.Remove(&sh.completed, r.index)
		heap.Remove(&r.sc.completed, r.sindex)
	} else {
		heap.Remove(&sh.pending, r.index)
	}
	sh.unlink(r)
}

// unlink drops r from the map, keeping any other record of its slot, and
// from its scope's count; r is in no heap any more.
func (sh *shard) unlink(r *record) {
	sc := r.sc
	r.sc = nil
	if sc.n--; sc.n == 0 {
		delete(sh.scopes, sc.id)
		heap.Remove(&sh.byCount, sc.index)
	} else {
		sh.byCount.down(sc.index)
	}
	head := sh.m[r.hash]
	switch {
	case head == r && r.next == nil:
		delete(sh.m, r.hash)
	case head == r:
		sh.m[r.hash] = r.next
	default:
		for p := head; p != nil; p = p.next {
			if p.next == r {
				p.next = r.next
				break
			}
		}
	}
	r.next = nil
	sh.n--
}

func (sh *shard) dropExpired(now int64) {
	for len(sh.pending) > 0 && now >= sh.pending[0].exp {
		sh.unlink(heap.Pop(&sh.pending).(*record))
	}
	for len(sh.completed) > 0 && now >= sh.completed[0].exp {
		r := heap.Pop(&sh.completed).(*record)
		heap.Remove(&r.sc.completed, r.sindex)
		sh.unlink(r)
	}
}

// makeRoom applies the eviction rule to a full shard for a new record of
// the scope named id. It reports whether there is now room for it and
// returns the key of the record it evicted early, if it did.
func (sh *shard) makeRoom(limit int, now int64, id string) (evicted string, ok bool) {
	sh.dropExpired(now)
	if sh.n < limit {
		return "", true
	}
	v := sh.victim(id)
	if v == nil {
		return "", false
	}
	r := heap.Pop(&v.completed).(*record)
	heap.Remove(&sh.completed, r.index)
	sh.unlink(r)
	return r.key, true
}

// victim picks the scope that gives up its completed record nearest to
// expiry so that a full shard takes a new record of the scope named id:
// the claiming scope itself when it holds at least as many records as any
// scope with a completed record (it pays for a tie), else the scope
// holding the most records among those with a completed record, provided
// it holds more than the claiming scope. A scope never takes room from
// one that holds no more than itself, and live claims are never taken:
// victim returns nil when nothing may be evicted.
func (sh *shard) victim(id string) *scope {
	req := sh.scopes[id] // nil: the scope holds nothing here yet
	v := sh.byCount[0]   // the shard is full: there is a scope
	if len(v.completed) == 0 {
		// The largest scope holds live claims only. If it is the
		// claiming scope, no scope it may take from holds more than it.
		if v == req {
			return nil
		}
		v = nil
		for _, sc := range sh.byCount[1:] {
			if len(sc.completed) > 0 && (v == nil || sc.n > v.n) {
				v = sc
			}
		}
	}
	switch {
	case req != nil && len(req.completed) > 0 && (v == nil || req.n >= v.n):
		return req
	case v != nil && (req == nil || v.n > req.n):
		return v
	}
	return nil
}

// fullError is the ErrFull of a shard where makeRoom found nothing to
// evict for the scope named id.
func (sh *shard) fullError(op, id string) error {
	if len(sh.completed) == 0 {
		return fmt.Errorf("memstore: %s: %w (%d live claims in shard)", op, ErrFull, sh.n)
	}
	n := 0
	if sc := sh.scopes[id]; sc != nil {
		n = sc.n
	}
	return fmt.Errorf("memstore: %s: %w (the scope holds %d live claims of the shard's %d records, no scope with a completed record holds more)", op, ErrFull, n, sh.n)
}

// recordHeap is a min-heap of records by expiry that keeps each record's
// index up to date, for O(log n) removal and fixing. Each entry carries a
// copy of its record's expiry, so comparisons read the heap's own array
// instead of chasing a record pointer per comparison, whose cache misses
// made Less a visible cost of eviction in a full shard (docs/performance.md).
type recordHeap []heapItem

type heapItem struct {
	exp int64 // = r.expires, kept in step by Push and Renew
	r   *record
}

func (h recordHeap) Len() int           { return len(h) }
func (h recordHeap) Less(i, j int) bool { return h[i].exp < h[j].exp }
func (h recordHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].r.index = i
	h[j].r.index = j
}

func (h *recordHeap) Push(x any) {
	r := x.(*record)
	r.index = len(*h)
	*h = append(*h, heapItem{exp: r.expires, r: r})
}

func (h *recordHeap) Pop() any {
	old := *h
	n := len(old) - 1
	r := old[n].r
	old[n] = heapItem{}
	r.index = -1
	*h = old[:n]
	return r
}

// scopedHeap is a scope's min-heap of completed records by expiry, like
// recordHeap but indexed by record.sindex: a completed record is in its
// shard's heap and its scope's at once.
type scopedHeap []heapItem

func (h scopedHeap) Len() int           { return len(h) }
func (h scopedHeap) Less(i, j int) bool { return h[i].exp < h[j].exp }
func (h scopedHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].r.sindex = i
	h[j].r.sindex = j
}

func (h *scopedHeap) Push(x any) {
	r := x.(*record)
	r.sindex = len(*h)
	*h = append(*h, heapItem{exp: r.expires, r: r})
}

func (h *scopedHeap) Pop() any {
	old := *h
	n := len(old) - 1
	r := old[n].r
	old[n] = heapItem{}
	r.sindex = -1
	*h = old[:n]
	if c := cap(old); c > minShrinkCap && n < c/4 {
		// A scope that filled its shard once and holds little now gives
		// the room back: a scope lives as long as one of its records, so
		// many scopes, each having peaked once, would otherwise keep a
		// shard's worth of heap each.
		*h = append(make(scopedHeap, 0, c/2), old[:n]...)
	}
	return r
}

// minShrinkCap is the capacity below which a scope's heap never shrinks.
const minShrinkCap = 16

// scopeHeap is a shard's max-heap of scopes by record count.
type scopeHeap []*scope

func (h scopeHeap) Len() int           { return len(h) }
func (h scopeHeap) Less(i, j int) bool { return h[i].n > h[j].n }
func (h scopeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *scopeHeap) Push(x any) {
	sc := x.(*scope)
	sc.index = len(*h)
	*h = append(*h, sc)
}

// up moves the scope at i, whose count grew, towards the root: what
// heap.Fix does, without its interface calls (it runs on every insert).
func (h scopeHeap) up(i int) {
	sc := h[i]
	for i > 0 {
		p := (i - 1) / 2
		if h[p].n >= sc.n {
			break
		}
		h[i] = h[p]
		h[i].index = i
		i = p
	}
	h[i] = sc
	sc.index = i
}

// down moves the scope at i, whose count fell, away from the root (it
// runs on every removal).
func (h scopeHeap) down(i int) {
	sc := h[i]
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if c+1 < len(h) && h[c+1].n > h[c].n {
			c++
		}
		if h[c].n <= sc.n {
			break
		}
		h[i] = h[c]
		h[i].index = i
		i = c
	}
	h[i] = sc
	sc.index = i
}

func (h *scopeHeap) Pop() any {
	old := *h
	n := len(old) - 1
	sc := old[n]
	old[n] = nil
	sc.index = -1
	*h = old[:n]
	return sc
}

// emptyHeader is the shared, read-only header of a replayed response that
// was stored without one.
var emptyHeader = http.Header{}
