package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
)

// Durations of the suite. Short leases and TTLs keep the wall time low; the
// margins absorb scheduling noise under -race and network round trips.
const (
	shortLease = 200 * time.Millisecond // a lease or TTL that a subtest lets lapse, never checking it live
	pastShort  = 350 * time.Millisecond // sleep that outlasts shortLease
	// checkedTTL is a TTL that a subtest checks live at once, then lets
	// lapse: long enough for the check on a slow machine.
	checkedTTL  = time.Second
	pastChecked = checkedTTL + 200*time.Millisecond // sleep that outlasts checkedTTL
	longLease   = 30 * time.Second                  // a lease no subtest outlives
	longTTL     = time.Hour                         // a retention no subtest outlives
	callTimeout = 10 * time.Second                  // bound on any one store call
)

// TestStore runs the store conformance suite against the stores newStore
// returns, one per subtest. Subtests are grouped and named for -run: under a
// caller's test TestMyStore they are, for example,
// TestMyStore/Claim/MismatchInFlight and TestMyStore/Fencing/.... The
// subtests of a group run in parallel, the groups one after another, and
// TestStore returns when all are done.
//
// The suite checks the sentences of [core.Store]: claim outcomes, leases
// and their renewal, fencing by token, retention, exact bytes, atomicity
// under concurrent claims, and context handling. It sleeps through leases
// and TTLs of a few hundred milliseconds, so a store must honour durations
// to the millisecond, judged by its own clock. Every key, token and
// fingerprint is random, so newStore may return a shared store.
func TestStore(t *testing.T, newStore NewStoreFunc) {
	t.Helper()
	if newStore == nil {
		t.Fatal("conformance.TestStore: nil NewStoreFunc")
	}
	runGroups(t, storeGroups, func(t *testing.T) *storeT {
		st := newStore(t)
		if st == nil {
			t.Fatal("NewStoreFunc returned a nil store")
		}
		return &storeT{T: t, st: st}
	})
}

// suiteGroup is a group of a suite's subtests, each run with the view C
// of the implementation under test.
type suiteGroup[C any] struct {
	name  string
	cases []suiteCase[C]
}

type suiteCase[C any] struct {
	name string
	run  func(c C)
}

// runGroups runs the groups one after another and the cases of a group in
// parallel, each with the view newCase builds for its subtest.
func runGroups[C any](t *testing.T, groups []suiteGroup[C], newCase func(t *testing.T) C) {
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(newCase(t))
				})
			}
		})
	}
}

type storeCase = suiteCase[*storeT]

var storeGroups = []suiteGroup[*storeT]{
	{"Claim", []storeCase{
		{"Acquire", testClaimAcquire},
		{"DistinctKeys", testClaimDistinctKeys},
		{"ReplayAfterComplete", testClaimReplayAfterComplete},
		{"MismatchCompleted", testClaimMismatchCompleted},
		{"MismatchInFlight", testClaimMismatchInFlight},
		{"InFlightRetryAfter", testClaimInFlightRetryAfter},
		{"ResentToken", testClaimResentToken},
		{"Scoped", testClaimScoped},
	}},
	{"Release", []storeCase{
		{"ThenReclaim", testReleaseThenReclaim},
	}},
	{"Lease", []storeCase{
		{"ExpiryAllowsTakeover", testLeaseExpiryAllowsTakeover},
		{"RenewExtends", testLeaseRenewExtends},
		{"LapsedTokenRejected", testLeaseLapsedTokenRejected},
	}},
	{"Fencing", []storeCase{
		{"StaleCompleteRejected", testFencingStaleCompleteRejected},
		{"CompleteRetried", testFencingCompleteRetried},
		{"WrongToken", testFencingWrongToken},
		{"UnknownKey", testFencingUnknownKey},
	}},
	{"TTL", []storeCase{
		{"CompletedExpires", testTTLCompletedExpires},
	}},
	{"Body", []storeCase{
		{"Binary", testBodyBinary},
		{"NUL", testBodyNUL},
		{"InvalidUTF8", testBodyInvalidUTF8},
		{"Empty", testBodyEmpty},
		{"Large", testBodyLarge},
		{"Omitted", testBodyOmitted},
		{"NoAliasing", testBodyNoAliasing},
	}},
	{"Header", []storeCase{
		{"MultiValueRoundTrip", testHeaderMultiValueRoundTrip},
		{"Nil", testHeaderNil},
	}},
	{"Concurrency", []storeCase{
		{"SameKey64", testConcurrencySameKey64},
		{"SameKeyMixedPayloads", testConcurrencySameKeyMixedPayloads},
		{"ManyKeys", testConcurrencyManyKeys},
	}},
	{"Context", []storeCase{
		{"Cancelled", testContextCancelled},
		{"Deadline", testContextDeadline},
	}},
}

// Rules quoted in failure messages.
const (
	ruleAcquire    = "an absent key must be claimable (Store.Claim)"
	ruleInFlight   = "a second claim on a key whose lease is live must not succeed (docs/contract.md C-ONCE-1: exactly one holder)"
	ruleReplay     = "a completed key with the same fingerprint must replay its response (Store.Claim)"
	ruleMismatch   = "a live record with another fingerprint must be a mismatch, reported before in-flight (Store.Claim)"
	ruleLease      = "a key whose lease lapsed must be claimable (docs/contract.md C-LEASE-1: lease)"
	ruleRenew      = "Renew extends the lease to the given duration from now (Store.Renew)"
	ruleLapsed     = "an expired record counts as absent everywhere, so its token holds nothing (docs/contract.md C-CLOCK-1)"
	ruleFencing    = "Complete, Release and Renew are compare-and-set on the fencing token (docs/contract.md C-LEASE-1: fencing)"
	ruleTTL        = "a completed record past its TTL counts as absent (docs/contract.md C-CLOCK-1)"
	ruleBytes      = "stored bytes come back exactly (docs/contract.md C-STATE-3: replay byte for byte)"
	ruleExactlyOne = "exactly one of any number of concurrent claims may acquire a key (Store.Claim)"
	ruleContext    = "every method must honour its context's cancellation and deadline (Store)"

	ruleResent          = "a claim re-sent with the holder's own token is the same claim: acquired again, never in flight (Store.Claim)"
	ruleCompleteRetried = "completing is idempotent for its holder: a Complete retried with the same token succeeds (Store.Complete)"
)

// storeT is one subtest's view of the store under test.
type storeT struct {
	*testing.T
	st core.Store
}

func (s *storeT) newKey() string       { return randHex(s.T, 32) }
func (s *storeT) newToken() core.Token { return core.Token(randHex(s.T, 16)) }
func (s *storeT) newFingerprint() (fp core.Fingerprint) {
	if _, err := rand.Read(fp[:]); err != nil {
		s.Fatalf("crypto/rand: %v", err)
	}
	return fp
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("crypto/rand: %v", err)
	}
	return hex.EncodeToString(b)
}

func (s *storeT) ctx() context.Context {
	ctx, cancel := context.WithTimeout(s.Context(), callTimeout)
	s.Cleanup(cancel)
	return ctx
}

func short(s string) string {
	if len(s) > 8 {
		return s[:8] + "…"
	}
	return s
}

func claimCall(key string, fp core.Fingerprint, tok core.Token, lease time.Duration) string {
	return fmt.Sprintf("Claim(key %s, fp %x…, token %s, lease %v)", short(key), fp[:4], short(string(tok)), lease)
}

func tokCall(name, key string, tok core.Token) string {
	return fmt.Sprintf("%s(key %s, token %s)", name, short(key), short(string(tok)))
}

// claim calls Claim and stops the subtest on an error: later steps depend
// on its outcome.
func (s *storeT) claim(key string, fp core.Fingerprint, tok core.Token, lease time.Duration) core.Claim {
	s.Helper()
	c, err := s.st.Claim(s.ctx(), core.ClaimRequest{Key: key, Fingerprint: fp, Token: tok, Lease: lease})
	if err != nil {
		s.Fatalf("%s error: %v; want nil", claimCall(key, fp, tok, lease), err)
	}
	return c
}

// expect claims key and checks the outcome.
func (s *storeT) expect(want core.ClaimStatus, rule string, key string, fp core.Fingerprint, tok core.Token, lease time.Duration) core.Claim {
	s.Helper()
	c := s.claim(key, fp, tok, lease)
	if c.Status != want {
		s.Errorf("%s = %v; want %v: %s", claimCall(key, fp, tok, lease), c.Status, want, rule)
	}
	return c
}

// expectReplay claims key and checks that it replays want.
func (s *storeT) expectReplay(key string, fp core.Fingerprint, want *core.Response, rule string) {
	s.Helper()
	tok := s.newToken()
	c := s.claim(key, fp, tok, longLease)
	call := claimCall(key, fp, tok, longLease)
	if c.Status != core.ClaimReplay {
		s.Errorf("%s = %v; want replay: %s", call, c.Status, ruleReplay)
		return
	}
	if d := diffResponse(c.Response, want); d != "" {
		s.Errorf("%s replayed a different response: %s: %s", call, d, rule)
	}
}

func (s *storeT) complete(key string, tok core.Token, resp *core.Response, ttl time.Duration) {
	s.Helper()
	if err := s.st.Complete(s.ctx(), key, tok, resp, ttl); err != nil {
		s.Fatalf("%s error: %v; want nil: the holder of a live lease may complete it", tokCall("Complete", key, tok), err)
	}
}

// expectLeaseLost checks that Complete, Release and Renew with tok all
// report ErrLeaseLost.
func (s *storeT) expectLeaseLost(key string, tok core.Token, rule string) {
	s.Helper()
	ctx := s.ctx()
	resp := &core.Response{Status: 299, Body: []byte("must not be stored")}
	calls := []struct {
		name string
		err  error
	}{
		{"Renew", s.st.Renew(ctx, key, tok, longLease)},
		{"Complete", s.st.Complete(ctx, key, tok, resp, longTTL)},
		{"Release", s.st.Release(ctx, key, tok)},
	}
	for _, c := range calls {
		if !errors.Is(c.err, core.ErrLeaseLost) {
			s.Errorf("%s = %v; want an error wrapping core.ErrLeaseLost: %s", tokCall(c.name, key, tok), c.err, rule)
		}
	}
}

func sampleResponse(body string) *core.Response {
	return &core.Response{
		Status: http.StatusCreated,
		Header: http.Header{"Content-Type": {"application/json"}, "Location": {"/payments/" + body}},
		Body:   []byte(`{"id":"` + body + `"}`),
	}
}

// roundTrip stores resp under a fresh key and checks that it replays as want.
func (s *storeT) roundTrip(resp, want *core.Response, rule string) {
	s.Helper()
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	s.complete(key, tok, resp, longTTL)
	s.expectReplay(key, fp, want, rule)
}

func cloneResponse(r *core.Response) *core.Response {
	return &core.Response{Status: r.Status, Header: r.Header.Clone(), Body: bytes.Clone(r.Body), BodyOmitted: r.BodyOmitted}
}

// diffResponse describes how got differs from want, or returns "". A nil
// and an empty body are equal, as are a nil and an empty header.
func diffResponse(got, want *core.Response) string {
	if got == nil {
		return "Response = nil"
	}
	var d []string
	if got.Status != want.Status {
		d = append(d, fmt.Sprintf("Status = %d; want %d", got.Status, want.Status))
	}
	if got.BodyOmitted != want.BodyOmitted {
		d = append(d, fmt.Sprintf("BodyOmitted = %v; want %v", got.BodyOmitted, want.BodyOmitted))
	}
	if !bytes.Equal(got.Body, want.Body) {
		i := 0
		for i < len(got.Body) && i < len(want.Body) && got.Body[i] == want.Body[i] {
			i++
		}
		d = append(d, fmt.Sprintf("Body = %d bytes %s; want %d bytes %s (first difference at byte %d)",
			len(got.Body), preview(got.Body), len(want.Body), preview(want.Body), i))
	}
	names := make(map[string]bool)
	for n := range got.Header {
		names[n] = true
	}
	for n := range want.Header {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		g, gok := got.Header[n]
		w, wok := want.Header[n]
		switch {
		case !gok:
			d = append(d, fmt.Sprintf("Header[%q] missing; want %q", n, w))
		case !wok:
			d = append(d, fmt.Sprintf("Header[%q] = %q; want no such field", n, g))
		case !slices.Equal(g, w):
			d = append(d, fmt.Sprintf("Header[%q] = %q; want %q", n, g, w))
		}
	}
	return strings.Join(d, "; ")
}

func preview(b []byte) string {
	if len(b) > 24 {
		return fmt.Sprintf("%q…", b[:24])
	}
	return fmt.Sprintf("%q", b)
}

// Claim

func testClaimAcquire(s *storeT) {
	key, fp := s.newKey(), s.newFingerprint()
	c := s.expect(core.ClaimAcquired, ruleAcquire, key, fp, s.newToken(), longLease)
	if c.Response != nil {
		s.Errorf("Claim of an absent key returned Response %+v; want nil: only a replay carries a response", c.Response)
	}
	s.expect(core.ClaimInFlight, ruleInFlight, key, fp, s.newToken(), longLease)
}

func testClaimDistinctKeys(s *storeT) {
	fp := s.newFingerprint()
	k1, k2 := s.newKey(), s.newKey()
	s.expect(core.ClaimAcquired, ruleAcquire, k1, fp, s.newToken(), longLease)
	s.expect(core.ClaimAcquired, "a claim on one key must not affect another key", k2, fp, s.newToken(), longLease)
}

func testClaimReplayAfterComplete(s *storeT) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	resp := sampleResponse("pay_1")
	s.complete(key, tok, resp, longTTL)
	s.expectReplay(key, fp, resp, ruleReplay)
	s.expectReplay(key, fp, resp, "a replay must not change the record: every retry gets the same response")
	if c := s.claim(key, fp, s.newToken(), longLease); c.TTL < 0 || c.TTL > longTTL {
		s.Errorf("replay reports TTL %v after Complete with ttl %v; want zero (unknown) or the remaining retention, within (0, %v]: Claim.TTL", c.TTL, longTTL, longTTL)
	}
}

func testClaimMismatchCompleted(s *storeT) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	resp := sampleResponse("pay_2")
	s.complete(key, tok, resp, longTTL)
	s.expect(core.ClaimMismatch, ruleMismatch, key, s.newFingerprint(), s.newToken(), longLease)
	s.expectReplay(key, fp, resp, "a mismatched claim must not change the record")
}

func testClaimMismatchInFlight(s *storeT) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	s.expect(core.ClaimMismatch, ruleMismatch, key, s.newFingerprint(), s.newToken(), longLease)
	s.expect(core.ClaimInFlight, "a mismatched claim must not change the record", key, fp, s.newToken(), longLease)
	resp := sampleResponse("pay_3")
	s.complete(key, tok, resp, longTTL)
	s.expectReplay(key, fp, resp, ruleReplay)
}

func testClaimInFlightRetryAfter(s *storeT) {
	key, fp := s.newKey(), s.newFingerprint()
	const lease = 10 * time.Second
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, s.newToken(), lease)
	tok := s.newToken()
	c := s.expect(core.ClaimInFlight, ruleInFlight, key, fp, tok, lease)
	if c.RetryAfter <= 0 || c.RetryAfter > lease {
		s.Errorf("%s: RetryAfter = %v; want in (0, %v]: an in-flight claim reports the holder's remaining lease",
			claimCall(key, fp, tok, lease), c.RetryAfter, lease)
	}
}

func testClaimResentToken(s *storeT) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, shortLease)
	// The same claim again, as a client library re-sends a command that
	// timed out, this time with a long lease.
	s.expect(core.ClaimAcquired, ruleResent, key, fp, tok, longLease)
	s.expect(core.ClaimInFlight, ruleInFlight+": a re-sent claim is still the only holder", key, fp, s.newToken(), longLease)
	time.Sleep(pastShort)
	s.expect(core.ClaimInFlight, ruleResent+": the re-sent claim extends the lease to its own", key, fp, s.newToken(), longLease)
	resp := sampleResponse("resent")
	s.complete(key, tok, resp, longTTL)
	s.expectReplay(key, fp, resp, ruleReplay)
}

// Release

func testReleaseThenReclaim(s *storeT) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	if err := s.st.Release(s.ctx(), key, tok); err != nil {
		s.Fatalf("%s = %v; want nil: the holder may release its claim", tokCall("Release", key, tok), err)
	}
	if err := s.st.Release(s.ctx(), key, tok); !errors.Is(err, core.ErrLeaseLost) {
		s.Errorf("second %s = %v; want an error wrapping core.ErrLeaseLost: a released claim is gone", tokCall("Release", key, tok), err)
	}
	fp2 := s.newFingerprint()
	s.expect(core.ClaimAcquired, "a released key must be claimable at once, with any payload (Store.Release)",
		key, fp2, s.newToken(), longLease)
	s.expect(core.ClaimInFlight, ruleInFlight, key, fp2, s.newToken(), longLease)
	s.expect(core.ClaimMismatch, ruleMismatch, key, fp, s.newToken(), longLease)
}

// Lease

func testLeaseExpiryAllowsTakeover(s *storeT) {
	same, other, fp := s.newKey(), s.newKey(), s.newFingerprint()
	start := time.Now()
	s.expect(core.ClaimAcquired, ruleAcquire, same, fp, s.newToken(), shortLease)
	s.expect(core.ClaimAcquired, ruleAcquire, other, fp, s.newToken(), shortLease)
	if time.Since(start) < shortLease/4 {
		// Still live: checked only well inside the short lease, so that a
		// slow machine skips the check instead of failing it (Claim/InFlight
		// checks live claims under a long lease).
		s.expect(core.ClaimInFlight, ruleInFlight, same, fp, s.newToken(), longLease)
	}
	time.Sleep(pastShort)
	tok := s.newToken()
	s.expect(core.ClaimAcquired, ruleLease, same, fp, tok, longLease)
	s.expect(core.ClaimAcquired, ruleLease+", whatever its payload", other, s.newFingerprint(), s.newToken(), longLease)
	s.expect(core.ClaimInFlight, "the taker holds a fresh lease", same, fp, s.newToken(), longLease)
}

func testLeaseRenewExtends(s *storeT) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	// The claim's lease is long enough that the renewal lands while it is
	// live, even on a slow machine, and the renewed one long enough to be
	// live when the original has run out; only the original is waited for.
	const original, renewed = time.Second, 4 * time.Second
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, original)
	if err := s.st.Renew(s.ctx(), key, tok, renewed); err != nil {
		s.Fatalf("%s = %v; want nil: the holder of a live lease may renew it", tokCall("Renew", key, tok), err)
	}
	time.Sleep(original + pastShort - shortLease)
	probe := s.newToken()
	c := s.expect(core.ClaimInFlight, ruleRenew+": the original lease has run out, the renewed one has not",
		key, fp, probe, longLease)
	if c.Status == core.ClaimInFlight && (c.RetryAfter <= original || c.RetryAfter > renewed) {
		s.Errorf("%s: RetryAfter = %v; want in (%v, %v]: %s", claimCall(key, fp, probe, longLease),
			c.RetryAfter, original, renewed, ruleRenew)
	}
	resp := sampleResponse("renewed")
	s.complete(key, tok, resp, longTTL)
	s.expectReplay(key, fp, resp, ruleReplay)
}

func testLeaseLapsedTokenRejected(s *storeT) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, shortLease)
	time.Sleep(pastShort)
	s.expectLeaseLost(key, tok, ruleLapsed)
	s.expect(core.ClaimAcquired, ruleLapsed+": a Complete with a lapsed token must not store a response", key, fp, s.newToken(), longLease)
}

// Fencing

func testFencingStaleCompleteRejected(s *storeT) {
	key, fp, stale := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, stale, shortLease)
	time.Sleep(pastShort)
	holder := s.newToken()
	s.expect(core.ClaimAcquired, ruleLease, key, fp, holder, longLease)
	s.expectLeaseLost(key, stale, ruleFencing+": a holder whose lease was taken over owns nothing")
	s.expect(core.ClaimInFlight, ruleFencing+": the new holder's claim must survive the stale calls", key, fp, s.newToken(), longLease)
	resp := sampleResponse("holder")
	s.complete(key, holder, resp, longTTL)
	s.expectReplay(key, fp, resp, ruleFencing)
}

func testFencingCompleteRetried(s *storeT) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	resp := sampleResponse("first")
	s.complete(key, tok, resp, longTTL)
	// The same Complete again, as a holder retries it after losing the reply.
	if err := s.st.Complete(s.ctx(), key, tok, cloneResponse(resp), longTTL); err != nil {
		s.Errorf("second %s = %v; want nil: %s", tokCall("Complete", key, tok), err, ruleCompleteRetried)
	}
	s.expectReplay(key, fp, resp, "the first completion must stand")
	ctx := s.ctx()
	if err := s.st.Renew(ctx, key, tok, longLease); !errors.Is(err, core.ErrLeaseLost) {
		s.Errorf("%s after Complete = %v; want an error wrapping core.ErrLeaseLost: a completed record holds no lease", tokCall("Renew", key, tok), err)
	}
	if err := s.st.Release(ctx, key, tok); !errors.Is(err, core.ErrLeaseLost) {
		s.Errorf("%s after Complete = %v; want an error wrapping core.ErrLeaseLost: a completed record is never released", tokCall("Release", key, tok), err)
	}
	other := s.newToken()
	if err := s.st.Complete(ctx, key, other, sampleResponse("other"), longTTL); !errors.Is(err, core.ErrLeaseLost) {
		s.Errorf("%s on a record completed with another token = %v; want an error wrapping core.ErrLeaseLost: %s", tokCall("Complete", key, other), err, ruleFencing)
	}
	s.expectReplay(key, fp, resp, "the first completion must stand")
}

func testFencingWrongToken(s *storeT) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	s.expectLeaseLost(key, s.newToken(), ruleFencing)
	s.expect(core.ClaimInFlight, ruleFencing+": calls with another token must leave the claim intact", key, fp, s.newToken(), longLease)
	resp := sampleResponse("right")
	s.complete(key, tok, resp, longTTL)
	s.expectReplay(key, fp, resp, ruleReplay)
}

func testFencingUnknownKey(s *storeT) {
	key := s.newKey()
	s.expectLeaseLost(key, s.newToken(), ruleFencing+": a key never claimed is held by no token")
	s.expect(core.ClaimAcquired, "Complete on an unknown key must not create a record", key, s.newFingerprint(), s.newToken(), longLease)
}

// TTL

func testTTLCompletedExpires(s *storeT) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	resp := sampleResponse("short")
	s.complete(key, tok, resp, checkedTTL)
	s.expectReplay(key, fp, resp, ruleReplay)
	time.Sleep(pastChecked)
	s.expect(core.ClaimAcquired, ruleTTL+", whatever its payload", key, s.newFingerprint(), s.newToken(), longLease)
}

// Body

func bodyResponse(body []byte) *core.Response {
	return &core.Response{Status: http.StatusOK, Header: http.Header{"Content-Type": {"application/octet-stream"}}, Body: body}
}

func testBodyBinary(s *storeT) {
	body := make([]byte, 512)
	for i := range body {
		body[i] = byte(i)
	}
	s.roundTrip(bodyResponse(body), bodyResponse(bytes.Clone(body)), ruleBytes+": every byte value")
}

func testBodyNUL(s *storeT) {
	for _, body := range []string{"\x00", "\x00\x00\x00", "a\x00b\x00", "{\"x\":1}\x00trailing"} {
		s.roundTrip(bodyResponse([]byte(body)), bodyResponse([]byte(body)), ruleBytes+": NUL bytes are data, not terminators")
	}
}

func testBodyInvalidUTF8(s *storeT) {
	body := []byte("\xff\xfe\xc3\x28 \xed\xa0\x80 \xf0\x28\x8c\xbc caf\xe9")
	s.roundTrip(bodyResponse(body), bodyResponse(bytes.Clone(body)), ruleBytes+": bodies are bytes, not text")
}

func testBodyEmpty(s *storeT) {
	for _, body := range [][]byte{nil, {}} {
		resp := &core.Response{Status: http.StatusNoContent, Header: http.Header{"X-Empty": {"yes"}}, Body: body}
		s.roundTrip(resp, cloneResponse(resp), ruleBytes+": an empty body comes back empty")
	}
}

func testBodyLarge(s *storeT) {
	body := make([]byte, 1<<20)
	if _, err := rand.Read(body); err != nil {
		s.Fatalf("crypto/rand: %v", err)
	}
	s.roundTrip(bodyResponse(body), bodyResponse(bytes.Clone(body)), ruleBytes+": a 1 MiB body")
}

func testBodyOmitted(s *storeT) {
	omitted := &core.Response{Status: http.StatusCreated, Header: http.Header{"Location": {"/big"}}, BodyOmitted: true}
	s.roundTrip(omitted, cloneResponse(omitted), ruleBytes+": BodyOmitted is part of the record")
	kept := &core.Response{Status: http.StatusCreated, Header: http.Header{"Location": {"/small"}}}
	s.roundTrip(kept, cloneResponse(kept), ruleBytes+": BodyOmitted is part of the record")
}

func testBodyNoAliasing(s *storeT) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	s.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	resp := &core.Response{Status: http.StatusOK, Header: http.Header{"X-A": {"1", "2"}}, Body: []byte("original")}
	want := cloneResponse(resp)
	s.complete(key, tok, resp, longTTL)
	// The caller sends resp after Complete, and a store may keep it (the
	// caller hands it over): the store must neither modify it nor return
	// something else for it.
	if d := diffResponse(resp, want); d != "" || len(resp.Header) != 1 || resp.Extra != nil {
		s.Errorf("Complete modified the response it was given: %s %v: %s", d, resp.Header, ruleBytes)
	}
	s.expectReplay(key, fp, want, ruleBytes+": the response handed to Complete comes back as it was")
	s.expectReplay(key, fp, want, ruleBytes+": every replay returns the stored response")
}

// Header

func testHeaderMultiValueRoundTrip(s *storeT) {
	h := http.Header{
		"Vary":            {"Accept", "Accept-Encoding", "Origin"},
		"Link":            {"</a>; rel=next", "</b>; rel=prev"},
		"X-Order":         {"3", "1", "2", "1"},
		"X-Empty-Value":   {""},
		"X-Padded":        {"  padded value  "},
		"X-Comma":         {"a, b, c"},
		"X-Quoted":        {`"q\"uoted", 'single'`},
		"X-Latin1":        {"caf\xe9"},
		"X-Utf8":          {"café ☕"},
		"X-Separators":    {"a=b; c:d / e\\f"},
		"X-Long":          {strings.Repeat("v", 8192)},
		"X-Under_Score":   {"kept"},
		"x-not-canonical": {"name kept as stored"},
		"Location":        {"/payments/1?x=1&y=%20"},
	}
	resp := &core.Response{Status: 299, Header: h, Body: []byte("ok")}
	s.roundTrip(resp, cloneResponse(resp), ruleBytes+": every field, every value, in order (docs/contract.md C-REPLAY-1)")
}

func testHeaderNil(s *storeT) {
	resp := &core.Response{Status: http.StatusAccepted, Body: []byte("no header")}
	s.roundTrip(resp, cloneResponse(resp), ruleBytes+": a response without headers comes back without headers")
}

// Concurrency

type claimResult struct {
	fp    core.Fingerprint
	token core.Token
	claim core.Claim
	err   error
}

// race runs Claim on key from one goroutine per fingerprint in fps, all
// released at once, and collects the results.
func (s *storeT) race(key string, fps []core.Fingerprint) []claimResult {
	start := make(chan struct{})
	results := make(chan claimResult, len(fps))
	var ready sync.WaitGroup
	ctx := s.ctx()
	for _, fp := range fps {
		tok := s.newToken()
		ready.Add(1)
		go func() {
			ready.Done()
			<-start
			c, err := s.st.Claim(ctx, core.ClaimRequest{Key: key, Fingerprint: fp, Token: tok, Lease: longLease})
			results <- claimResult{fp, tok, c, err}
		}()
	}
	ready.Wait()
	close(start)
	out := make([]claimResult, 0, len(fps))
	for range fps {
		out = append(out, <-results)
	}
	return out
}

func testConcurrencySameKey64(s *storeT) {
	key, fp := s.newKey(), s.newFingerprint()
	fps := make([]core.Fingerprint, 64)
	for i := range fps {
		fps[i] = fp
	}
	var winners []claimResult
	counts := make(map[core.ClaimStatus]int)
	for _, r := range s.race(key, fps) {
		if r.err != nil {
			s.Errorf("%s error: %v; want nil", claimCall(key, r.fp, r.token, longLease), r.err)
			continue
		}
		counts[r.claim.Status]++
		if r.claim.Status == core.ClaimAcquired {
			winners = append(winners, r)
		}
	}
	if len(winners) != 1 || counts[core.ClaimInFlight] != 63 {
		s.Fatalf("64 concurrent Claims of one key: %d acquired, %d in-flight, %d other; want 1 acquired, 63 in-flight: %s",
			len(winners), counts[core.ClaimInFlight], 64-len(winners)-counts[core.ClaimInFlight], ruleExactlyOne)
	}
	resp := sampleResponse("race")
	s.complete(key, winners[0].token, resp, longTTL)
	s.expectReplay(key, fp, resp, ruleReplay)
}

func testConcurrencySameKeyMixedPayloads(s *storeT) {
	key, fpA, fpB := s.newKey(), s.newFingerprint(), s.newFingerprint()
	fps := make([]core.Fingerprint, 64)
	for i := range fps {
		fps[i] = fpA
		if i%2 == 1 {
			fps[i] = fpB
		}
	}
	results := s.race(key, fps)
	var winner *claimResult
	for i, r := range results {
		if r.err == nil && r.claim.Status == core.ClaimAcquired {
			if winner != nil {
				s.Fatalf("two concurrent Claims acquired one key (tokens %s and %s): %s",
					short(string(winner.token)), short(string(r.token)), ruleExactlyOne)
			}
			winner = &results[i]
		}
	}
	if winner == nil {
		s.Fatalf("64 concurrent Claims of one key: none acquired; want exactly one: %s", ruleExactlyOne)
	}
	for _, r := range results {
		want := core.ClaimInFlight
		if r.fp != winner.fp {
			want = core.ClaimMismatch
		}
		switch {
		case r.err != nil:
			s.Errorf("%s error: %v; want nil", claimCall(key, r.fp, r.token, longLease), r.err)
		case r.token != winner.token && r.claim.Status != want:
			s.Errorf("%s = %v; want %v: %s", claimCall(key, r.fp, r.token, longLease), r.claim.Status, want, ruleMismatch)
		}
	}
}

func testConcurrencyManyKeys(s *storeT) {
	const n = 500
	type job struct {
		key string
		fp  core.Fingerprint
		tok core.Token
	}
	jobs := make([]job, n)
	for i := range jobs {
		jobs[i] = job{s.newKey(), s.newFingerprint(), s.newToken()}
	}
	start := make(chan struct{})
	problems := make(chan string, n)
	ctx := s.ctx()
	for _, j := range jobs {
		go func() {
			<-start
			problems <- s.claimCompleteReplay(ctx, j.key, j.fp, j.tok)
		}()
	}
	close(start)
	failed := 0
	for range jobs {
		if p := <-problems; p != "" {
			failed++
			if failed <= 5 {
				s.Error(p)
			}
		}
	}
	if failed > 5 {
		s.Errorf("… and %d more of %d keys failed", failed-5, n)
	}
}

// claimCompleteReplay runs one key's life and returns a description of
// what went wrong, or "". It runs on its own goroutine, so it reports
// instead of asserting.
func (s *storeT) claimCompleteReplay(ctx context.Context, key string, fp core.Fingerprint, tok core.Token) string {
	c, err := s.st.Claim(ctx, core.ClaimRequest{Key: key, Fingerprint: fp, Token: tok, Lease: longLease})
	if err != nil || c.Status != core.ClaimAcquired {
		return fmt.Sprintf("%s = %v, %v; want acquired, nil: %s", claimCall(key, fp, tok, longLease), c.Status, err, ruleAcquire)
	}
	resp := &core.Response{Status: http.StatusCreated, Header: http.Header{"X-Key": {key}}, Body: []byte(key)}
	if err := s.st.Complete(ctx, key, tok, resp, longTTL); err != nil {
		return fmt.Sprintf("%s = %v; want nil", tokCall("Complete", key, tok), err)
	}
	tok2 := core.Token(string(tok) + "-replay")
	c, err = s.st.Claim(ctx, core.ClaimRequest{Key: key, Fingerprint: fp, Token: tok2, Lease: longLease})
	if err != nil || c.Status != core.ClaimReplay {
		return fmt.Sprintf("%s = %v, %v; want replay, nil: %s", claimCall(key, fp, tok2, longLease), c.Status, err, ruleReplay)
	}
	if d := diffResponse(c.Response, resp); d != "" {
		return fmt.Sprintf("%s replayed another key's or a damaged response: %s: %s", claimCall(key, fp, tok2, longLease), d, ruleBytes)
	}
	return ""
}

// Context

func testContextCancelled(s *storeT) {
	ctx, cancel := context.WithCancel(s.Context())
	cancel()
	s.deadContext(ctx, "an already-cancelled context")
}

func testContextDeadline(s *storeT) {
	ctx, cancel := context.WithDeadline(s.Context(), time.Now().Add(-time.Second))
	defer cancel()
	s.deadContext(ctx, "a context past its deadline")
}

// deadContext checks that every method refuses ctx with an error and
// leaves the records as they were.
func (s *storeT) deadContext(ctx context.Context, what string) {
	key, fp, tok := s.newKey(), s.newFingerprint(), s.newToken()
	c, err := s.st.Claim(ctx, core.ClaimRequest{Key: key, Fingerprint: fp, Token: tok, Lease: longLease})
	if err == nil {
		s.Errorf("%s with %s = %v, nil; want an error: %s", claimCall(key, fp, tok, longLease), what, c.Status, ruleContext)
	}
	s.expect(core.ClaimAcquired, "a Claim that failed on its context must not leave a record", key, fp, tok, longLease)

	resp := &core.Response{Status: http.StatusOK, Body: []byte("must not be stored")}
	calls := []struct {
		name string
		err  error
	}{
		{"Renew", s.st.Renew(ctx, key, tok, longLease)},
		{"Complete", s.st.Complete(ctx, key, tok, resp, longTTL)},
		{"Release", s.st.Release(ctx, key, tok)},
	}
	for _, c := range calls {
		if c.err == nil {
			s.Errorf("%s with %s = nil; want an error: %s", tokCall(c.name, key, tok), what, ruleContext)
		}
	}
	s.expect(core.ClaimInFlight, "calls that failed on their context must leave the claim as it was", key, fp, s.newToken(), longLease)
	want := sampleResponse("live")
	s.complete(key, tok, want, longTTL)
	s.expectReplay(key, fp, want, ruleReplay)
}
