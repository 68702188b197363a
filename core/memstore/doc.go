// Package memstore is the in-memory [core.Store]: the embedded default, for
// tests, development and single-instance services.
//
//	st := memstore.New()
//	defer st.Close()
//
// # Scope
//
// Records live in the memory of one process. Two replicas of a service, each
// with its own memstore, do not see each other's claims, so a retry that
// reaches the other replica runs the handler again; and a restart forgets
// everything. Use a shared store (redisstore, pgxstore, tieredstore) as soon
// as more than one process serves the same keys.
//
// # Guarantees
//
//   - Every method is safe for concurrent use. Claim, Complete, Release and
//     Renew are atomic per key: keys are hashed (with [hash/maphash]) to one
//     of a fixed number of shards, each a map behind its own mutex. The map
//     is indexed by the 64-bit hash itself; keys whose hashes collide share
//     a slot and are told apart by the key, so a collision costs a
//     comparison, never a wrong record.
//   - Leases and retention are judged by [time.Now] at the moment of the
//     call, so the store works under [testing/synctest]. An expired record
//     (a pending claim whose lease lapsed, or a completed record past its
//     retention) counts as absent everywhere: Claim acquires it, and
//     Complete, Release and Renew with its token report [core.ErrLeaseLost].
//   - Complete keeps the response it is handed and every replay of the
//     record returns it, read-only, as the Store contract allows: neither a
//     new key nor a replay copies a response. Status, every header
//     field with all its values in order, the body bytes and BodyOmitted
//     come back exactly. An empty body comes back as a non-nil empty slice,
//     whether it was stored as nil or as empty; a nil header comes back as
//     an empty, non-nil [net/http.Header].
//   - A background janitor deletes expired records every sweep interval
//     [1 min]. [Store.Close] stops it and waits for it; after Close every
//     method returns [ErrClosed], which wraps [core.ErrStoreUnavailable].
//   - A cancelled or expired context makes a method return an error
//     wrapping both [core.ErrStoreUnavailable] and the context's error,
//     without touching any record.
//
// # Bounded memory and eviction
//
// The store holds at most a fixed number of records [100 000]: each of the
// shards [64] holds at most ceil(max/shards) records. The bound counts
// records, not bytes; the engine's stored-response limit [1 MiB] bounds the
// size of each one. When a Claim needs room for a new key in a full shard:
//
//  1. expired records in that shard are dropped first;
//  2. if the shard is still full, the completed record nearest to its expiry
//     is evicted (a per-shard min-heap over completed records by expiry, so
//     this costs O(log n)); a retry of the evicted key runs the handler
//     again, exactly as it would after its retention ran out;
//  3. pending claims with a live lease are never evicted: if the shard holds
//     nothing else, Claim returns [ErrFull], which wraps
//     [core.ErrStoreUnavailable], and the engine answers 503 (or fails open
//     when so configured).
//
// Eviction never breaks the one-execution guarantee for requests in flight;
// it only shortens the retention of the results closest to expiry under memory
// pressure. Size the store for the number of keys expected within one
// retention period.
package memstore
