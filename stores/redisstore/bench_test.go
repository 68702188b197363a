package redisstore

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
	"github.com/redis/go-redis/v9"
)

// The benchmarks measure, against the Redis of IDEMKIT_REDIS_URL and in
// one run:
//   - NewKey: Claim on a new key, then Complete (two round trips);
//   - Replay: Claim on a completed key (one round trip, response decoded);
//
// each for this store ("store"), for the same state machine on a Redis
// hash with one field per part ("hash", the layout not chosen), and for a
// baseline of raw go-redis EVALSHA calls of trivial scripts moving the
// same payload in the same number of round trips ("baseline"), at
// concurrency 1 and 32 on a pool of 32 connections. The figure that
// matters is store ops/s over baseline ops/s. The stored response has a
// 1 KiB body. BenchmarkRecordMemory reports MEMORY USAGE of one record.

var benchResponse = &core.Response{
	Status: http.StatusCreated,
	Header: http.Header{"Content-Type": {"application/json"}, "Location": {"/payments/123"}},
	Body:   bytes.Repeat([]byte("x"), 1024),
}

var concurrencies = []int{1, 32}

// benchClient is a client of IDEMKIT_REDIS_URL with a pool of 32.
func benchClient(b *testing.B) *redis.Client {
	c := singleClient(b)
	if got := c.Options().PoolSize; got != 32 {
		b.Fatalf("pool size %d; want 32", got)
	}
	return c
}

// runConc runs op b.N times in all, from conc goroutines, and reports
// b.N per second under the given unit.
func runConc(b *testing.B, conc int, unit string, op func(i int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	b.ResetTimer()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

// impl is one way of doing the benchmarked operations.
type impl struct {
	name     string
	claim    func(ctx context.Context, key string, tok core.Token) (core.Claim, error)
	complete func(ctx context.Context, key string, tok core.Token) error
}

func impls(b *testing.B, client *redis.Client, prefix string) []impl {
	s := New(client, WithPrefix(prefix+"s:"))
	h := &hashLayout{client: client, prefix: prefix + "h:"}
	f := fp(1)
	payload := codec.EncodeResponse(benchResponse)
	basePrefix := prefix + "b:"
	for _, sc := range []*redis.Script{claimScript, completeScript, hashClaimScript, hashCompleteScript, baseSetScript, baseGetScript} {
		if err := sc.Load(context.Background(), client).Err(); err != nil {
			b.Fatal(err)
		}
	}
	return []impl{
		{
			name: "store",
			claim: func(ctx context.Context, key string, tok core.Token) (core.Claim, error) {
				return s.Claim(ctx, core.ClaimRequest{Key: key, Fingerprint: f, Token: tok, Lease: 30 * time.Second})
			},
			complete: func(ctx context.Context, key string, tok core.Token) error {
				return s.Complete(ctx, key, tok, benchResponse, time.Hour)
			},
		},
		{
			name: "hash",
			claim: func(ctx context.Context, key string, tok core.Token) (core.Claim, error) {
				return h.Claim(ctx, key, f, tok, 30*time.Second)
			},
			complete: func(ctx context.Context, key string, tok core.Token) error {
				return h.Complete(ctx, key, tok, benchResponse, time.Hour)
			},
		},
		{
			// The same round trips with trivial scripts: claim writes the
			// fingerprint and token, complete writes the encoded response,
			// replay reads it back (undecoded).
			name: "baseline",
			claim: func(ctx context.Context, key string, tok core.Token) (core.Claim, error) {
				k := basePrefix + "{" + key + "}"
				if key[0] == 'r' { // replay: read the stored payload
					v, err := baseGetScript.Run(ctx, client, []string{k}).Text()
					if err != nil || len(v) == 0 {
						return core.Claim{}, fmt.Errorf("baseline get: %v (%d bytes)", err, len(v))
					}
					return core.Claim{Status: core.ClaimReplay}, nil
				}
				err := baseSetScript.Run(ctx, client, []string{k}, f[:], string(tok), 30000).Err()
				return core.Claim{Status: core.ClaimAcquired}, err
			},
			complete: func(ctx context.Context, key string, tok core.Token) error {
				return baseSetScript.Run(ctx, client, []string{basePrefix + "{" + key + "}"}, payload, "", 3600000).Err()
			},
		},
	}
}

var (
	baseSetScript = redis.NewScript(`redis.call('SET', KEYS[1], ARGV[1] .. ARGV[2], 'PX', ARGV[3]) return 1`)
	baseGetScript = redis.NewScript(`return redis.call('GET', KEYS[1])`)
)

func BenchmarkNewKey(b *testing.B) {
	client := benchClient(b)
	prefix := uniquePrefix(b)
	b.Cleanup(func() { cleanupPrefix(client, prefix) })
	for _, im := range impls(b, client, prefix) {
		for _, conc := range concurrencies {
			b.Run(fmt.Sprintf("%s/c=%d", im.name, conc), func(b *testing.B) {
				run := "n" + randHex(b, 4) + "-"
				ctx := context.Background()
				runConc(b, conc, "ops/s", func(i int64) error {
					key := run + strconv.FormatInt(i, 10)
					tok := core.Token("t" + key)
					c, err := im.claim(ctx, key, tok)
					if err != nil {
						return err
					}
					if c.Status != core.ClaimAcquired {
						return fmt.Errorf("claim %s = %v", key, c.Status)
					}
					return im.complete(ctx, key, tok)
				})
			})
		}
	}
}

func BenchmarkReplay(b *testing.B) {
	const records = 1024
	client := benchClient(b)
	prefix := uniquePrefix(b)
	b.Cleanup(func() { cleanupPrefix(client, prefix) })
	ctx := context.Background()
	for _, im := range impls(b, client, prefix) {
		keys := make([]string, records)
		for i := range keys {
			keys[i] = "r" + strconv.Itoa(i)
			tok := core.Token("t" + keys[i])
			if _, err := im.claim(ctx, "n"+keys[i], tok); err != nil { // the baseline's claim and complete write
				b.Fatal(err)
			}
			if im.name == "baseline" {
				if err := im.complete(ctx, keys[i], tok); err != nil {
					b.Fatal(err)
				}
				continue
			}
			if _, err := im.claim(ctx, keys[i], tok); err != nil {
				b.Fatal(err)
			}
			if err := im.complete(ctx, keys[i], tok); err != nil {
				b.Fatal(err)
			}
		}
		for _, conc := range concurrencies {
			b.Run(fmt.Sprintf("%s/c=%d", im.name, conc), func(b *testing.B) {
				runConc(b, conc, "ops/s", func(i int64) error {
					c, err := im.claim(ctx, keys[i%records], "unused")
					if err != nil {
						return err
					}
					if c.Status != core.ClaimReplay {
						return fmt.Errorf("claim %s = %v; want replay", keys[i%records], c.Status)
					}
					return nil
				})
			})
		}
	}
}

// BenchmarkRecordMemory reports MEMORY USAGE (SAMPLES 0) of one completed
// record with a 1 KiB body, in this store's layout and in the hash layout.
func BenchmarkRecordMemory(b *testing.B) {
	client := benchClient(b)
	prefix := uniquePrefix(b)
	b.Cleanup(func() { cleanupPrefix(client, prefix) })
	ctx := context.Background()
	for _, im := range impls(b, client, prefix)[:2] {
		b.Run(im.name, func(b *testing.B) {
			var rkey string
			switch im.name {
			case "store":
				rkey = prefix + "s:{m}"
			case "hash":
				rkey = prefix + "h:{m}"
			}
			for i := 0; i < b.N; i++ {
				client.Del(ctx, rkey)
				if _, err := im.claim(ctx, "m", "tok"); err != nil {
					b.Fatal(err)
				}
				if err := im.complete(ctx, "m", "tok"); err != nil {
					b.Fatal(err)
				}
			}
			n, err := client.MemoryUsage(ctx, rkey, 0).Result()
			if err != nil {
				b.Fatal(err)
			}
			enc, _ := client.ObjectEncoding(ctx, rkey).Result()
			b.ReportMetric(float64(n), "bytes/record")
			b.Logf("%s: MEMORY USAGE %s = %d bytes (encoding %s; response payload %d bytes)",
				im.name, rkey, n, enc, len(codec.EncodeResponse(benchResponse)))
		})
	}
}

func cleanupPrefix(client *redis.Client, prefix string) {
	ctx := context.Background()
	iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			client.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		client.Unlink(ctx, keys...)
	}
}

// hashLayout is the alternative record layout, measured against the
// chosen one: a Redis hash with fields s (state), f (fingerprint),
// t (token) and r (encoded response).
type hashLayout struct {
	client redis.UniversalClient
	prefix string
}

var hashClaimScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 's', 'f', 'r')
if not v[1] then
  redis.call('HSET', KEYS[1], 's', 'P', 'f', ARGV[1], 't', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1}
end
if v[2] ~= ARGV[1] then return {4} end
if v[1] == 'C' then return {2, v[3]} end
return {3, redis.call('PTTL', KEYS[1])}
`)

var hashCompleteScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 's', 't')
if v[1] ~= 'P' or v[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', 'C', 'r', ARGV[2])
redis.call('HDEL', KEYS[1], 't')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

func (h *hashLayout) Claim(ctx context.Context, key string, f core.Fingerprint, tok core.Token, lease time.Duration) (core.Claim, error) {
	reply, err := hashClaimScript.Run(ctx, h.client, []string{h.prefix + "{" + key + "}"}, f[:], string(tok), millis(lease)).Slice()
	if err != nil {
		return core.Claim{}, err
	}
	switch code, _ := replyInt(reply, 0); code {
	case rAcquired:
		return core.Claim{Status: core.ClaimAcquired}, nil
	case rMismatch:
		return core.Claim{Status: core.ClaimMismatch}, nil
	case rInFlight:
		ms, _ := replyInt(reply, 1)
		return core.Claim{Status: core.ClaimInFlight, RetryAfter: time.Duration(ms) * time.Millisecond}, nil
	case rReplay:
		rec, _ := replyString(reply, 1)
		resp, err := codec.DecodeResponse([]byte(rec))
		if err != nil {
			return core.Claim{}, err
		}
		return core.Claim{Status: core.ClaimReplay, Response: resp}, nil
	}
	return core.Claim{}, fmt.Errorf("hash claim: bad reply %v", reply)
}

func (h *hashLayout) Complete(ctx context.Context, key string, tok core.Token, resp *core.Response, ttl time.Duration) error {
	n, err := hashCompleteScript.Run(ctx, h.client, []string{h.prefix + "{" + key + "}"}, string(tok), codec.EncodeResponse(resp), millis(ttl)).Int64()
	if err != nil {
		return err
	}
	if n != 1 {
		return core.ErrLeaseLost
	}
	return nil
}

// BenchmarkInterleaved runs the three implementations in turn, operation
// by operation, timing each apart: a noisy machine then slows all three
// alike, so their ratio stays meaningful where the separate benchmarks
// above drift. Each b.N counts one round of all three.
func BenchmarkInterleaved(b *testing.B) {
	client := benchClient(b)
	prefix := uniquePrefix(b)
	b.Cleanup(func() { cleanupPrefix(client, prefix) })
	ctx := context.Background()
	ims := impls(b, client, prefix)
	const records = 1024
	for _, im := range ims {
		for i := 0; i < records; i++ {
			key := "r" + strconv.Itoa(i)
			if im.name != "baseline" {
				if _, err := im.claim(ctx, key, "t"); err != nil {
					b.Fatal(err)
				}
			}
			if err := im.complete(ctx, key, "t"); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, mode := range []string{"NewKey", "Replay"} {
		for _, conc := range concurrencies {
			b.Run(fmt.Sprintf("%s/c=%d", mode, conc), func(b *testing.B) {
				run := "n" + randHex(b, 4) + "-"
				var spent [3]atomic.Int64
				runConc(b, conc, "rounds/s", func(i int64) error {
					for j, im := range ims {
						start := time.Now()
						var err error
						if mode == "NewKey" {
							key := run + strconv.FormatInt(i, 10)
							if _, err = im.claim(ctx, key, "t"); err == nil {
								err = im.complete(ctx, key, "t")
							}
						} else {
							var c core.Claim
							c, err = im.claim(ctx, "r"+strconv.FormatInt(i%records, 10), "t")
							if err == nil && c.Status != core.ClaimReplay {
								err = fmt.Errorf("%s replay: %v", im.name, c.Status)
							}
						}
						spent[j].Add(int64(time.Since(start)))
						if err != nil {
							return err
						}
					}
					return nil
				})
				// Per implementation: ops/s it would reach alone at this
				// concurrency, from the time its own calls took.
				for j, im := range ims {
					perOp := time.Duration(spent[j].Load() / int64(b.N))
					b.ReportMetric(float64(conc)/perOp.Seconds(), im.name+"-ops/s")
				}
				// Speed of the store relative to the others: their time over
				// the store's time (above 1: the store is faster).
				b.ReportMetric(float64(spent[2].Load())/float64(spent[0].Load()), "store-vs-baseline")
				b.ReportMetric(float64(spent[1].Load())/float64(spent[0].Load()), "store-vs-hash")
			})
		}
	}
}

// replyString returns reply[i] as a string, as replyInt does an integer:
// the hash layout's claim reply carries the record as one.
func replyString(reply []any, i int) (string, bool) {
	if i >= len(reply) {
		return "", false
	}
	s, ok := reply[i].(string)
	return s, ok
}
