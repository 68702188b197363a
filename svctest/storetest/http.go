package storetest

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
)

// Post sends body to base+"/payments" under the Idempotency-Key key and
// returns the response with its body read in full.
func Post(t testing.TB, base, key, body string) (*http.Response, string) {
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

// RunAtRest serves, through idemhttp, one request in each state a record
// can be left in — completed, pending (a handler still running), released
// (a 5xx), refused (a mismatch) — under raw keys and a scope (the header
// X-Api-Key, which engine must scope by) that are easy to find, and returns
// the strings that must not be found at rest (docs/contract.md C-SCOPE-1).
// The held request's handler ends at cleanup, after the caller's scan.
func RunAtRest(t *testing.T, engine *core.Engine) []string {
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
		io.WriteString(w, AtRestResponse)
	})
	base := NewHTTPServer(t, engine, app)
	tag := RandHex(t, 6)
	scope := "SCOPE-tenant-" + tag
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

// AtRestResponse is the body of the completed response of [RunAtRest]: a
// scan at rest that finds it shows it read the records in full.
const AtRestResponse = "stored response"
