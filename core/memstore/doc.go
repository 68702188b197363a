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
// # Bounded memory and fair eviction
//
// The store holds at most a fixed number of records N [100 000]: each of
// the shards [64] holds at most P = ceil(N/shards). The bound counts
// records, not bytes; the engine's stored-response limit [1 MiB] bounds
// the size of each one. Records are counted by scope: the engine hands
// every Claim a digest of the request's scope ([core.ClaimRequest].Scope,
// empty without a scope function; Put's records count in the empty
// scope). When a Claim needs room for a new key in a full shard:
//
//  1. expired records in that shard are dropped first;
//  2. if the shard is still full, one completed record is evicted early.
//     It comes from the claiming scope itself when that holds at least as
//     many records of the shard (pending and completed) as any scope with
//     a completed record, so a tie is paid by the claiming scope; else from
//     the scope with a completed record that holds the most records,
//     provided it holds more than the claiming scope. Within that scope
//     the completed record nearest to its expiry goes
//     (per-shard and per-scope min-heaps by expiry, and a max-heap of
//     scopes by count, so this costs O(log n)). A retry of the evicted key
//     runs the handler again, exactly as it would after its retention ran
//     out, and every such eviction is reported to the observer given with
//     [WithObserver], as a [core.EventEvicted] event carrying the storage
//     key;
//  3. pending claims with a live lease are never evicted: when nothing may
//     be evicted (the shard holds only live claims, or the claiming scope
//     holds the most records of the shard and all of them are live
//     claims), Claim returns [ErrFull], which wraps
//     [core.ErrStoreUnavailable], and the engine answers 503 (or fails
//     open when so configured).
//
// A scope loses a record to another scope's new key only while it holds
// more records of the shard than that scope does. So a flood of new keys
// from one scope evicts that scope's own records (nearest to expiry first:
// with one retention for all, the oldest), and no one else's. Eviction never breaks
// the one-execution guarantee for requests in flight; it only shortens the
// retention of some results under memory pressure. Without a scope
// function every record shares one scope, and eviction simply takes the
// completed record of the shard nearest to its expiry.
//
// # Sizing
//
// Every record must fit for its whole retention: N ≥ new keys per second
// (all clients together) × retention. At 50 new keys a second and the
// engine's 24 h retention that is 4.32 million records, each about 250
// bytes plus its stored response. A store sized below that evicts the
// oldest records of its busiest scopes early, and reports each one.
//
// Scopes competing for a full store converge to equal shares: k of them
// hold floor(P/k) records each in every shard, about N/k in all. Against
// one flooding scope, any other scope keeps up to N/2. What the flood needs beyond
// its share it takes from its own records. The share is per shard, and
// hashing spreads a scope's c records unevenly: about c/shards in each,
// the fullest of 64 shards holding up to about c/shards + 4·√(c/shards).
// A scope keeps all its records while that stays within P/k: up to about
// 43 000 records against one flooding scope with the defaults. A small
// bound over many shards leaves little room in each (WithMaxEntries(1000)
// over 64 shards: P = 16, 8 records per scope of two), so give it fewer
// shards (WithShards(8): P = 125).
package memstore
