package core_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
)

// ttlStore records the retention of every Complete and the remaining one
// memstore reports on a replay.
type ttlStore struct {
	core.Store
	mu        sync.Mutex
	completed []time.Duration
	replayTTL time.Duration
	failFirst bool // the first Complete fails, as a store outage: the retry loop stores it
}

func (s *ttlStore) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	s.mu.Lock()
	s.completed = append(s.completed, ttl)
	fail := s.failFirst && len(s.completed) == 1
	s.mu.Unlock()
	if fail {
		return core.ErrStoreUnavailable
	}
	return s.Store.Complete(ctx, key, token, resp, ttl)
}

func (s *ttlStore) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	c, err := s.Store.Claim(ctx, req)
	if c.Status == core.ClaimReplay {
		s.mu.Lock()
		s.replayTTL = c.TTL
		s.mu.Unlock()
	}
	return c, err
}

func TestSkipPassesThroughUnguarded(t *testing.T) {
	rec := &recorder{}
	var called int
	e := core.New(newStore(t), core.WithObserver(rec), core.WithSkip(func(x core.Exchange) bool {
		called++
		return strings.HasPrefix(x.Path(), "/webhooks/")
	}))
	x := newFake("", "{}", created) // no key: would be refused if guarded
	x.path = "/webhooks/stripe"
	e.Serve(x)
	if !x.nexted || x.sent != nil || x.runs != 0 {
		t.Errorf("skipped request: nexted=%v sent=%v runs=%d; want Next only: a skipped request passes through unguarded", x.nexted, x.sent, x.runs)
	}
	if !rec.has(core.OutcomePassThrough) {
		t.Errorf("skipped request: outcomes %v; want %v", rec.outcomes(), core.OutcomePassThrough)
	}

	x = newFake("", "{}", created)
	e.Serve(x)
	if x.nexted || x.sent == nil || x.sent.Status != http.StatusBadRequest {
		t.Errorf("request not skipped, no key: nexted=%v sent=%+v; want 400: the skip must not leak to other routes", x.nexted, x.sent)
	}

	x = newFake("", "", created)
	x.method = http.MethodGet
	e.Serve(x)
	if !x.nexted || called != 2 {
		t.Errorf("GET: nexted=%v, skip called %d times; want passed through without calling the skip (2 calls in all)", x.nexted, called)
	}
}

func TestRouteTTLReachesTheStore(t *testing.T) {
	for _, tx := range []struct {
		name  string
		path  string
		want  time.Duration
		retry bool
	}{
		{"override", "/short", time.Hour, false},
		{"default", "/long", core.DefaultTTL, false},
		{"override-retried", "/short", time.Hour, true},
	} {
		t.Run(tx.name, func(t *testing.T) {
			s := &ttlStore{Store: newStore(t), failFirst: tx.retry}
			e := core.New(s, core.WithRouteOptions(func(x core.Exchange) core.RouteOptions {
				if x.Path() == "/short" {
					return core.RouteOptions{TTL: time.Hour}
				}
				return core.RouteOptions{}
			}))
			for range 2 {
				x := newFake("k-"+tx.name, "{}", created)
				x.path = tx.path
				e.Serve(x)
				if x.sent == nil || x.sent.Status != http.StatusCreated {
					t.Fatalf("POST %s: sent %+v; want 201", tx.path, x.sent)
				}
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			n := 1
			if tx.retry {
				n = 2
			}
			if len(s.completed) != n || s.completed[0] != tx.want || s.completed[n-1] != tx.want {
				t.Errorf("Complete TTLs %v; want %d × %v: the route's TTL must reach the store, retries included", s.completed, n, tx.want)
			}
			if s.replayTTL <= 0 || s.replayTTL > tx.want || s.replayTTL < tx.want-time.Minute {
				t.Errorf("replayed record's remaining TTL %v; want about %v", s.replayTTL, tx.want)
			}
		})
	}
}

func TestRouteKeyRequired(t *testing.T) {
	for _, tc := range []struct {
		name      string
		engine    bool // WithKeyRequired
		route     core.KeyRequirement
		wantGuard bool // refused with 400 (true) or passed through (false)
	}{
		{"default/required", true, core.KeyRequirementDefault, true},
		{"default/optional", false, core.KeyRequirementDefault, false},
		{"optional-over-required", true, core.KeyRequirementOptional, false},
		{"required-over-optional", false, core.KeyRequirementRequired, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := core.New(newStore(t), core.WithKeyRequired(tc.engine), core.WithRouteOptions(func(core.Exchange) core.RouteOptions {
				return core.RouteOptions{KeyRequired: tc.route}
			}))
			x := newFake("", "{}", created)
			e.Serve(x)
			refused := x.sent != nil && x.sent.Status == http.StatusBadRequest
			if refused != tc.wantGuard || x.nexted == tc.wantGuard {
				t.Errorf("no key, engine required=%v, route %v: sent=%+v nexted=%v; want refused=%v", tc.engine, tc.route, x.sent, x.nexted, tc.wantGuard)
			}
		})
	}
}

// failingStore answers every Claim with an error (503).
type failingStore struct{ core.Store }

func (failingStore) Claim(context.Context, core.ClaimRequest) (core.Claim, error) {
	return core.Claim{}, errors.New("down")
}

// busyStore answers every Claim with in flight, 3s left.
type busyStore struct{ core.Store }

func (busyStore) Claim(context.Context, core.ClaimRequest) (core.Claim, error) {
	return core.Claim{Status: core.ClaimInFlight, RetryAfter: 3 * time.Second}, nil
}

func TestProblemRenderer(t *testing.T) {
	type seen struct {
		p          core.Problem
		retryAfter time.Duration
	}
	var got []seen
	render := func(x core.Exchange, p core.Problem, retryAfter time.Duration) *core.Response {
		got = append(got, seen{p, retryAfter})
		if p.Code == core.CodeInvalidBody {
			return nil // falls back to problem+json
		}
		h := http.Header{"Content-Type": {"application/json"}}
		if p.Code == core.CodeInFlight {
			h["Cache-Control"] = []string{"max-age=60"} // replaced: refusals are never cached
		}
		return &core.Response{Status: 418, Header: h, Body: []byte(`{"error":"` + p.Code + `"}`)}
	}
	tests := []struct {
		name       string
		store      func(t *testing.T) core.Store
		opts       []core.Option
		key, body  string
		twice      string // a first request's body, for the mismatch
		code       string
		status     int
		retryAfter string
	}{
		{"missing-key", nil, nil, "", "{}", "", core.CodeMissingKey, 400, ""},
		{"invalid-key", nil, nil, "bad\x01key", "{}", "", core.CodeInvalidKey, 400, ""},
		{"body-too-large", nil, []core.Option{core.WithMaxBodyBytes(1)}, "k", "{}", "", core.CodeBodyTooLarge, 413, ""},
		{"mismatch", nil, nil, "k", `{"a":2}`, `{"a":1}`, core.CodeFingerprintMismatch, 422, ""},
		{"in-flight", func(t *testing.T) core.Store { return busyStore{newStore(t)} }, nil, "k", "{}", "", core.CodeInFlight, 409, "3"},
		{"store-unavailable", func(t *testing.T) core.Store { return failingStore{newStore(t)} }, []core.Option{core.WithRetryAfter(2 * time.Second)}, "k", "{}", "", core.CodeStoreUnavailable, 503, "2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			var s core.Store
			if tc.store != nil {
				s = tc.store(t)
			} else {
				s = newStore(t)
			}
			e := core.New(s, append(tc.opts, core.WithProblemRenderer(render))...)
			if tc.twice != "" {
				e.Serve(newFake(tc.key, tc.twice, created))
			}
			x := newFake(tc.key, tc.body, created)
			x.header.Set(core.KeyHeader, tc.key)
			if tc.key == "" {
				x.header.Del(core.KeyHeader)
			}
			e.Serve(x)
			if x.sent == nil {
				t.Fatal("nothing sent")
			}
			if string(x.sent.Body) != `{"error":"`+tc.code+`"}` {
				t.Errorf("body %q; want the renderer's for %s", x.sent.Body, tc.code)
			}
			if x.sent.Status != tc.status {
				t.Errorf("status %d; want %d: the renderer chooses the body, not the status", x.sent.Status, tc.status)
			}
			h := x.sent.Header.Clone()
			for k, v := range x.sent.Extra {
				h[k] = v
			}
			if h.Get("Cache-Control") != "no-store" || h.Get("Retry-After") != tc.retryAfter || h.Get("Content-Type") != "application/json" {
				t.Errorf("header %v; want the renderer's Content-Type, Cache-Control: no-store and Retry-After %q", h, tc.retryAfter)
			}
			if len(got) != 1 || got[0].p.Code != tc.code || got[0].p.Status != tc.status || got[0].p.Type == "" || got[0].p.Detail == "" {
				t.Errorf("renderer saw %+v; want one problem %s/%d with type and detail", got, tc.code, tc.status)
			}
		})
	}

	t.Run("nil-falls-back", func(t *testing.T) {
		e := core.New(newStore(t), core.WithProblemRenderer(render))
		x := &readerExchange{fakeExchange: newFake("k", "", created), r: &failingReader{err: errors.New("reset")}, n: -1}
		e.Serve(x)
		if code := problemCode(t, x.sent); code != core.CodeInvalidBody || x.sent.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("renderer answered nil: sent %+v; want the default problem+json %s", x.sent, core.CodeInvalidBody)
		}
	})
}

func TestProblemRendererNotUsedByDo(t *testing.T) {
	called := false
	e := core.New(busyStore{newStore(t)}, core.WithProblemRenderer(func(core.Exchange, core.Problem, time.Duration) *core.Response {
		called = true
		return &core.Response{Body: []byte("rendered")}
	}))
	_, err := e.Do(context.Background(), core.Call{Key: "k", Name: "job"}, func(context.Context) ([]byte, error) { return nil, nil })
	var ife *core.InFlightError
	if !errors.As(err, &ife) || ife.RetryAfter != 3*time.Second || called {
		t.Errorf("Do on a key in flight: err %v, renderer called %v; want an *InFlightError with RetryAfter 3s, no rendering", err, called)
	}
}
