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
//     expired records itself.
//   - Binary exact. The response is stored as the bytes of
//     [core.EncodeResponse] (status, every header value in order, the raw
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
//	byte 0        'P' pending or 'C' completed
//	bytes 1..32   the request fingerprint (raw SHA-256)
//	bytes 33..    pending: the fencing token
//	              completed: core.EncodeResponse(resp)
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
// # Clients
//
// Deadlines: the engine sets no deadline on store calls unless
// [core.WithStoreTimeout] is given; this store then relies on go-redis's
// own socket timeouts, ReadTimeout and WriteTimeout (3 s by default; keep
// them positive), and on PoolTimeout for an exhausted pool, so that a hung
// server still turns into a 503 within those bounds. go-redis applies a
// context's deadline to the socket only with ContextTimeoutEnabled set in
// its options: set it when you configure an engine store timeout or a
// request deadline that should cut a call short. The store itself refuses a context that is
// already done before it sends anything. A script whose reply was lost to
// a timeout may still have run on the server: a claim the caller never
// learned about lapses with its lease, and a Complete retried after such a
// loss reports [core.ErrLeaseLost] although the first attempt stored the
// response (the record is then correct; only the report is pessimistic).
package redisstore
