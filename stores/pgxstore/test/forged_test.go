package pgxstore

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
)

// TestForgedRows writes completed rows by hand, as anyone able to write to
// the table could (within its CHECK constraints, which allow statuses
// 100–599), and checks that the engine never replays them over a real
// socket: an interim status, a value that would split the header, a
// Set-Cookie field, and under an HMAC secret a response without a valid
// MAC (one made up, or another key's row copied over).
func TestForgedRows(t *testing.T) {
	t.Parallel()
	db := newTestDB(t, 4)
	tbl := db.table()
	const setRow = `UPDATE %s SET status = $2, headers = $3, body = $4, body_omitted = false WHERE key = $1`
	const copyRow = `UPDATE %[1]s AS r SET status = o.status, headers = o.headers, body = o.body,
		body_omitted = o.body_omitted FROM %[1]s AS o WHERE r.key = $1 AND o.key = $2`
	type row struct {
		status int
		h      http.Header
		body   string
	}
	for _, tc := range []struct {
		name      string
		secret    bool
		row       *row // set on the forged key's row; nil: copy the other key's row
		setCookie bool // a replay is allowed as long as Set-Cookie is filtered out
	}{
		{name: "Status100", row: &row{100, http.Header{}, "forged"}},
		{name: "Status101", row: &row{101, http.Header{"Upgrade": {"h2c"}}, ""}},
		{name: "SplitValue", row: &row{201, http.Header{"Location": {"/a\r\nSet-Cookie: session=attacker"}}, "forged"}},
		{name: "SetCookie", setCookie: true, row: &row{201, http.Header{"Set-Cookie": {"session=attacker"}}, "forged"}},
		{name: "SetCookieLowerCase", setCookie: true, row: &row{201, http.Header{"set-cookie": {"session=attacker"}}, "forged"}},
		{name: "NoMACUnderSecret", secret: true, row: &row{201, http.Header{}, "forged"}},
		{name: "OtherKeysRowUnderSecret", secret: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var opts []core.Option
			if tc.secret {
				opts = append(opts, core.WithHMACSecret([]byte("forged-test secret")))
			}
			obs := &keyLog{}
			var runs atomic.Int64
			engine := core.New(db.store(), append(opts, core.WithObserver(obs))...)
			web := httptest.NewServer(idemhttp.Middleware(engine)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				runs.Add(1)
				w.WriteHeader(http.StatusCreated)
				io.WriteString(w, "genuine")
			})))
			t.Cleanup(web.Close)

			key, otherKey := "k-"+randHex(8), "k-"+randHex(8)
			for _, k := range []string{key, otherKey} {
				if resp, body := postKey(t, web.URL, k); resp.StatusCode != http.StatusCreated {
					t.Fatalf("first POST = %d %s; want 201", resp.StatusCode, body)
				}
			}
			// The genuine record replays, through this store's layout, with
			// its MAC verified and removed.
			if resp, body := postKey(t, web.URL, key); resp.StatusCode != http.StatusCreated || body != "genuine" ||
				resp.Header.Get(core.DefaultReplayHeader) != "true" || resp.Header.Get(core.RecordMACHeader) != "" {
				t.Fatalf("retry before forging = %d %q, header %v; want the genuine 201 replayed without its MAC", resp.StatusCode, body, resp.Header)
			}
			skeys := obs.executed()
			if len(skeys) != 2 {
				t.Fatalf("executed %d requests; want 2", len(skeys))
			}
			sql, args := fmt.Sprintf(copyRow, tbl), []any{skeys[0], skeys[1]}
			if r := tc.row; r != nil {
				sql, args = fmt.Sprintf(setRow, tbl), []any{skeys[0], r.status, codec.AppendHeader(nil, r.h), []byte(r.body)}
			}
			tag, err := db.pool.Exec(ctxT(t), sql, args...)
			if err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("forging the row: %v (%d rows)", err, tag.RowsAffected())
			}

			resp, body := postKey(t, web.URL, key)
			wasReplayed := resp.Header.Get(core.DefaultReplayHeader) == "true"
			switch {
			case tc.setCookie && resp.Header.Get("Set-Cookie") != "":
				t.Errorf("retry over a forged row: Set-Cookie %q replayed; want it filtered on replay", resp.Header.Get("Set-Cookie"))
			case !tc.setCookie && wasReplayed:
				t.Errorf("retry over a forged row = %d %q replayed; want it refused (503, or discarded and run again)", resp.StatusCode, body)
			case !tc.setCookie && resp.StatusCode != http.StatusServiceUnavailable && (resp.StatusCode != http.StatusCreated || body != "genuine" || runs.Load() != 3):
				t.Errorf("retry over a forged row = %d %q after %d runs; want 503, or a fresh 201 from the handler", resp.StatusCode, body, runs.Load())
			}
			t.Logf("forged %s: status %d, replayed %v, Set-Cookie %q, handler runs %d", tc.name, resp.StatusCode, wasReplayed, resp.Header.Get("Set-Cookie"), runs.Load())
		})
	}
}

func postKey(t *testing.T, base, key string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/payments", strings.NewReader(`{"amount":1}`))
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
