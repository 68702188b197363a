package redisstore

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
	. "github.com/idemkit/idemkit/stores/redisstore"
)

// TestForgedRecords writes records into Redis with plain SETs, as anyone
// able to write to the server could, and checks that the engine never
// replays them over a real socket: a status that is not a final one, a
// Set-Cookie field, and under an HMAC secret a record without a valid MAC
// (one made up, or another key's record copied over).
func TestForgedRecords(t *testing.T) {
	client := singleClient(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		secret bool
		// forge returns the value to SET at the record's key, given the
		// genuine value and that of another key of the same payload.
		forge func(genuine, other string) string
		// setCookie: the forged record carries Set-Cookie, and a replay
		// (of its other fields) is allowed as long as it is filtered out.
		setCookie bool
	}{
		{name: "Status101", forge: func(g, _ string) string {
			return forged(g, &core.Response{Status: 101, Header: http.Header{"Upgrade": {"h2c"}}})
		}},
		{name: "Status999", forge: func(g, _ string) string {
			return forged(g, &core.Response{Status: 999, Header: http.Header{}, Body: []byte("forged")})
		}},
		{name: "SetCookie", setCookie: true, forge: func(g, _ string) string {
			return forged(g, &core.Response{Status: 201, Header: http.Header{"Set-Cookie": {"session=attacker"}}, Body: []byte("forged")})
		}},
		{name: "SetCookieLowerCase", setCookie: true, forge: func(g, _ string) string {
			return forged(g, &core.Response{Status: 201, Header: http.Header{"set-cookie": {"session=attacker"}}, Body: []byte("forged")})
		}},
		{name: "NoMACUnderSecret", secret: true, forge: func(g, _ string) string {
			return forged(g, &core.Response{Status: 201, Header: http.Header{}, Body: []byte("forged")})
		}},
		{name: "OtherKeysRecordUnderSecret", secret: true, forge: func(_, o string) string { return o }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []core.Option
			if tc.secret {
				opts = append(opts, core.WithHMACSecret([]byte("forged-test secret")))
			}
			obs := &keyLog{}
			prefix := uniquePrefix(t)
			store := New(client, WithPrefix(prefix))
			var runs atomic.Int64
			base := newHTTPServer(t, core.New(store, append(opts, core.WithObserver(obs))...), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				runs.Add(1)
				w.WriteHeader(http.StatusCreated)
				io.WriteString(w, "genuine")
			}))
			key, otherKey := "k-"+randHex(t, 8), "k-"+randHex(t, 8)
			for _, k := range []string{key, otherKey} {
				if resp, body := postKey(t, base, k, `{"amount":1}`); resp.StatusCode != http.StatusCreated {
					t.Fatalf("first POST = %d %s; want 201", resp.StatusCode, body)
				}
			}
			// The genuine record replays, through this store's layout, with
			// its MAC verified and removed.
			if resp, body := postKey(t, base, key, `{"amount":1}`); resp.StatusCode != http.StatusCreated || body != "genuine" ||
				resp.Header.Get(core.DefaultReplayHeader) != "true" || resp.Header.Get(core.RecordMACHeader) != "" {
				t.Fatalf("retry before forging = %d %q, header %v; want the genuine 201 replayed without its MAC", resp.StatusCode, body, resp.Header)
			}
			skeys := obs.executed()
			if len(skeys) != 2 {
				t.Fatalf("executed %d requests; want 2", len(skeys))
			}
			// A record's key is the prefix and the storage key in braces
			// (the layout in redisstore's doc).
			rkey, orkey := prefix+"{"+skeys[0]+"}", prefix+"{"+skeys[1]+"}"
			genuine, err := client.Get(ctx, rkey).Result()
			if err != nil {
				t.Fatalf("GET %s: %v", rkey, err)
			}
			other, err := client.Get(ctx, orkey).Result()
			if err != nil {
				t.Fatalf("GET %s: %v", orkey, err)
			}
			if err := client.Set(ctx, rkey, tc.forge(genuine, other), time.Hour).Err(); err != nil {
				t.Fatalf("SET %s: %v", rkey, err)
			}

			resp, body := postKey(t, base, key, `{"amount":1}`)
			wasReplayed := resp.Header.Get(core.DefaultReplayHeader) == "true"
			switch {
			case tc.setCookie && resp.Header.Get("Set-Cookie") != "":
				t.Errorf("retry over a forged record: Set-Cookie %q replayed; want it filtered on replay", resp.Header.Get("Set-Cookie"))
			case !tc.setCookie && wasReplayed:
				t.Errorf("retry over a forged record = %d %q replayed; want it refused (503, or discarded and run again)", resp.StatusCode, body)
			case !tc.setCookie && resp.StatusCode != http.StatusServiceUnavailable && (resp.StatusCode != http.StatusCreated || body != "genuine" || runs.Load() != 3):
				t.Errorf("retry over a forged record = %d %q after %d runs; want 503, or a fresh 201 from the handler", resp.StatusCode, body, runs.Load())
			}
			t.Logf("forged %s: status %d, replayed %v, Set-Cookie %q, handler runs %d", tc.name, resp.StatusCode, wasReplayed, resp.Header.Get("Set-Cookie"), runs.Load())
		})
	}
}

// forged is a completed record of genuine's fingerprint holding resp.
func forged(genuine string, resp *core.Response) string {
	return genuine[:headerLen] + string(codec.EncodeResponse(resp))
}

func postKey(t *testing.T, base, key, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/payments", strings.NewReader(body))
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// keyLog records the storage keys of executed requests, in order.
type keyLog struct {
	mu   sync.Mutex
	keys []string
}

func (l *keyLog) Observe(_ context.Context, ev core.Event) {
	if ev.Outcome == core.OutcomeExecuted {
		l.mu.Lock()
		l.keys = append(l.keys, ev.KeyHash)
		l.mu.Unlock()
	}
}

func (l *keyLog) executed() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.keys...)
}
