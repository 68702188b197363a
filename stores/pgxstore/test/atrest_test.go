package pgxstore

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/core"
)

// TestRawKeysAbsentAtRest serves requests in every state a record can be
// left in — completed, pending (a handler still running), released (a
// 5xx), refused (a mismatch) — under raw keys and scopes that are easy to
// find, with and without an HMAC secret, then reads every row of the
// test's table in full (as text, bytea columns in hex): no raw key, no
// scope and no request body appears, as text or as hex (docs/contract.md C-SCOPE-1:
// stores never see raw keys).
func TestRawKeysAbsentAtRest(t *testing.T) {
	for _, secret := range []string{"", "at-rest-secret"} {
		name := "SHA256"
		if secret != "" {
			name = "HMAC"
		}
		t.Run(name, func(t *testing.T) {
			db := newTestDB(t, 4)
			opts := []core.Option{core.WithHeaderScope("X-Api-Key")}
			if secret != "" {
				opts = append(opts, core.WithHMACSecret([]byte(secret)))
			}
			secrets := runAtRest(t, core.New(db.store(), opts...))
			rows, err := db.pool.Query(ctxT(t), "SELECT t::text FROM "+db.table()+" t")
			if err != nil {
				t.Fatalf("reading the table: %v", err)
			}
			defer rows.Close()
			seen, response := 0, false
			for rows.Next() {
				var row string
				if err := rows.Scan(&row); err != nil {
					t.Fatalf("reading a row: %v", err)
				}
				seen++
				lower := strings.ToLower(row)
				response = response || strings.Contains(lower, hex.EncodeToString([]byte("stored response")))
				for _, s := range secrets {
					if strings.Contains(row, s) || strings.Contains(lower, hex.EncodeToString([]byte(s))) {
						t.Errorf("a row holds %q: a raw key, scope or request body at rest: %.300s", s, row)
					}
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("reading the table: %v", err)
			}
			if seen < 2 || !response {
				t.Fatalf("found %d rows, the stored response in none: %v; want the records of the run, read in full", seen, response)
			}
			t.Logf("%d rows read: no raw key, scope or request body", seen)
		})
	}
}

// runAtRest serves, through idemhttp, one request in each state a record
// can be left in, and returns the strings that must not be found at rest.
// The held request's handler ends at cleanup, after the caller's scan.
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
	srv := httptest.NewServer(idemhttp.Middleware(engine)(app))
	t.Cleanup(srv.Close)
	tag := randHex(6)
	scope := "SCOPE-tenant-" + tag
	body := "BODY-card-" + tag
	post := func(key, query, body string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/payments"+query, strings.NewReader(body))
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
	completed, pending, released := "RAWKEY-completed-"+tag, "RAWKEY-pending-"+tag, "RAWKEY-released-"+tag
	held := make(chan int, 1)
	go func() { held <- post(pending, "?hold=1", body) }()
	t.Cleanup(func() { close(hold); <-held })
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatalf("the held request never ran")
	}
	for _, c := range []struct {
		key, query, body string
		want             int
	}{
		{completed, "", body, http.StatusCreated},
		{completed, "", body + "-other", http.StatusUnprocessableEntity},
		{released, "?fail=1", body, http.StatusInternalServerError},
		{pending, "?hold=1", body, http.StatusConflict},
	} {
		if got := post(c.key, c.query, c.body); got != c.want {
			t.Errorf("POST %s%s: status %d; want %d", c.key, c.query, got, c.want)
		}
	}
	return []string{scope, body, completed, pending, released}
}
