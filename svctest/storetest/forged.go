package storetest

import (
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/idemkit/idemkit/core"
)

// Forgery is one way to forge a completed record, as anyone able to write
// to the store's server could.
type Forgery struct {
	Name string
	// Secret: the engine runs under an HMAC secret, so a record without a
	// valid MAC must be refused.
	Secret bool
	// SetCookie: the forged record carries Set-Cookie, and a replay (of
	// its other fields) is allowed as long as it is filtered out.
	SetCookie bool
	// Response is written over the record; nil: another key's record of
	// the same payload is copied over it.
	Response *core.Response
}

// ForgedHarness is what [TestForged] needs of one store.
type ForgedHarness struct {
	// Noun names a record of the store in failure messages ("record",
	// "row").
	Noun string
	// Parallel runs the subtests in parallel.
	Parallel bool
	// Open returns the store for one subtest and forge, which overwrites
	// the completed record of storage key key with f.Response, or with the
	// completed record of storage key other when f.Response is nil.
	Open func(t *testing.T) (store core.Store, forge func(t *testing.T, f Forgery, key, other string))
}

// TestForged runs each forgery in a subtest: two keys of the same payload
// complete through idemhttp, the first replays genuine (its MAC verified
// and removed), then its record is forged and the retry must not replay
// it: a 503, or the record discarded and the handler run again, or (for a
// SetCookie forgery) a replay without Set-Cookie.
func TestForged(t *testing.T, h ForgedHarness, forgeries []Forgery) {
	t.Helper()
	for _, tc := range forgeries {
		t.Run(tc.Name, func(t *testing.T) {
			if h.Parallel {
				t.Parallel()
			}
			var opts []core.Option
			if tc.Secret {
				opts = append(opts, core.WithHMACSecret([]byte("forged-test secret")))
			}
			obs := &KeyLog{}
			store, forge := h.Open(t)
			var runs atomic.Int64
			base := NewHTTPServer(t, core.New(store, append(opts, core.WithObserver(obs))...), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				runs.Add(1)
				w.WriteHeader(http.StatusCreated)
				io.WriteString(w, "genuine")
			}))
			const payload = `{"amount":1}`
			key, otherKey := "k-"+RandHex(t, 8), "k-"+RandHex(t, 8)
			for _, k := range []string{key, otherKey} {
				if resp, body := Post(t, base, k, payload); resp.StatusCode != http.StatusCreated {
					t.Fatalf("first POST = %d %s; want 201", resp.StatusCode, body)
				}
			}
			// The genuine record replays, through this store's layout, with
			// its MAC verified and removed.
			if resp, body := Post(t, base, key, payload); resp.StatusCode != http.StatusCreated || body != "genuine" ||
				resp.Header.Get(core.DefaultReplayHeader) != "true" || resp.Header.Get(core.RecordMACHeader) != "" {
				t.Fatalf("retry before forging = %d %q, header %v; want the genuine 201 replayed without its MAC", resp.StatusCode, body, resp.Header)
			}
			skeys := obs.Executed()
			if len(skeys) != 2 {
				t.Fatalf("executed %d requests; want 2", len(skeys))
			}
			forge(t, tc, skeys[0], skeys[1])

			resp, body := Post(t, base, key, payload)
			wasReplayed := resp.Header.Get(core.DefaultReplayHeader) == "true"
			switch {
			case tc.SetCookie && resp.Header.Get("Set-Cookie") != "":
				t.Errorf("retry over a forged %s: Set-Cookie %q replayed; want it filtered on replay", h.Noun, resp.Header.Get("Set-Cookie"))
			case !tc.SetCookie && wasReplayed:
				t.Errorf("retry over a forged %s = %d %q replayed; want it refused (503, or discarded and run again)", h.Noun, resp.StatusCode, body)
			case !tc.SetCookie && resp.StatusCode != http.StatusServiceUnavailable && (resp.StatusCode != http.StatusCreated || body != "genuine" || runs.Load() != 3):
				t.Errorf("retry over a forged %s = %d %q after %d runs; want 503, or a fresh 201 from the handler", h.Noun, resp.StatusCode, body, runs.Load())
			}
			t.Logf("forged %s: status %d, replayed %v, Set-Cookie %q, handler runs %d", tc.Name, resp.StatusCode, wasReplayed, resp.Header.Get("Set-Cookie"), runs.Load())
		})
	}
}
