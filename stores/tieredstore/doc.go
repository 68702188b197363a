// Package tieredstore composes two [core.Store]s: a fast hot tier (Redis)
// in front of a durable tier (Postgres) that is the truth.
//
//	hot := redisstore.New(redisClient)
//	durable := pgxstore.New(pool)
//	store := tieredstore.New(hot, durable, tieredstore.WithObserver(observer))
//	engine := core.New(store)
//
// # Where the claim is arbitrated
//
// The durable tier is the lock of record: a request runs the handler only
// if its Claim on the durable tier returned ClaimAcquired, so exactly-one
// holds across both tiers whatever the hot tier knows or forgets. The hot
// tier is a cache of completed records and a first filter:
//
//   - Claim asks the hot tier first (one round trip). A replay found there
//     is final: completed records never change, and they reach the hot tier
//     only after the durable tier has them. Anything else (including a
//     mismatch, which may come from a stale pending marker) goes on to the
//     durable tier with the same token, and its answer is returned.
//   - When the hot Claim acquired a pending marker and the durable tier
//     answers with a replay, the marker is completed with that response:
//     the hot tier is warmed, and the next replay is one hot round trip.
//     When the durable tier says in flight or mismatch, the marker is
//     released.
//   - Complete writes the durable tier first and returns its error; the
//     hot tier is written afterwards in the background (best effort,
//     bounded by the hot timeout; [Store.Flush] waits for it). A client
//     therefore never sees a response that the durable tier does not hold,
//     and a new key costs the client the durable round trips plus one hot
//     claim.
//   - Release and Renew act on the durable tier, then on the hot tier, best
//     effort.
//
// # Failure table
//
//	hot tier              durable tier   a request ...
//	up                    up             replays hot keys from the hot tier alone; new keys pay both
//	lost records (flush)  up             replays from the durable tier and warms the hot tier again
//	down, slow, erroring  up             is served by the durable tier alone (degraded, reported)
//	any                   down           gets core.ErrStoreUnavailable → 503: the durable tier is the truth
//	pending marker only   absent         (a holder that died between the two claims) is in flight until
//	                                     the marker's lease lapses, then claimable
//
// The hot tier sits behind a circuit breaker: after a number of
// consecutive hot failures (errors or calls slower than the hot timeout)
// the breaker opens and the hot tier is skipped entirely — no request pays
// a timeout — until a cool-down passes; then one request probes it, and a
// success closes the breaker. Opening and closing are reported to the
// observer as [core.EventStoreDegraded] and [core.EventStoreRecovered].
//
// A record warmed from the durable tier is kept in the hot tier for the warm
// TTL [5 min], so a warmed replay can outlive the durable record by at most
// that long.
package tieredstore
