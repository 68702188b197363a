package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is the key prefix used unless [WithPrefix] says otherwise.
const DefaultPrefix = "idem:"

// Record layout: one Redis string per record, under Prefix + "{" + key + "}".
//
//	byte 0       state: 'P' pending, 'D' completed by a token, 'C' completed
//	bytes 1..32  request fingerprint (raw SHA-256)
//	bytes 33..   'P': the fencing token
//	             'D': one byte n, the n-byte token that completed the record,
//	                  then codec.EncodeResponse
//	             'C': codec.EncodeResponse (a cache Put, a token over 255
//	                  bytes, or a record written before completed records
//	                  kept their token)
//	             'R': (bytes 1..32 zero) the released token; a tombstone
//	                  kept for releasedFor, absent to everyone else
const (
	statePending        = 'P'
	stateCompleted      = 'C'
	stateCompletedToken = 'D'
	stateReleased       = 'R'
	headerLen           = 1 + len(core.Fingerprint{})
)

// Results of the scripts, first element of the reply.
const (
	rCorrupt  = 0
	rAcquired = 1
	rReplay   = 2
	rInFlight = 3
	rMismatch = 4
	rReleased = 5

	rLeaseLost = 0
	rOK        = 1
)

// claimScript: KEYS[1] record; ARGV[1] fingerprint (32 bytes), ARGV[2] token,
// ARGV[3] lease in ms, ARGV[4] the longest possible remaining lease in ms.
// Replies 1 acquired; a completed record itself (a bulk string starting
// with 'C' or 'D'), whose fingerprint the client compares; {3, pttl} in
// flight; 4 mismatch of a pending record; 5 this token was released; 0
// corrupt record.
//
// A pending record is a live claim only while its lease is possible: one
// without an expiry (PTTL -1) or with more than ARGV[4] left cannot have
// been written by a claim, and is taken over like a lapsed lease, whatever
// its fingerprint. A live pending record's fingerprint is checked before
// its token, so a mismatch is reported before an in-flight conflict. A
// live claim held with ARGV[2] is this same claim sent again (a client
// library re-sends a command that timed out): it is acquired again, its
// lease extended to ARGV[3], never reported in flight to its own sender.
// A released claim leaves a tombstone ('R', see releaseScript) that
// counts as absent, except to a copy of the released claim itself: a
// copy that lands after the release must not hold the key for a lease
// that nobody will release. An expired lease is an absent key: Redis
// judges it. A replay, the hot path, costs what a plain GET does: the
// script neither slices the record nor builds an array, and the client
// has the fingerprint at hand.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  local st = string.byte(v, 1)
  if (st == 67 or st == 68) and #v >= 37 then return v end
  if #v < 33 or (st ~= 80 and st ~= 82) then return 0 end
  local own = #v == 33 + #ARGV[2] and string.find(v, ARGV[2], 34, true) == 34
  if st == 82 then
    if own then return 5 end
  else
    local ttl = redis.call('PTTL', KEYS[1])
    if ttl >= 0 and ttl <= tonumber(ARGV[4]) then
      if string.sub(v, 2, 33) ~= ARGV[1] then return 4 end
      if not own then return {3, ttl} end
      redis.call('PEXPIRE', KEYS[1], ARGV[3])
      return 1
    end
  end
end
redis.call('SET', KEYS[1], 'P' .. ARGV[1] .. ARGV[2], 'PX', ARGV[3])
return 1
`)

// The fenced scripts compare the token in place (a length check, then a
// plain find anchored at its offset) rather than slicing it out of the
// record: Lua interns every string it makes, so a slice costs an
// allocation and a hash per call.
//
// completeScript: KEYS[1] record; ARGV[1] token, ARGV[2] encoded response,
// ARGV[3] retention in ms, ARGV[4] "1" to rewrite a record this token
// already completed (so that a following WAIT covers it; see
// [WithReplicaAcks]). Replies 1 stored (or already completed with this
// token: a Complete retried after its reply was lost), 0 lease lost,
// -1 corrupt. The completed record keeps the token that completed it
// (state 'D'), up to 255 bytes of it; a longer token is not kept (state
// 'C'), and a retry of its Complete reports the lease lost.
var completeScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if #v < 33 then return -1 end
local st = string.byte(v, 1)
local n = #ARGV[1]
if st == 80 then
  if #v ~= 33 + n or string.find(v, ARGV[1], 34, true) ~= 34 then return 0 end
  if n > 0 and n <= 255 then
    redis.call('SET', KEYS[1], 'D' .. string.sub(v, 2, 33) .. string.char(n) .. ARGV[1] .. ARGV[2], 'PX', ARGV[3])
  else
    redis.call('SET', KEYS[1], 'C' .. string.sub(v, 2, 33) .. ARGV[2], 'PX', ARGV[3])
  end
  return 1
end
if st == 68 and n > 0 and string.byte(v, 34) == n and string.sub(v, 35, 34 + n) == ARGV[1] then
  if ARGV[4] == '1' then redis.call('SET', KEYS[1], v, 'KEEPTTL') end
  return 1
end
return 0
`)

// releaseScript: KEYS[1] record; ARGV[1] token, ARGV[2] tombstone time in
// ms. Replies 1 released, 0 lease lost, -1 corrupt. Releasing replaces
// the pending record by a tombstone: 'R', 32 zero bytes, the token,
// kept for ARGV[2]. A Release of an absent key writes one too: the claim
// it releases may not have landed yet (a copy re-sent by the client
// library, still queued on a stalled server), and when it lands it finds
// its token released rather than an absent key to hold for a lease.
var releaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
local tomb = 'R' .. string.rep('\0', 32) .. ARGV[1]
if not v then
  redis.call('SET', KEYS[1], tomb, 'PX', ARGV[2])
  return 0
end
if #v < 33 then return -1 end
if string.byte(v, 1) ~= 80 or #v ~= 33 + #ARGV[1] or string.find(v, ARGV[1], 34, true) ~= 34 then return 0 end
redis.call('SET', KEYS[1], tomb, 'PX', ARGV[2])
return 1
`)

// renewScript: KEYS[1] record; ARGV[1] token, ARGV[2] lease in ms.
// Replies 1 renewed, 0 lease lost, -1 corrupt.
var renewScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if #v < 33 then return -1 end
if string.byte(v, 1) ~= 80 or #v ~= 33 + #ARGV[1] or string.find(v, ARGV[1], 34, true) ~= 34 then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// putScript: KEYS[1] record; ARGV[1] the completed record, ARGV[2]
// retention in ms. Replies 1 stored, 0 left alone (a pending claim).
// GETRANGE reads the state byte without copying the record into Lua.
var putScript = redis.NewScript(`
if redis.call('GETRANGE', KEYS[1], 0, 0) == 'P' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// Store is a [core.Store] on Redis. Create it with [New]; it is safe for
// concurrent use.
type Store struct {
	client redis.UniversalClient
	prefix string
	cfg    config
}

var (
	_ core.Store   = (*Store)(nil)
	_ core.Cache   = (*Store)(nil)
	_ core.Checker = (*Store)(nil)
)

// DefaultTimeout bounds a store call whose context has no deadline; see
// [WithTimeout]. It matches go-redis's default ReadTimeout (5 s).
const DefaultTimeout = 5 * time.Second

// releasedFor is how long a released claim's tombstone stays: the time
// within which a late copy of the claim (re-sent by go-redis, held up on a
// stalled server) is refused rather than holding the key for a lease.
const releasedFor = time.Minute

// DefaultMaxLease is the longest lease a pending record may have left
// before it counts as impossible; see [WithMaxLease].
const DefaultMaxLease = 24 * time.Hour

// Option configures a [Store].
type Option func(*config)

type config struct {
	prefix     string
	timeout    time.Duration
	maxLease   time.Duration
	acks       int
	ackTimeout time.Duration
}

// WithPrefix sets the prefix of every key the store writes [DefaultPrefix].
// The prefix must not contain '{' or '}' (New panics): the record's hash
// tag follows it. The empty prefix is valid.
func WithPrefix(prefix string) Option {
	return func(c *config) { c.prefix = prefix }
}

// WithTimeout bounds every call of the store whose context carries no
// deadline [DefaultTimeout], so that a hung Redis ends in
// [core.ErrStoreUnavailable] (503) within about d even though the engine
// sets no deadline of its own by default (see [core.WithStoreTimeout]). A
// context that has a deadline is used as it is. d = 0 disables the bound;
// a negative d is invalid (New panics).
//
// go-redis stops retrying a command once its context is done, so the
// bound also caps its retries (MaxRetries, 3 by default: unbounded, a
// call on a hung server took 10 s with go-redis's defaults, a timed-out
// attempt being followed by a retry on a new connection whose handshake
// timed out in turn). go-redis cuts a single attempt short at the
// context's deadline only with ContextTimeoutEnabled set in its options:
// set it. Without it one attempt still waits up to ReadTimeout (5 s by
// default), so a call on a hung server ends after about the longer of d
// and ReadTimeout. The deadline costs a context and a timer per call
// (five allocations); a call whose context already has a deadline (the
// engine's [core.WithStoreTimeout], a request deadline) costs nothing.
func WithTimeout(d time.Duration) Option {
	return func(c *config) { c.timeout = d }
}

// WithMaxLease sets the longest lease a pending record can have left
// [DefaultMaxLease]. A pending record with more left than this (or than
// the claiming request's own lease, whichever is longer), or with no
// expiry at all, was not written by a claim: Claim takes it over as it
// does a lapsed lease, rather than answering "in flight" for as long as it
// lives. Set it at least as long as the longest lease of any engine that
// shares the store ([core.WithLease]). d must be positive (New panics
// otherwise).
func WithMaxLease(d time.Duration) Option {
	return func(c *config) { c.maxLease = d }
}

// WithReplicaAcks makes every acquired Claim and every Complete wait until
// n replicas have acknowledged the write, with Redis's WAIT n timeout,
// sent right behind the script on the same connection (WAIT cannot run
// inside a script), in the same round trip. A write that fewer than n
// replicas acknowledged within timeout fails with an error wrapping
// [core.ErrStoreUnavailable] and [ErrReplicaAcks]: the engine answers a
// claim with 503 and keeps retrying a complete, which is idempotent for
// its token. The record is then on the primary, and a failover may or may
// not keep it; no client is answered on a write that no replica holds.
//
// Without it (n = 0, the default; timeout is then ignored) Redis
// replicates asynchronously: a
// claim or a response that the primary acknowledged and that had not
// reached a replica when the primary died is gone after the failover, and
// a retry runs the handler again. With it, every claim and complete
// costs the replicas' acknowledgement (a round trip to the slowest of the
// n fastest replicas) and is refused when replicas lag or fewer than n
// are connected: availability is traded for durability. WAIT is not a
// consensus: a replica that acknowledged is not guaranteed to be the one
// promoted (with n below the number of replicas), so let the failover
// promote the most up-to-date replica, as Sentinel and Cluster do.
//
// timeout must be shorter than go-redis's ReadTimeout and than the
// store's [WithTimeout], and positive when n is. It needs a *redis.Client
// (single node or Sentinel failover) or a *redis.ClusterClient. [New]
// panics on another client, a negative n, or n > 0 without a positive
// timeout.
// Renew and Release do not wait.
func WithReplicaAcks(n int, timeout time.Duration) Option {
	return func(c *config) { c.acks, c.ackTimeout = n, timeout }
}

// New returns a store on client, which may be a *redis.Client, a
// *redis.ClusterClient, a Sentinel failover client or a *redis.Ring. It
// panics if client is nil, if an option's value is invalid (each option's
// doc says which are: the message names the option and the value), or if
// [WithReplicaAcks] is given with a client of another kind.
func New(client redis.UniversalClient, opts ...Option) *Store {
	if client == nil {
		panic("redisstore: New called with a nil client")
	}
	c := config{prefix: DefaultPrefix, timeout: DefaultTimeout, maxLease: DefaultMaxLease}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	switch {
	case strings.ContainsAny(c.prefix, "{}"):
		panic(fmt.Sprintf("redisstore: WithPrefix(%q): want no '{' or '}': the hash tag follows the prefix", c.prefix))
	case c.timeout < 0:
		panic(fmt.Sprintf("redisstore: WithTimeout(%v): want a duration of 0 (no bound) or more", c.timeout))
	case c.maxLease <= 0:
		panic(fmt.Sprintf("redisstore: WithMaxLease(%v): want a positive duration", c.maxLease))
	case c.acks < 0:
		panic(fmt.Sprintf("redisstore: WithReplicaAcks(%d, %v): want 0 replicas (off) or more", c.acks, c.ackTimeout))
	case c.acks > 0 && c.ackTimeout <= 0:
		panic(fmt.Sprintf("redisstore: WithReplicaAcks(%d, %v): want a positive timeout", c.acks, c.ackTimeout))
	}
	if c.acks > 0 {
		switch client.(type) {
		case *redis.Client, *redis.ClusterClient:
		default:
			panic(fmt.Sprintf("redisstore: WithReplicaAcks(%d, %v): want a *redis.Client or a *redis.ClusterClient, not %T", c.acks, c.ackTimeout, client))
		}
	}
	return &Store{client: client, prefix: c.prefix, cfg: c}
}

// bound returns ctx with the store's deadline when it has none.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.cfg.timeout <= 0 {
		return ctx, func() {}
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.timeout)
}

// recordKey is the Redis key of the record for a storage key. The braces
// make the storage key the hash tag, so every key of one record (there is
// one today) lands in one cluster slot, and records spread over slots.
func (s *Store) recordKey(key string) string {
	return s.prefix + "{" + key + "}"
}

// Claim implements [core.Store] in one round trip.
func (s *Store) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	if err := ctx.Err(); err != nil {
		return core.Claim{}, unavailable("claim", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rkey := s.recordKey(req.Key)
	args := []any{req.Fingerprint[:], string(req.Token), millis(req.Lease), millis(max(s.cfg.maxLease, req.Lease))}
	var (
		reply any
		err   error
	)
	if s.cfg.acks > 0 {
		var acked func() error
		reply, acked, err = s.runAcked(ctx, claimScript, rkey, args...)
		if err == nil {
			if r, ok := reply.(int64); ok && r == rAcquired {
				if err := acked(); err != nil {
					return core.Claim{}, fmt.Errorf("redisstore: claim %s: %w", rkey, err)
				}
			}
		}
	} else {
		reply, err = claimScript.Run(ctx, s.client, []string{rkey}, args...).Result()
	}
	if err != nil {
		return core.Claim{}, storeErr("claim", rkey, err)
	}
	switch r := reply.(type) {
	case string:
		return s.completed("claim", rkey, r, req.Fingerprint)
	case int64:
		switch r {
		case rAcquired:
			return core.Claim{Status: core.ClaimAcquired}, nil
		case rMismatch:
			return core.Claim{Status: core.ClaimMismatch}, nil
		case rReleased:
			return core.Claim{}, fmt.Errorf("redisstore: claim %s: %w: this claim's token was released already", rkey, core.ErrStoreUnavailable)
		}
	case []any:
		if code, ok := replyInt(r, 0); ok && code == rInFlight {
			ms, _ := replyInt(r, 1)
			return core.Claim{Status: core.ClaimInFlight, RetryAfter: time.Duration(max(ms, 0)) * time.Millisecond}, nil
		}
	}
	return core.Claim{}, corruptErr("claim", rkey, "unknown record state")
}

// Lookup implements [core.Cache.Lookup] with one GET: the completed record
// of key, or the zero Cached when there is none (a pending claim
// included).
func (s *Store) Lookup(ctx context.Context, key string, fp core.Fingerprint) (core.Cached, error) {
	if err := ctx.Err(); err != nil {
		return core.Cached{}, unavailable("lookup", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rkey := s.recordKey(key)
	v, err := s.client.Get(ctx, rkey).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return core.Cached{}, nil
	case err != nil:
		return core.Cached{}, storeErr("lookup", rkey, err)
	case len(v) >= 1 && (v[0] == statePending || v[0] == stateReleased):
		return core.Cached{}, nil
	}
	c, err := s.completed("lookup", rkey, v, fp)
	if err != nil {
		return core.Cached{}, err
	}
	return core.Cached{Response: c.Response, Mismatch: c.Status == core.ClaimMismatch}, nil
}

// completed decides a claim or lookup answered with the completed record
// v: a replay when it was stored under fp, else a mismatch.
func (s *Store) completed(op, rkey, v string, fp core.Fingerprint) (core.Claim, error) {
	enc, ok := completedResponse(v)
	if !ok {
		return core.Claim{}, corruptErr(op, rkey, "malformed completed record")
	}
	if v[1:headerLen] != string(fp[:]) {
		return core.Claim{Status: core.ClaimMismatch}, nil
	}
	// The reply string is go-redis's own copy, which nothing else holds:
	// the replayed response, read-only under the Store contract, points
	// into it instead of copying the body and the header values.
	resp, err := codec.DecodeResponseInPlace(unsafe.Slice(unsafe.StringData(enc), len(enc)))
	if err != nil {
		return core.Claim{}, fmt.Errorf("redisstore: %s %s: %w: %w", op, rkey, core.ErrStoreUnavailable, err)
	}
	return core.Claim{Status: core.ClaimReplay, Response: resp}, nil
}

// completedResponse returns the encoded response of the completed record
// v, in either completed layout ('C', or 'D' with its token), and whether
// v is one.
func completedResponse(v string) (string, bool) {
	switch {
	case len(v) >= headerLen && v[0] == stateCompleted:
		return v[headerLen:], true
	case len(v) > headerLen && v[0] == stateCompletedToken && len(v) >= headerLen+1+int(v[headerLen]):
		return v[headerLen+1+int(v[headerLen]):], true
	}
	return "", false
}

// Put implements [core.Cache.Put] in one round trip. It replaces a
// completed record of key and leaves a pending claim alone.
func (s *Store) Put(ctx context.Context, key string, fp core.Fingerprint, resp *core.Response, ttl time.Duration) error {
	if resp == nil {
		return errors.New("redisstore: put: nil response")
	}
	if err := ctx.Err(); err != nil {
		return unavailable("put", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	// One buffer for the record: its header, then the encoded response.
	buf := getRecordBuf(headerLen + codec.EncodedSizeHint(resp))
	defer putRecordBuf(buf)
	buf.b = codec.AppendResponse(append(append(buf.b, stateCompleted), fp[:]...), resp)
	rkey := s.recordKey(key)
	if err := putScript.Run(ctx, s.client, []string{rkey}, buf.b, millis(ttl)).Err(); err != nil {
		return storeErr("put", rkey, err)
	}
	return nil
}

// Complete implements [core.Store] in one round trip.
func (s *Store) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	if resp == nil {
		return errors.New("redisstore: complete: nil response")
	}
	if err := ctx.Err(); err != nil {
		return unavailable("complete", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	buf := getRecordBuf(codec.EncodedSizeHint(resp))
	defer putRecordBuf(buf)
	buf.b = codec.AppendResponse(buf.b, resp)
	rewrite := "0"
	if s.cfg.acks > 0 {
		rewrite = "1"
	}
	return s.fenced(ctx, "complete", completeScript, key, string(token), buf.b, millis(ttl), rewrite)
}

// recordBuf is a pooled buffer in which Complete and Put encode a record.
// go-redis writes a []byte argument to the connection as it is, and a
// command's result can be read only once the command has run, on every
// kind of client (an AutoPipeliner's deferred face included: reading the
// result waits for its batch). Complete and Put read the result before
// they return, so the buffer goes back to the pool then. (A Redis hook that
// kept a command's arguments past the call would see the buffer reused;
// hooks that log or trace read them during the call.) Pooling spares every
// new key an allocation the size of its response body (docs/performance.md
// has the measurements).
type recordBuf struct{ b []byte }

// maxPooledRecord is the largest buffer kept for reuse; a larger one (a
// large response) is left to the garbage collector, so that one burst of
// large bodies does not pin that much memory per pooled buffer.
const maxPooledRecord = 64 << 10

var recordBufs = sync.Pool{New: func() any { return &recordBuf{b: make([]byte, 0, 2048)} }}

// getRecordBuf returns a pooled buffer with room for n bytes, so that a
// large body is copied into it once.
func getRecordBuf(n int) *recordBuf {
	r := recordBufs.Get().(*recordBuf)
	r.b = slices.Grow(r.b[:0], n)
	return r
}

// putRecordBuf returns a buffer to the pool, unless it grew past
// maxPooledRecord.
func putRecordBuf(r *recordBuf) {
	if cap(r.b) > maxPooledRecord {
		return
	}
	r.b = r.b[:0]
	recordBufs.Put(r)
}

// Release implements [core.Store] in one round trip.
func (s *Store) Release(ctx context.Context, key string, token core.Token) error {
	if err := ctx.Err(); err != nil {
		return unavailable("release", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.fenced(ctx, "release", releaseScript, key, string(token), millis(releasedFor))
}

// Renew implements [core.Store] in one round trip.
func (s *Store) Renew(ctx context.Context, key string, token core.Token, lease time.Duration) error {
	if err := ctx.Err(); err != nil {
		return unavailable("renew", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.fenced(ctx, "renew", renewScript, key, string(token), millis(lease))
}

// fenced runs one of the token-checked scripts and maps its reply. A
// Complete waits for the replicas when [WithReplicaAcks] asks it to.
func (s *Store) fenced(ctx context.Context, op string, script *redis.Script, key string, args ...any) error {
	rkey := s.recordKey(key)
	var (
		n   int64
		err error
	)
	if s.cfg.acks > 0 && script == completeScript {
		var (
			reply any
			acked func() error
		)
		reply, acked, err = s.runAcked(ctx, script, rkey, args...)
		if err == nil {
			var ok bool
			if n, ok = reply.(int64); !ok {
				return corruptErr(op, rkey, "unexpected reply")
			}
			if n == rOK {
				if err := acked(); err != nil {
					return fmt.Errorf("redisstore: %s %s: %w", op, rkey, err)
				}
			}
		}
	} else {
		n, err = script.Run(ctx, s.client, []string{rkey}, args...).Int64()
	}
	if err != nil {
		return storeErr(op, rkey, err)
	}
	switch n {
	case rOK:
		return nil
	case rLeaseLost:
		return fmt.Errorf("redisstore: %s: %w", op, core.ErrLeaseLost)
	}
	return corruptErr(op, rkey, "malformed pending record")
}

// millis converts a duration to whole milliseconds for PX and PEXPIRE,
// rounding up so a lease is never shorter than asked, and at least 1
// (Redis refuses a zero or negative expiry).
func millis(d time.Duration) int64 {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return max(int64(ms), 1)
}

func replyInt(reply []any, i int) (int64, bool) {
	if i >= len(reply) {
		return 0, false
	}
	n, ok := reply[i].(int64)
	return n, ok
}

func unavailable(op string, err error) error {
	return fmt.Errorf("redisstore: %s: %w: %w", op, core.ErrStoreUnavailable, err)
}

func corruptErr(op, rkey, what string) error {
	return fmt.Errorf("redisstore: %s %s: %w: %w: %s", op, rkey, core.ErrStoreUnavailable, core.ErrCorruptRecord, what)
}

// storeErr maps an error of a script run. Every failure to get an answer
// from Redis wraps core.ErrStoreUnavailable; a key of another type is a
// corrupt record; redis.Nil never leaks (the scripts never reply nil).
func storeErr(op, rkey string, err error) error {
	switch {
	case errors.Is(err, redis.Nil):
		return corruptErr(op, rkey, "unexpected nil reply")
	case strings.Contains(err.Error(), "WRONGTYPE"):
		return corruptErr(op, rkey, "key holds a value of another type")
	}
	return unavailable(op, err)
}
