package redisstore

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	. "github.com/idemkit/idemkit/stores/redisstore"
	"github.com/redis/go-redis/v9"
)

// TestRawKeysAbsentAtRest serves requests in every state a record can be
// left in — completed, pending (a handler still running), released (a
// 5xx), refused (a mismatch) — under raw keys and scopes that are easy to
// find, with and without an HMAC secret, then scans every Redis key under
// the test's prefix and its value: no raw key, no scope and no request
// body appears (contract.md §2: stores never see raw keys).
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
			secrets := runAtRest(t, core.New(New(client, WithPrefix(prefix)), opts...))
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
					response = response || strings.Contains(v, "stored response")
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

// runAtRest serves, through idemhttp, one request in each state a record
// can be left in, and returns the strings that must not be found at rest.
func runAtRest(t *testing.T, engine *core.Engine) []string {
	t.Helper()
	hold, started := make(chan struct{}), make(chan struct{}, 1)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Query().Get("hold") != "" {
			started <- struct{}{}
			select {
			case <-hold:
			case <-time.After(10 * time.Second):
			}
		}
		if r.URL.Query().Get("fail") != "" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "stored response")
	})
	base := newHTTPServer(t, engine, app)
	tag := randHex(t, 6)
	scope := "SCOPE-tenant-" + tag
	keys := map[string]string{ // raw key → query
		"RAWKEY-completed-" + tag: "",
		"RAWKEY-pending-" + tag:   "?hold=1",
		"RAWKEY-released-" + tag:  "?fail=1",
	}
	body := "BODY-card-" + tag
	post := func(key, query, body string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/payments"+query, strings.NewReader(body))
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set("X-Api-Key", scope)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("POST: %v", err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	held := make(chan int, 1)
	for key, query := range keys {
		if query == "?hold=1" {
			go func() { held <- post(key, query, body) }()
			continue
		}
		post(key, query, body)
	}
	// The pending claim is in the store while the handler runs: the
	// caller scans before the cleanup lets it end.
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatalf("the held request never ran")
	}
	if got := post("RAWKEY-pending-"+tag, "?hold=1", body); got != http.StatusConflict {
		t.Errorf("duplicate of the held request: status %d; want 409", got)
	}
	if got := post("RAWKEY-completed-"+tag, "", body+"-other"); got != http.StatusUnprocessableEntity {
		t.Errorf("mismatch: status %d; want 422", got)
	}
	t.Cleanup(func() { close(hold); <-held })
	out := []string{scope, body}
	for key := range keys {
		out = append(out, key)
	}
	return out
}
