package core_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
)

// mustPanic calls f and returns what it panicked with ("" if it did not).
func mustPanic(f func()) (msg string) {
	defer func() {
		if p := recover(); p != nil {
			msg = fmt.Sprint(p)
		}
	}()
	f()
	return ""
}

// TestNewRefusesInvalidOptions: core.New panics on each invalid option
// value with a message naming the option and the value (memstore's
// model), and accepts the valid edge values.
func TestNewRefusesInvalidOptions(t *testing.T) {
	bad := []struct {
		opt  core.Option
		want string
	}{
		{core.WithTTL(0), "WithTTL(0s)"},
		{core.WithTTL(-time.Second), "WithTTL(-1s)"},
		{core.WithLease(0), "WithLease(0s)"},
		{core.WithMaxKeyLength(0), "WithMaxKeyLength(0)"},
		{core.WithMaxBodyBytes(-1), "WithMaxBodyBytes(-1)"},
		{core.WithMaxResponseBytes(-1), "WithMaxResponseBytes(-1)"},
		{core.WithFingerprint(nil), "WithFingerprint(nil)"},
		{core.WithCompletionPolicy(nil), "WithCompletionPolicy(nil)"},
		{core.WithHeaderFilter(nil), "WithHeaderFilter(nil)"},
		{core.WithWaitForInFlight(-time.Second), "WithWaitForInFlight(-1s)"},
		{core.WithStoreTimeout(-time.Second), "WithStoreTimeout(-1s)"},
		{core.WithRetryAfter(0), "WithRetryAfter(0s)"},
		{core.WithCompleteWait(-time.Second), "WithCompleteWait(-1s)"},
		{core.WithMethods(), "WithMethods()"},
		{core.WithMethods("POST", ""), `WithMethods(["POST" ""])`},
		{core.WithReplayHeader(""), `WithReplayHeader("")`},
		{core.WithReplayHeader("Bad Header"), `WithReplayHeader("Bad Header")`},
		{core.WithHeaderScope(""), `WithHeaderScope("")`},
		{core.WithHMACSecret(nil), "WithHMACSecret(empty secret)"},
		{core.ScopeBy[*http.Request](nil), "ScopeBy(nil)"},
		{core.SkipBy[*http.Request](nil), "SkipBy(nil)"},
		{core.RouteOptionsBy[*http.Request](nil), "RouteOptionsBy(nil)"},
		{core.WithTransactions(true), "WithTransactions(true)"},
	}
	for _, tc := range bad {
		t.Run(tc.want, func(t *testing.T) {
			msg := mustPanic(func() { core.New(newStore(t), tc.opt) })
			if !strings.HasPrefix(msg, "core: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("New(%s) panicked with %q; want a message naming %q", tc.want, msg, tc.want)
			}
		})
	}
	if msg := mustPanic(func() { core.New(newStore(t), core.WithHMACSecret([]byte{})) }); strings.Contains(msg, "[]") || msg == "" {
		t.Errorf("New(WithHMACSecret([]byte{})) panicked with %q; want a panic that prints no secret", msg)
	}

	good := []core.Option{
		core.WithTTL(time.Nanosecond), core.WithLease(time.Nanosecond), core.WithMaxKeyLength(1),
		core.WithMaxBodyBytes(0), core.WithMaxResponseBytes(0), core.WithWaitForInFlight(0),
		core.WithStoreTimeout(0), core.WithRetryAfter(time.Nanosecond), core.WithCompleteWait(0),
		core.WithMethods("post"), core.WithReplayHeader("x-replayed"), core.WithHeaderScope("X-Tenant"),
		core.WithHMACSecret([]byte{0}), core.WithKeyScope(nil), core.WithSkip(nil), core.WithRouteOptions(nil),
		core.WithObserver(nil), core.WithProblemRenderer(nil), core.WithProblemTypeBase(""),
		core.WithUnauthenticatedRecordsUntil(time.Time{}), core.WithTransactions(false),
	}
	for i, o := range good {
		if msg := mustPanic(func() { core.New(newStore(t), o) }); msg != "" {
			t.Errorf("valid option #%d panicked: %s", i, msg)
		}
	}
}
