package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
)

// TestByHelpersReadTheNativeType: ScopeBy, SkipBy and RouteOptionsBy call
// their function with the exchange's native object when it has the type
// the function reads.
func TestByHelpersReadTheNativeType(t *testing.T) {
	e := core.New(newStore(t),
		core.ScopeBy(func(x *fakeExchange) string { return x.header.Get("X-Client") }),
		core.SkipBy(func(x *fakeExchange) bool { return x.path == "/skip" }),
		core.RouteOptionsBy(func(x *fakeExchange) core.RouteOptions {
			if x.path == "/optional" {
				return core.RouteOptions{KeyRequired: core.KeyRequirementOptional}
			}
			return core.RouteOptions{}
		}))
	for _, client := range []string{"a", "b"} {
		x := newFake("shared", "{}", created)
		x.header.Set("X-Client", client)
		e.Serve(x)
		if x.runs != 1 || x.sent == nil || x.sent.Status != http.StatusCreated {
			t.Errorf("client %s, key shared: runs=%d sent=%+v; want the handler run once: ScopeBy keeps clients apart", client, x.runs, x.sent)
		}
	}
	x := newFake("", "{}", created)
	x.path = "/skip"
	e.Serve(x)
	if !x.nexted {
		t.Errorf("SkipBy true: nexted=%v sent=%+v; want passed through", x.nexted, x.sent)
	}
	x = newFake("", "{}", created)
	x.path = "/optional"
	e.Serve(x)
	if !x.nexted {
		t.Errorf("RouteOptionsBy key optional, no key: nexted=%v sent=%+v; want passed through", x.nexted, x.sent)
	}
}

// TestByHelpersRefuseAnotherNativeType: a function that reads another
// type than the exchange's native object (an engine mounted in another
// adapter) refuses the request with 500 misconfigured, reports it with an
// error wrapping ErrNativeType, and runs nothing — before, the adapters'
// helpers returned "" (every client in one key space), false (nothing
// skipped) or the defaults, silently.
func TestByHelpersRefuseAnotherNativeType(t *testing.T) {
	type native struct{ name string }
	cases := []struct {
		name, option string
		opt          core.Option
	}{
		{"scope", "core.ScopeBy", core.ScopeBy(func(r *http.Request) string { return r.Header.Get("X-Client") })},
		{"skip", "core.SkipBy", core.SkipBy(func(*native) bool { return false })},
		{"route", "core.RouteOptionsBy", core.RouteOptionsBy(func(r *http.Request) core.RouteOptions { return core.RouteOptions{} })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, render := range []bool{false, true} {
				rec := &recorder{}
				opts := []core.Option{tc.opt, core.WithObserver(rec)}
				var rendered []core.Problem
				if render {
					opts = append(opts, core.WithProblemRenderer(func(_ core.Exchange, p core.Problem, _ time.Duration) *core.Response {
						rendered = append(rendered, p)
						return &core.Response{Status: 418, Body: []byte(p.Code)}
					}))
				}
				e := core.New(newStore(t), opts...)
				for _, client := range []string{"a", "b"} {
					x := newFake("secret-key-1", `{"card":"4242"}`, created)
					x.header.Set("X-Client", client)
					e.Serve(x)
					if x.runs != 0 || x.nexted || x.sent == nil || x.sent.Status != http.StatusInternalServerError {
						t.Fatalf("render=%v client %s: runs=%d nexted=%v sent=%+v; want 500 and no handler", render, client, x.runs, x.nexted, x.sent)
					}
					if render {
						continue
					}
					var p core.Problem
					if err := json.Unmarshal(x.sent.Body, &p); err != nil || x.sent.Header.Get("Content-Type") != "application/problem+json" {
						t.Fatalf("body %q (%v), Content-Type %q; want problem+json", x.sent.Body, err, x.sent.Header.Get("Content-Type"))
					}
					if p.Code != core.CodeMisconfigured || p.Status != 500 {
						t.Errorf("problem %+v; want code %q, status 500", p, core.CodeMisconfigured)
					}
					for _, want := range []string{tc.option, "*core_test.fakeExchange"} {
						if !strings.Contains(p.Detail, want) {
							t.Errorf("detail %q; want it to name %q", p.Detail, want)
						}
					}
					for _, leak := range []string{"secret-key-1", "4242"} {
						if strings.Contains(p.Detail, leak) {
							t.Errorf("detail %q echoes %q; want no key or body", p.Detail, leak)
						}
					}
				}
				if render && (len(rendered) != 2 || rendered[0].Code != core.CodeMisconfigured) {
					t.Errorf("renderer saw %+v; want two misconfigured problems", rendered)
				}
				evs := rec.evs
				if len(evs) != 2 || evs[0].Outcome != core.OutcomeMisconfigured || !errors.Is(evs[0].Err, core.ErrNativeType) || evs[0].Status != 500 {
					t.Errorf("events %+v; want two %q with status 500 and an error wrapping ErrNativeType", evs, core.OutcomeMisconfigured)
				}
			}
		})
	}
}

// TestByHelpersNilNative: an exchange without a native object (nil) is
// refused too, and the message says so.
func TestByHelpersNilNative(t *testing.T) {
	rec := &recorder{}
	e := core.New(newStore(t), core.WithObserver(rec), core.ScopeBy(func(r *http.Request) string { return "" }))
	x := &nilNative{newFake("k", "{}", created)}
	e.Serve(x)
	if x.runs != 0 || x.sent == nil || x.sent.Status != 500 {
		t.Fatalf("runs=%d sent=%+v; want 500 and no handler", x.runs, x.sent)
	}
	if len(rec.evs) != 1 || !errors.Is(rec.evs[0].Err, core.ErrNativeType) || !strings.Contains(rec.evs[0].Err.Error(), "no native object") {
		t.Errorf("events %+v; want one error wrapping ErrNativeType saying there is no native object", rec.evs)
	}
}

type nilNative struct{ *fakeExchange }

func (nilNative) Native() any { return nil }

// TestByHelpersAndDo: Engine.Do never calls the scope, skip or route
// functions (a Call carries its scope), so an engine built with them
// serves Do calls — the job and gRPC adapters — as it would without.
func TestByHelpersAndDo(t *testing.T) {
	e := core.New(newStore(t),
		core.ScopeBy(func(r *http.Request) string { panic("Do called the scope function") }),
		core.SkipBy(func(r *http.Request) bool { panic("Do called the skip function") }),
		core.RouteOptionsBy(func(r *http.Request) core.RouteOptions { panic("Do called the route function") }))
	runs := 0
	for range 2 {
		out, err := e.Do(t.Context(), core.Call{Key: "k", Scope: "tenant", Name: "job"}, func(context.Context) ([]byte, error) {
			runs++
			return []byte("done"), nil
		})
		if err != nil || string(out) != "done" {
			t.Errorf("Do = %q, %v; want done", out, err)
		}
	}
	if runs != 1 {
		t.Errorf("fn ran %d times; want 1", runs)
	}
}
