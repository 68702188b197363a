package memstore_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// TestDiscard checks that Discard deletes the very completed record whose
// response a Claim returned, and nothing else: not an equal copy of its
// response, not a record of another fingerprint, not a pending claim, not
// a record that replaced it.
func TestDiscard(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	discard := func(key string, fp byte, resp *core.Response) {
		t.Helper()
		if err := st.Discard(bg, core.DiscardRequest{Key: key, Fingerprint: core.Fingerprint{fp}, Response: resp, Reason: core.ErrCorruptRecord}); err != nil {
			t.Fatalf("Discard(%q): %v", key, err)
		}
	}

	claim(t, st, "done", 1, "a", time.Minute)
	complete(t, st, "done", "a", "body", time.Hour)
	c := claim(t, st, "done", 1, "b", time.Minute)
	wantStatus(t, c, core.ClaimReplay, "Claim of a completed record")
	copied := *c.Response
	discard("done", 1, &copied)
	discard("done", 2, c.Response)
	discard("done", 1, nil)
	wantStatus(t, claim(t, st, "done", 1, "c", time.Minute), core.ClaimReplay, "Claim after discarding a copy, another fingerprint, no response")

	// A record that replaced the one found is kept.
	if err := st.Put(bg, "done", core.Fingerprint{1}, &core.Response{Status: 200, Header: http.Header{}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	discard("done", 1, c.Response)
	wantStatus(t, claim(t, st, "done", 1, "d", time.Minute), core.ClaimReplay, "Claim after discarding a record that was replaced")

	c = claim(t, st, "done", 1, "e", time.Minute)
	discard("done", 1, c.Response)
	wantStatus(t, claim(t, st, "done", 1, "f", time.Minute), core.ClaimAcquired, "Claim after discarding the record found")

	// A pending claim is never discarded.
	claim(t, st, "pending", 1, "a", time.Minute)
	discard("pending", 1, nil)
	discard("pending", 1, c.Response)
	wantStatus(t, claim(t, st, "pending", 1, "b", time.Minute), core.ClaimInFlight, "Claim of a pending key after Discard")

	var _ core.Discarder = (*memstore.Store)(nil)
}
