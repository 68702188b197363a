package redisstore

import (
	"context"
	"strings"
	"testing"

	"github.com/idemkit/idemkit/core"
	. "github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/svctest/storetest"
	"github.com/redis/go-redis/v9"
)

// TestRawKeysAbsentAtRest serves requests in every state a record can be
// left in — completed, pending (a handler still running), released (a
// 5xx), refused (a mismatch) — under raw keys and scopes that are easy to
// find, with and without an HMAC secret, then scans every Redis key under
// the test's prefix and its value: no raw key, no scope and no request
// body appears (docs/contract.md C-SCOPE-1: stores never see raw keys).
func TestRawKeysAbsentAtRest(t *testing.T) {
	client := singleClient(t)
	for _, secret := range []string{"", "at-rest-secret"} {
		name := "SHA256"
		if secret != "" {
			name = "HMAC"
		}
		t.Run(name, func(t *testing.T) {
			prefix := uniquePrefix(t)
			opts := []core.Option{core.WithHeaderScope("X-Api-Key")}
			if secret != "" {
				opts = append(opts, core.WithHMACSecret([]byte(secret)))
			}
			secrets := storetest.RunAtRest(t, core.New(New(client, WithPrefix(prefix)), opts...))
			ctx := context.Background()
			var iter uint64
			seen, response := 0, false
			for {
				keys, next, err := client.Scan(ctx, iter, prefix+"*", 100).Result()
				if err != nil {
					t.Fatalf("SCAN %s*: %v", prefix, err)
				}
				for _, k := range keys {
					seen++
					v := dumpValue(t, ctx, client, k)
					response = response || strings.Contains(v, storetest.AtRestResponse)
					for _, s := range secrets {
						if strings.Contains(k, s) || strings.Contains(v, s) {
							t.Errorf("Redis key %q (or its value) holds %q: a raw key, scope or request body at rest", k, s)
						}
					}
				}
				if iter = next; iter == 0 {
					break
				}
			}
			if seen < 2 || !response {
				t.Fatalf("found %d keys under %s, the stored response in none: %v; want the records of the run, read in full", seen, prefix, response)
			}
			t.Logf("%d Redis keys scanned: no raw key, scope or request body", seen)
		})
	}
}

// dumpValue returns every byte Redis holds for key, whatever its type.
func dumpValue(t *testing.T, ctx context.Context, c *redis.Client, key string) string {
	t.Helper()
	var b strings.Builder
	switch typ := c.Type(ctx, key).Val(); typ {
	case "string":
		b.WriteString(c.Get(ctx, key).Val())
	case "hash":
		for f, v := range c.HGetAll(ctx, key).Val() {
			b.WriteString(f + "\x00" + v + "\x00")
		}
	case "list":
		b.WriteString(strings.Join(c.LRange(ctx, key, 0, -1).Val(), "\x00"))
	case "set":
		b.WriteString(strings.Join(c.SMembers(ctx, key).Val(), "\x00"))
	case "zset":
		b.WriteString(strings.Join(c.ZRange(ctx, key, 0, -1).Val(), "\x00"))
	case "none":
		// expired between SCAN and TYPE
	default:
		t.Errorf("Redis key %q has type %s, which the scan cannot read", key, typ)
	}
	return b.String()
}
