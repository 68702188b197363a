// Package tieredstore composes a fast hot tier (Redis) in front of a
// durable tier (Postgres) that is the truth. The hot tier is a
// [core.Cache] of completed records; the durable tier is a [core.Store]
// and decides every claim.
//
//	hot := redisstore.New(redisClient, redisstore.WithPrefix("idem:hot:"))
//	durable := pgxstore.New(pool)
//	store := tieredstore.New(hot, durable, tieredstore.WithObserver(observer))
//	engine := core.New(store)
//
// # Where the claim is arbitrated
//
// The durable tier is the lock of record: a request runs the handler only
// if its Claim on the durable tier returned ClaimAcquired, so exactly-one
// holds across both tiers whatever the hot tier knows or forgets. The hot
// tier holds completed records only, and only records the durable tier
// has replayed (read-through):
//
//   - Claim looks the key up in the hot tier first (one round trip, a GET
//     for redisstore). A replay or a mismatch found there is final:
//     completed records never change, and they reach the hot tier only from
//     the durable tier. Anything else goes to the durable tier, and its
//     answer is returned.
//   - When the durable tier answers with a replay, the record is written
//     to the hot tier in the background (best effort, bounded by the hot
//     timeout; [Store.Flush] waits for it), for as long as the durable
//     tier says the record lives ([core.Claim].TTL) and at most the warm
//     TTL. The next replay is one hot round trip.
//   - Complete, Release and Renew act on the durable tier alone. A new key
//     therefore costs one hot lookup plus the durable claim and complete,
//     and writes nothing to the hot tier: Redis holds only the records
//     that were retried, and a client never sees a response the durable
//     tier does not hold.
//
// Why read-through rather than writing every completed record to the hot
// tier: a hot write per new key costs every new key Redis work (measured in
// docs/performance.md), to speed up only the first retry of a key, which
// the durable tier answers in one statement anyway.
//
// # Failure table
//
//	hot tier              durable tier   a request ...
//	up                    up             replays retried keys from the hot tier alone; new keys pay a lookup and the durable tier
//	lost records (flush,  up             replays from the durable tier and warms the hot tier again
//	eviction, restart)
//	down, slow, erroring  up             is served by the durable tier alone (degraded, reported)
//	up                    down           replays keys already warmed; gets core.ErrStoreUnavailable → 503
//	                                     for anything else: the durable tier is the truth
//	down                  down           gets core.ErrStoreUnavailable → 503
//
// The hot tier sits behind a circuit breaker: after a number of
// consecutive hot failures (errors or calls slower than the hot timeout)
// the breaker opens and the hot tier is skipped entirely — no request pays
// a timeout — until a cool-down passes; then one request probes it, and a
// success closes the breaker. Opening and closing are reported to the
// observer as [core.EventStoreDegraded] and [core.EventStoreRecovered].
// The probe's outcome is recorded whatever happens to the request that
// carries it: the probe runs detached from that request's cancellation,
// bounded by the hot timeout, so a client that goes away mid-probe cannot
// leave the breaker waiting for a verdict that never comes (and Redis
// unused until a restart).
//
// # The hot tier may be evicted
//
// The hot tier can lose any record at any moment — evicted by a Redis under
// maxmemory with allkeys-lru or a volatile-* policy, flushed, restarted
// empty — without breaking a guarantee, so unlike a Redis used as the
// [core.Store] of claims (which must run noeviction), the hot tier's Redis
// may run any eviction policy and is sized for the replay traffic you want
// fast, not for every record. This is safe because:
//
//   - it never holds a claim: every claim is decided by the durable tier,
//     so an evicted hot record can never let a second request acquire a
//     key, and concurrent duplicates still run the handler once;
//   - it holds only completed records copied from the durable tier, which
//     keeps them for their whole retention: a retry whose record was
//     evicted misses the hot tier, gets the same response from the durable
//     tier, and warms the hot tier again;
//   - an evicted record is only absent, never altered: a lookup answers the
//     stored record or nothing.
//
// What eviction costs is speed: a retry of an evicted record pays the hot
// lookup and a durable claim. (Tested with a 2 MB allkeys-lru Redis holding
// a quarter of the warmed records.)
//
// # Health
//
// [Store.Check] ([core.Checker]) returns the durable tier's Check error when
// it has one: without Postgres nothing can be served. A hot tier that does
// not answer a lookup, or that the breaker is skipping, makes the store
// degraded: an error wrapping [core.ErrDegraded], which a readiness probe
// answers as up. The hot tier's own Check, if it has one, is not asked: it
// may refuse an evicting Redis, which is right for a Store of claims and
// safe for a cache.
//
// A record warmed from a durable tier that reports the remaining retention
// (pgxstore and memstore do) lives in the hot tier no longer than in the
// durable tier, give or take the time the background write takes. For a
// durable tier that does not report it, the warm TTL [5 min] bounds how
// long a warmed replay can outlive the durable record.
package tieredstore
