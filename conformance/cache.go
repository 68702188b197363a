package conformance

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
)

// NewCacheFunc returns the cache one subtest of [TestCache] runs against,
// under the same rules as [NewStoreFunc].
type NewCacheFunc func(t *testing.T) core.Cache

// TestCache runs the cache conformance suite against the caches newCache
// returns, one per subtest, grouped and named like [TestStore]'s
// (TestMyCache/Lookup/Mismatch). It checks the sentences of [core.Cache]:
// lookups of absent, matching and mismatching records, replacement,
// retention, exact bytes, no aliasing, torn writes under concurrent Puts,
// context handling, and, when the cache is also a [core.Store], that Put
// leaves a pending claim alone.
func TestCache(t *testing.T, newCache NewCacheFunc) {
	t.Helper()
	if newCache == nil {
		t.Fatal("conformance.TestCache: nil NewCacheFunc")
	}
	runGroups(t, cacheGroups, func(t *testing.T) *cacheT {
		ca := newCache(t)
		if ca == nil {
			t.Fatal("NewCacheFunc returned a nil cache")
		}
		return &cacheT{storeT: &storeT{T: t}, ca: ca}
	})
}

type cacheCase = suiteCase[*cacheT]

var cacheGroups = []suiteGroup[*cacheT]{
	{"Lookup", []cacheCase{
		{"Absent", testCacheAbsent},
		{"Replay", testCacheReplay},
		{"Mismatch", testCacheMismatch},
	}},
	{"Put", []cacheCase{
		{"Replaces", testCachePutReplaces},
		{"LeavesPendingClaim", testCachePutLeavesPendingClaim},
		{"NoAliasing", testCacheNoAliasing},
	}},
	{"TTL", []cacheCase{
		{"Expires", testCacheExpires},
	}},
	{"Body", []cacheCase{
		{"Binary", testCacheBinary},
		{"EmptyNoHeader", testCacheEmpty},
	}},
	{"Concurrency", []cacheCase{
		{"NoTornRecords", testCacheNoTornRecords},
	}},
	{"Context", []cacheCase{
		{"Cancelled", testCacheCancelled},
	}},
}

const (
	ruleCacheAbsent   = "a key without a live completed record looks up as a miss, the zero Cached (Cache.Lookup)"
	ruleCacheOneOf    = "a lookup is a hit (a response), a mismatch or a miss, never a response and a mismatch at once (core.Cached)"
	ruleCacheReplay   = "a record Put under fp looks up under fp as a replay of the same bytes (Cache.Lookup)"
	ruleCacheMismatch = "a record Put under another fingerprint looks up as a mismatch (Cache.Lookup)"
	ruleCachePending  = "Put never replaces a pending claim (Cache.Put)"
)

// cacheT is one subtest's view of the cache under test; it borrows
// storeT's helpers for keys, fingerprints and contexts.
type cacheT struct {
	*storeT
	ca core.Cache
}

func lookupCall(key string, fp core.Fingerprint) string {
	return fmt.Sprintf("Lookup(key %s, fp %x…)", short(key), fp[:4])
}

func (c *cacheT) lookup(key string, fp core.Fingerprint) core.Cached {
	c.Helper()
	cl, err := c.ca.Lookup(c.ctx(), key, fp)
	if err != nil {
		c.Fatalf("%s error: %v; want nil", lookupCall(key, fp), err)
	}
	if cl.Response != nil && cl.Mismatch {
		c.Fatalf("%s = %s: %s", lookupCall(key, fp), describeCached(cl), ruleCacheOneOf)
	}
	return cl
}

// describeCached names a lookup's answer for failure messages.
func describeCached(cl core.Cached) string {
	switch {
	case cl.Response != nil && cl.Mismatch:
		return "a response and a mismatch"
	case cl.Response != nil:
		return "a hit"
	case cl.Mismatch:
		return "a mismatch"
	}
	return "a miss"
}

func (c *cacheT) put(key string, fp core.Fingerprint, resp *core.Response, ttl time.Duration) {
	c.Helper()
	if err := c.ca.Put(c.ctx(), key, fp, resp, ttl); err != nil {
		c.Fatalf("Put(key %s) error: %v; want nil", short(key), err)
	}
}

func (c *cacheT) expectAbsent(key string, fp core.Fingerprint, rule string) {
	c.Helper()
	if cl := c.lookup(key, fp); cl != (core.Cached{}) {
		c.Errorf("%s = %s; want a miss: %s", lookupCall(key, fp), describeCached(cl), rule)
	}
}

func (c *cacheT) expectReplay(key string, fp core.Fingerprint, want *core.Response, rule string) {
	c.Helper()
	cl := c.lookup(key, fp)
	if cl.Response == nil {
		c.Errorf("%s = %s; want a hit: %s", lookupCall(key, fp), describeCached(cl), rule)
		return
	}
	if d := diffResponse(cl.Response, want); d != "" {
		c.Errorf("%s replayed a different response: %s: %s", lookupCall(key, fp), d, rule)
	}
}

func (c *cacheT) expectMismatch(key string, fp core.Fingerprint) {
	c.Helper()
	if cl := c.lookup(key, fp); !cl.Mismatch || cl.Response != nil {
		c.Errorf("%s = %s; want a mismatch: %s", lookupCall(key, fp), describeCached(cl), ruleCacheMismatch)
	}
}

func testCacheAbsent(c *cacheT) {
	c.expectAbsent(c.newKey(), c.newFingerprint(), ruleCacheAbsent)
}

func testCacheReplay(c *cacheT) {
	key, fp := c.newKey(), c.newFingerprint()
	want := sampleResponse("cached")
	c.put(key, fp, cloneResponse(want), longTTL)
	c.expectReplay(key, fp, want, ruleCacheReplay)
	c.expectReplay(key, fp, want, ruleCacheReplay+": every lookup")
}

func testCacheMismatch(c *cacheT) {
	key, fp := c.newKey(), c.newFingerprint()
	c.put(key, fp, sampleResponse("cached"), longTTL)
	c.expectMismatch(key, c.newFingerprint())
}

func testCachePutReplaces(c *cacheT) {
	key, fp1, fp2 := c.newKey(), c.newFingerprint(), c.newFingerprint()
	c.put(key, fp1, sampleResponse("first"), longTTL)
	want := sampleResponse("second")
	c.put(key, fp2, cloneResponse(want), longTTL)
	c.expectReplay(key, fp2, want, "Put replaces a completed record (Cache.Put)")
	c.expectMismatch(key, fp1)
}

func testCachePutLeavesPendingClaim(c *cacheT) {
	st, ok := c.ca.(core.Store)
	if !ok {
		// Nothing to check, and nothing was asserted: say so instead of
		// passing silently.
		c.Skip("the cache is not also a core.Store: it holds no pending claims")
	}
	c.st = st
	key, fp, tok := c.newKey(), c.newFingerprint(), c.newToken()
	c.storeT.expect(core.ClaimAcquired, ruleAcquire, key, fp, tok, longLease)
	c.put(key, fp, sampleResponse("cache"), longTTL)
	c.expectAbsent(key, fp, ruleCacheAbsent+": a pending claim is not a completed record")
	c.storeT.expect(core.ClaimInFlight, ruleCachePending, key, fp, c.newToken(), longLease)
	want := sampleResponse("holder")
	c.complete(key, tok, want, longTTL)
	c.expectReplay(key, fp, want, ruleCachePending+": the holder's Complete stands")
}

func testCacheNoAliasing(c *cacheT) {
	key, fp := c.newKey(), c.newFingerprint()
	resp := &core.Response{Status: http.StatusOK, Header: http.Header{"X-A": {"1", "2"}}, Body: []byte("original")}
	want := cloneResponse(resp)
	c.put(key, fp, resp, longTTL)
	if d := diffResponse(resp, want); d != "" || len(resp.Header) != 1 || resp.Extra != nil {
		c.Errorf("Put modified the response it was given: %s %v: %s", d, resp.Header, ruleBytes)
	}
	c.expectReplay(key, fp, want, ruleBytes+": the response handed to Put comes back as it was")
}

func testCacheExpires(c *cacheT) {
	key, fp := c.newKey(), c.newFingerprint()
	want := sampleResponse("short")
	c.put(key, fp, cloneResponse(want), checkedTTL)
	c.expectReplay(key, fp, want, ruleCacheReplay)
	time.Sleep(pastChecked)
	c.expectAbsent(key, fp, "a record past its TTL counts as absent (Cache.Put)")
}

func testCacheBinary(c *cacheT) {
	key, fp := c.newKey(), c.newFingerprint()
	want := &core.Response{
		Status: http.StatusAccepted,
		Header: http.Header{"Set-Cookie": {"a=1", "b=2", ""}, "X-Bin": {"\x01\xff"}},
		Body:   binaryBody(70_000, time.Now().UnixNano()),
	}
	c.put(key, fp, cloneResponse(want), longTTL)
	c.expectReplay(key, fp, want, ruleBytes)
}

func testCacheEmpty(c *cacheT) {
	key, fp := c.newKey(), c.newFingerprint()
	c.put(key, fp, &core.Response{Status: http.StatusNoContent}, longTTL)
	cl := c.lookup(key, fp)
	if cl.Response == nil {
		c.Fatalf("%s = %s; want a hit: %s", lookupCall(key, fp), describeCached(cl), ruleCacheReplay)
	}
	if r := cl.Response; r.Status != http.StatusNoContent || len(r.Body) != 0 || len(r.Header) != 0 {
		c.Errorf("%s = status %d, %d body bytes, header %v; want 204, empty, none: %s", lookupCall(key, fp), r.Status, len(r.Body), r.Header, ruleBytes)
	}
}

// testCacheNoTornRecords races Puts of two records under two fingerprints
// with lookups: every lookup sees nothing, one whole record or the other.
func testCacheNoTornRecords(c *cacheT) {
	key := c.newKey()
	fps := [2]core.Fingerprint{c.newFingerprint(), c.newFingerprint()}
	want := [2]*core.Response{
		{Status: 201, Header: http.Header{"X-Which": {"a"}}, Body: binaryBody(4096, 1)},
		{Status: 202, Header: http.Header{"X-Which": {"b", "b"}}, Body: binaryBody(9000, 2)},
	}
	ctx := c.ctx()
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Go(func() {
			i := g % 2
			for range 25 {
				if err := c.ca.Put(ctx, key, fps[i], cloneResponse(want[i]), longTTL); err != nil {
					errs <- fmt.Sprintf("Put: %v", err)
					return
				}
				cl, err := c.ca.Lookup(ctx, key, fps[i])
				if err != nil {
					errs <- fmt.Sprintf("%s: %v", lookupCall(key, fps[i]), err)
					return
				}
				switch {
				case cl.Response != nil && cl.Mismatch:
					errs <- fmt.Sprintf("%s = %s: %s", lookupCall(key, fps[i]), describeCached(cl), ruleCacheOneOf)
					return
				case cl.Response != nil:
					if d := diffResponse(cl.Response, want[i]); d != "" {
						errs <- fmt.Sprintf("%s replayed a torn or foreign record: %s", lookupCall(key, fps[i]), d)
						return
					}
				case cl.Mismatch:
				default:
					errs <- fmt.Sprintf("%s = %s after Puts; want a hit or a mismatch", lookupCall(key, fps[i]), describeCached(cl))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		c.Errorf("%s: %s", e, ruleBytes)
	}
}

func testCacheCancelled(c *cacheT) {
	ctx, cancel := context.WithCancel(c.Context())
	cancel()
	key, fp := c.newKey(), c.newFingerprint()
	if err := c.ca.Put(ctx, key, fp, sampleResponse("never"), longTTL); !errors.Is(err, core.ErrStoreUnavailable) {
		c.Errorf("Put with a cancelled context = %v; want an error wrapping core.ErrStoreUnavailable: %s", err, ruleContext)
	}
	if _, err := c.ca.Lookup(ctx, key, fp); !errors.Is(err, core.ErrStoreUnavailable) {
		c.Errorf("%s with a cancelled context = %v; want an error wrapping core.ErrStoreUnavailable: %s", lookupCall(key, fp), err, ruleContext)
	}
	c.expectAbsent(key, fp, "a Put that failed on its context must not leave a record")
}
