package conformance

import (
	"net/http"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
)

// TestDiscarder checks a store's [core.Discarder] (an optional interface)
// against the stores newStore returns, one per subtest, as [TestStore]
// does: Discard deletes the completed record whose response Claim
// returned, and keeps every other record — another response, another
// fingerprint, a pending claim, a record that replaced the one found. It
// fails when a store does not implement core.Discarder. What a store
// reports corrupt by itself (Discard without a response) depends on its
// layout: each store tests that with records written by hand.
func TestDiscarder(t *testing.T, newStore NewStoreFunc) {
	t.Helper()
	if newStore == nil {
		t.Fatal("conformance.TestDiscarder: nil NewStoreFunc")
	}
	runGroups(t, discardGroups, func(t *testing.T) *storeT {
		st := newStore(t)
		if _, ok := st.(core.Discarder); !ok {
			t.Fatalf("%T does not implement core.Discarder", st)
		}
		return &storeT{T: t, st: st}
	})
}

var discardGroups = []suiteGroup[*storeT]{
	{"Discard", []storeCase{
		{"FoundRecord", testDiscardFoundRecord},
		{"OtherResponse", testDiscardOtherResponse},
		{"OtherFingerprint", testDiscardOtherFingerprint},
		{"PendingClaim", testDiscardPendingClaim},
		{"ReplacedRecord", testDiscardReplacedRecord},
		{"AbsentKey", testDiscardAbsentKey},
	}},
}

const (
	ruleDiscardFound = "Discard deletes the completed record whose response Claim returned, so the key can be claimed again (core.Discarder)"
	ruleDiscardKeeps = "Discard deletes only the record the engine found unusable: never another response, another fingerprint, a pending claim or a record that replaced it (core.Discarder)"
)

func (s *storeT) discard(key string, fp core.Fingerprint, resp *core.Response) {
	s.Helper()
	err := s.st.(core.Discarder).Discard(s.ctx(), core.DiscardRequest{Key: key, Fingerprint: fp, Response: resp, Reason: core.ErrCorruptRecord})
	if err != nil {
		s.Errorf("Discard(key %s, response %v) error: %v; want nil: deleting nothing is not an error (core.Discarder)", short(key), resp != nil, err)
	}
}

// completed stores a completed record of a new key and returns the key,
// its fingerprint and the response a claim replays from it.
func (s *storeT) completed(body string) (string, core.Fingerprint, *core.Response) {
	s.Helper()
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	s.complete(key, tok, &core.Response{Status: http.StatusCreated, Header: http.Header{"Location": {"/r/" + body}}, Body: []byte(body)}, longTTL)
	c := s.expect(core.ClaimReplay, ruleReplay, key, fp, s.newToken(), longLease)
	if c.Response == nil {
		s.Fatalf("a replay without a response")
	}
	return key, fp, c.Response
}

func testDiscardFoundRecord(s *storeT) {
	key, fp, resp := s.completed("found")
	s.discard(key, fp, resp)
	s.expect(core.ClaimAcquired, ruleDiscardFound, key, fp, s.newToken(), longLease)
}

func testDiscardOtherResponse(s *storeT) {
	key, fp, resp := s.completed("kept")
	other := *resp
	other.Body = []byte("other")
	s.discard(key, fp, &other)
	s.discard(key, fp, nil) // the store reads the record well
	s.expect(core.ClaimReplay, ruleDiscardKeeps, key, fp, s.newToken(), longLease)
}

func testDiscardOtherFingerprint(s *storeT) {
	key, fp, resp := s.completed("kept")
	s.discard(key, s.newFingerprint(), resp)
	s.expect(core.ClaimReplay, ruleDiscardKeeps, key, fp, s.newToken(), longLease)
}

func testDiscardPendingClaim(s *storeT) {
	key, fp := s.newKey(), s.newFingerprint()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, s.newToken(), longLease)
	s.discard(key, fp, nil)
	s.discard(key, fp, &core.Response{Status: http.StatusOK, Header: http.Header{}, Body: []byte{}})
	s.expect(core.ClaimInFlight, ruleDiscardKeeps, key, fp, s.newToken(), longLease)
}

func testDiscardReplacedRecord(s *storeT) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	s.complete(key, tok, &core.Response{Status: http.StatusCreated, Header: http.Header{}, Body: []byte("first")}, checkedTTL)
	found := s.expect(core.ClaimReplay, ruleReplay, key, fp, s.newToken(), longLease)
	time.Sleep(pastChecked)
	tok = s.newToken()
	s.expect(core.ClaimAcquired, ruleTTL, key, fp, tok, longLease)
	s.complete(key, tok, &core.Response{Status: http.StatusCreated, Header: http.Header{}, Body: []byte("second")}, longTTL)
	if found.Response != nil {
		s.discard(key, fp, found.Response)
	}
	s.expect(core.ClaimReplay, ruleDiscardKeeps, key, fp, s.newToken(), longLease)
}

func testDiscardAbsentKey(s *storeT) {
	key, fp := s.newKey(), s.newFingerprint()
	s.discard(key, fp, nil)
	s.discard(key, fp, &core.Response{Status: http.StatusOK, Header: http.Header{}, Body: []byte{}})
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, s.newToken(), longLease)
}
