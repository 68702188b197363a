// Package redisstore is an idemkit [core.Store] on Redis, through go-redis
// v9. It takes a [redis.UniversalClient], so one store runs on a single
// node, behind Sentinel, or on Redis Cluster:
//
//	store := redisstore.New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"}))
//	engine := core.New(store)
//
// # Guarantees
//
//   - One round trip per decision. Claim, Complete, Release and Renew are
//     each one Lua script, run with [redis.Script.Run]: EVALSHA, and EVAL
//     only the first time a server has not seen the script (NOSCRIPT). A
//     replay carries the stored response in the claim's own round trip.
//   - Atomic on the server. Each script reads and writes one key while
//     Redis runs nothing else, so of any number of concurrent claims of a
//     key exactly one acquires it; the fingerprint is compared and the
//     fencing token checked (compare-and-set) inside the script, never in
//     Go between two calls.
//   - Redis's clock only. A pending claim is written with PX = the lease
//     and renewed with PEXPIRE; a completed record with PX = the
//     retention TTL. Both are in milliseconds, rounded up, at least 1 ms. A
//     lapsed lease or an expired record is simply an absent key, and
//     RetryAfter of an in-flight claim is the key's PTTL. Redis prunes
//     expired records itself. A pending record that no claim can have
//     written — no expiry at all, or more lease left than [WithMaxLease]
//     [24 h] — is taken over like a lapsed lease instead of answering
//     "in flight" for as long as it lives.
//   - Re-sent commands are harmless. go-redis re-sends a command whose
//     reply timed out (MaxRetries), and Redis may run every copy. A claim
//     that finds its own token on a live pending record is the same claim:
//     acquired again, its lease extended, never "in flight" to its own
//     sender. A completed record keeps the token that completed it, so a
//     Complete retried after a lost reply returns nil. The copies of a
//     claim whose caller gave up leave at most one pending record, holding
//     that caller's token, which a Release with it removes. A Release
//     leaves a tombstone of the token for a minute (also when the claim
//     has not landed yet), so a copy that lands after the Release is
//     refused instead of holding the key for a lease nobody will release;
//     to every other request the tombstone is an absent key.
//   - Binary exact. The response is stored as the bytes of
//     [codec.EncodeResponse] (status, every header value in order, the raw
//     body): no hex, no base64, NUL bytes and invalid UTF-8 kept.
//   - Errors. Anything that keeps Redis from answering — connection
//     refused, timeouts, a cancelled or expired context, READONLY,
//     LOADING, CLUSTERDOWN, redirects exhausted, OOM — wraps
//     [core.ErrStoreUnavailable], so the engine answers 503 (or fails open
//     when so configured). A record that does not decode, or a key of
//     another type under a record's name, wraps both [core.ErrCorruptRecord]
//     and [core.ErrStoreUnavailable]. A refused fencing check wraps
//     [core.ErrLeaseLost]. [redis.Nil] never escapes.
//
// # Key layout
//
// One key per record, a Redis string:
//
//	<prefix>{<storage key>}       prefix defaults to "idem:"
//
//	byte 0        'P' pending, 'D' completed by a token, 'C' completed
//	bytes 1..32   the request fingerprint (raw SHA-256)
//	bytes 33..    'P': the fencing token
//	              'D': one byte n, the n-byte token that completed the
//	                   record, then codec.EncodeResponse(resp)
//	              'C': codec.EncodeResponse(resp)
//	              'R': (fingerprint bytes zero) a released token, for 1 min
//
// 'C' is what a cache [Store.Put] writes, what a Complete writes for a
// token over 255 bytes, and what versions before 'D' wrote: such records
// replay as before; a Complete retried on one reports [core.ErrLeaseLost].
// Versions before 'D' read a 'D' record as corrupt: while old and new
// processes share a Redis, an old one answers 503 to a replay of a record
// a new one completed, so finish such a rollout promptly.
//
// The storage key, already a digest of (scope, client key), is the hash
// tag: every key of a record shares one cluster slot, and records spread
// evenly over the slots of a cluster. The prefix must therefore contain no
// '{'. A record with a 1 KiB body takes about 1.4 KB of Redis memory
// (MEMORY USAGE).
//
// One string was chosen over a hash with a field per part (state,
// fingerprint, token, response): measured side by side on the same Redis
// (see bench_test.go), it is as fast or a little faster for new keys and
// replays, and about 15% smaller, because a hash with a field over 64
// bytes leaves the compact listpack encoding.
//
// # Memory: run noeviction
//
// Every record carries a TTL, so a Redis whose maxmemory-policy is
// allkeys-* or volatile-* may evict a live claim when memory runs short,
// and the next request for its key claims it again and runs the handler a
// second time (measured: under allkeys-lru and a 2 MB maxmemory, a live
// claim was evicted by other writes and a second Claim acquired the key).
// Run the Redis of this store with maxmemory-policy noeviction: a full
// Redis then refuses writes (OOM), every claim fails with
// [core.ErrStoreUnavailable] and the engine answers 503 — it fails closed,
// never twice. [Store.Check] (a [core.Checker]) sends PING and CONFIG GET
// maxmemory* to every primary and returns an error wrapping
// [ErrEvictionPolicy] for an evicting policy, [ErrPolicyUnknown] when
// CONFIG is refused (an ACL, a renamed command, a managed service: check
// the provider's setting), and [core.ErrStoreUnavailable] when a node does
// not answer. The example services refuse to start on an evicting Redis
// unless -allow-evicting-redis is given. A store used only as a tiered
// store's cache ([core.Cache]) holds copies of completed records and no
// claims, and may be evicted safely.
//
// # Clients and deadlines
//
// Every call whose context has no deadline gets one of [DefaultTimeout]
// (5 s, go-redis's default ReadTimeout; [WithTimeout]): the engine sets
// none by default, and without it a hung Redis held a call for one
// ReadTimeout per attempt, a timed-out attempt being followed by a retry
// on a new connection whose handshake waited again (10 s measured with
// go-redis's defaults). go-redis stops retrying once the context is done.
// Set ContextTimeoutEnabled in go-redis's options: go-redis then also cuts
// a single attempt short at the deadline, and a call on a hung Redis ends
// in [core.ErrStoreUnavailable] after about the store's timeout (or the
// caller's deadline). Without it one attempt still waits its
// ReadTimeout, so the bound is about the longer of the two. PoolTimeout
// bounds the wait for a connection of an exhausted pool.
//
// # Failover: replica acknowledgements
//
// Redis replicates asynchronously. A claim or a completed record that the
// primary acknowledged and that had not reached a replica when the
// primary failed is gone after the failover: a retry of that request runs
// the handler again (measured with a real primary and replica: a claim
// made while the replica's link was down was acknowledged, and after the
// replica's promotion a second Claim acquired the key). [WithReplicaAcks]
// closes that window for acknowledged writes: after an acquired claim and
// after a complete the store sends WAIT n timeout on the same connection
// in the same round trip, and fails with [core.ErrStoreUnavailable] and
// [ErrReplicaAcks] when fewer than n replicas acknowledged. The engine
// answers such a claim with 503 (its background release frees the key)
// and retries such a complete (idempotent for its token, and re-waited).
// The cost: every claim and complete waits for the replicas (one
// primary-to-replica round trip more), and writes are refused while fewer
// than n replicas are connected and in sync — durability bought with
// availability. WAIT is not consensus: let the failover promote the
// most up-to-date replica, as Sentinel and Cluster do.
//
// A script whose reply was lost may still have run on the server; see
// "Re-sent commands are harmless" above.
package redisstore
