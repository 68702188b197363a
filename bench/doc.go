// Package bench holds idemkit's cross-module benchmarks: every adapter and
// store next to its physical baseline (the bare handler, fiber v2's built-in
// idempotency middleware, raw go-redis EVALSHA calls, raw pgx statements),
// measured in one go test run so that only ratios need to carry over from
// one machine to another. It is test-only and never imported by users.
//
//	make bench                  # all rounds, the load run, docs/benchmarks.md
//	make bench BENCHCOUNT=2     # a quick run
//
// Store throughput is measured twice: each implementation on its own at
// concurrency 1, 8, 32 and 128 (BenchmarkStore, the chart), and each store
// against its baseline in alternating 100 ms slices of one benchmark
// (BenchmarkStorePair), whose ratios the budget is judged by because
// adjacent slices meet the same machine.
//
// The store benchmarks take their servers from IDEMKIT_REDIS_URL and
// IDEMKIT_POSTGRES_URL and skip, saying why, when those are unset. The
// load run is cmd/loadrun; cmd/report turns the outputs into the report.
package bench
