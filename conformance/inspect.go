package conformance

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
)

// TestInspector checks a store's [core.Inspector] (an optional interface)
// against the stores newStore returns, one per subtest, as [TestStore]
// does: Inspect describes a pending claim and a completed record, Delete
// removes either so that the key can be claimed again, and both report
// [core.ErrNotFound] for an absent key. It fails when a store does not
// implement core.Inspector.
func TestInspector(t *testing.T, newStore NewStoreFunc) {
	t.Helper()
	if newStore == nil {
		t.Fatal("conformance.TestInspector: nil NewStoreFunc")
	}
	runGroups(t, inspectGroups, func(t *testing.T) *storeT {
		st := newStore(t)
		if _, ok := st.(core.Inspector); !ok {
			t.Fatalf("%T does not implement core.Inspector", st)
		}
		return &storeT{T: t, st: st}
	})
}

var inspectGroups = []suiteGroup[*storeT]{
	{"Inspect", []storeCase{
		{"Pending", testInspectPending},
		{"Completed", testInspectCompleted},
		{"Absent", testInspectAbsent},
	}},
	{"Delete", []storeCase{
		{"Pending", testDeletePending},
		{"Completed", testDeleteCompleted},
		{"Absent", testDeleteAbsent},
	}},
}

const (
	ruleInspect    = "Inspect describes the live record of a key (core.Inspector)"
	ruleInspectNF  = "Inspect and Delete of a key without a live record return an error wrapping core.ErrNotFound (core.Inspector)"
	ruleDeleteGone = "Delete removes the record, pending or completed, so the key can be claimed again (core.Inspector)"
)

func (s *storeT) inspect(key string) (core.RecordInfo, error) {
	s.Helper()
	return s.st.(core.Inspector).Inspect(s.ctx(), key)
}

// expectInfo checks what Inspect says of key, the expiry within slack of
// now+ttl when the store reports one.
func (s *storeT) expectInfo(key string, want core.RecordInfo, ttl time.Duration) {
	s.Helper()
	got, err := s.inspect(key)
	if err != nil {
		s.Fatalf("Inspect(key %s) error: %v; want nil: %s", short(key), err, ruleInspect)
	}
	if got.Key != key || got.State != want.State || got.Fingerprint != want.Fingerprint || got.Status != want.Status ||
		got.HeaderBytes != want.HeaderBytes || got.BodyBytes != want.BodyBytes || got.BodyOmitted != want.BodyOmitted {
		s.Errorf("Inspect(key %s) = %+v; want %+v: %s", short(key), got, want, ruleInspect)
	}
	const slack = 5 * time.Second // clocks of the store and this process
	if !got.ExpiresAt.IsZero() {
		if d := time.Until(got.ExpiresAt); d < ttl-slack || d > ttl+slack {
			s.Errorf("Inspect(key %s).ExpiresAt is %v from now; want about %v (the lease or the retention): %s", short(key), d, ttl, ruleInspect)
		}
	}
	if !got.CreatedAt.IsZero() {
		if d := time.Since(got.CreatedAt); d < -slack || d > slack {
			s.Errorf("Inspect(key %s).CreatedAt is %v ago; want about now: %s", short(key), d, ruleInspect)
		}
	}
}

func (s *storeT) expectNotFound(what string, err error) {
	s.Helper()
	if !errors.Is(err, core.ErrNotFound) {
		s.Errorf("%s error: %v; want ErrNotFound: %s", what, err, ruleInspectNF)
	}
}

func testInspectPending(s *storeT) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	s.expectInfo(key, core.RecordInfo{Key: key, State: core.RecordPending, Fingerprint: fp}, longLease)
}

func testInspectCompleted(s *storeT) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	h := http.Header{"Location": {"/r/1"}, "Content-Type": {"application/json"}}
	s.complete(key, tok, &core.Response{Status: http.StatusCreated, Header: h, Body: []byte(`{"id":1}`)}, longTTL)
	s.expectInfo(key, core.RecordInfo{Key: key, State: core.RecordCompleted, Fingerprint: fp, Status: http.StatusCreated,
		HeaderBytes: len(codec.AppendHeader(nil, h)), BodyBytes: len(`{"id":1}`)}, longTTL)

	key, fp, tok = s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	s.complete(key, tok, &core.Response{Status: http.StatusOK, Header: http.Header{}, Body: []byte{}, BodyOmitted: true}, longTTL)
	s.expectInfo(key, core.RecordInfo{Key: key, State: core.RecordCompleted, Fingerprint: fp, Status: http.StatusOK,
		HeaderBytes: len(codec.AppendHeader(nil, http.Header{})), BodyOmitted: true}, longTTL)
}

func testInspectAbsent(s *storeT) {
	key := s.newKey()
	_, err := s.inspect(key)
	s.expectNotFound("Inspect(key "+short(key)+") of a key never claimed", err)
	// A released claim is absent too.
	fp, tok := s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	if err := s.st.Release(s.ctx(), key, tok); err != nil {
		s.Fatalf("Release: %v", err)
	}
	_, err = s.inspect(key)
	s.expectNotFound("Inspect(key "+short(key)+") of a released claim", err)
}

func (s *storeT) deleteAndReclaim(key string) {
	s.Helper()
	if err := s.st.(core.Inspector).Delete(s.ctx(), key); err != nil {
		s.Fatalf("Delete(key %s) error: %v; want nil: %s", short(key), err, ruleDeleteGone)
	}
	_, err := s.inspect(key)
	s.expectNotFound("Inspect(key "+short(key)+") after Delete", err)
	s.expect(core.ClaimAcquired, ruleDeleteGone, key, s.newFingerprint(), s.newToken(), longLease)
}

func testDeletePending(s *storeT) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	s.deleteAndReclaim(key)
	s.expectLeaseLost(key, tok, "the holder of a deleted claim has lost it (core.Inspector)")
}

func testDeleteCompleted(s *storeT) {
	key, _, _ := s.completed("deleted")
	s.deleteAndReclaim(key)
}

func testDeleteAbsent(s *storeT) {
	key := s.newKey()
	s.expectNotFound("Delete(key "+short(key)+") of a key never claimed", s.st.(core.Inspector).Delete(s.ctx(), key))
}
