package pgxstore

import (
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	. "github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/idemkit/idemkit/svctest/storetest"
)

// TestHTTPServerDownAndBack puts idemhttp and this store on a private server,
// crashes the server and starts it again: while it is down a guarded request
// gets 503 with Retry-After and the handler does not run; afterwards a
// response completed before the crash replays and new keys run again.
func TestHTTPServerDownAndBack(t *testing.T) {
	t.Parallel()
	srv, pool := privateServer(t, 8)
	var runs atomic.Int64
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"execution":`+strconv.FormatInt(n, 10)+`}`)
	})
	engine := core.New(New(pool), core.WithStoreTimeout(2*time.Second))
	base := storetest.NewHTTPServer(t, engine, app)
	post := func(key string) (*http.Response, string) {
		t.Helper()
		return storetest.Post(t, base, key, `{"amount":1200}`)
	}

	k1 := "k1-" + randHex(8)
	first, firstBody := post(k1)
	if first.StatusCode != http.StatusCreated {
		t.Fatalf("first POST = %d %s; want 201", first.StatusCode, firstBody)
	}

	srv.Crash()
	k2 := "k2-" + randHex(8)
	for _, key := range []string{k1, k2} {
		resp, body := post(key)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("POST %s with the database down = %d (Retry-After %q) %s; want 503 with Retry-After (fail closed)",
				key[:2], resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	if got := runs.Load(); got != 1 {
		t.Errorf("handler ran %d times; want 1: it must not run while the store is down", got)
	}

	srv.Start()
	var again *http.Response
	var againBody string
	deadline := time.Now().Add(15 * time.Second)
	for {
		again, againBody = post(k1)
		if again.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // stale pooled connections are dropped one by one
	}
	if again.StatusCode != http.StatusCreated || again.Header.Get(core.DefaultReplayHeader) != "true" || againBody != firstBody {
		t.Errorf("POST k1 after restart = %d %s=%q %s; want the replay of %s", again.StatusCode,
			core.DefaultReplayHeader, again.Header.Get(core.DefaultReplayHeader), againBody, firstBody)
	}
	resp, body := post(k2)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get(core.DefaultReplayHeader) != "" {
		t.Errorf("POST k2 after restart = %d %s; want a fresh 201", resp.StatusCode, body)
	}
	if got := runs.Load(); got != 2 {
		t.Errorf("handler ran %d times; want 2 (k1 once before the crash, k2 once after)", got)
	}
}
