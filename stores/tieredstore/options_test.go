package tieredstore_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
)

func panicMessage(f func()) (msg string) {
	defer func() {
		if p := recover(); p != nil {
			msg = fmt.Sprint(p)
		}
	}()
	f()
	return ""
}

// TestNewRefusesInvalidOptions: New panics on each invalid value with a
// message naming the option and the value, as memstore does (it used to
// say only "options out of range"); the valid edge values pass.
func TestNewRefusesInvalidOptions(t *testing.T) {
	hot, durable := memstore.New(), memstore.New()
	t.Cleanup(func() { hot.Close(); durable.Close() })
	bad := []struct {
		opt  tieredstore.Option
		want string
	}{
		{tieredstore.WithHotTimeout(0), "WithHotTimeout(0s)"},
		{tieredstore.WithHotTimeout(-time.Second), "WithHotTimeout(-1s)"},
		{tieredstore.WithBreaker(0, time.Second), "WithBreaker(0, 1s)"},
		{tieredstore.WithBreaker(3, 0), "WithBreaker(3, 0s)"},
		{tieredstore.WithWarmTTL(0), "WithWarmTTL(0s)"},
	}
	for _, tc := range bad {
		if msg := panicMessage(func() { tieredstore.New(hot, durable, tc.opt) }); !strings.HasPrefix(msg, "tieredstore: ") || !strings.Contains(msg, tc.want) {
			t.Errorf("New(%s) panicked with %q; want a message naming %q", tc.want, msg, tc.want)
		}
	}
	for i, o := range []tieredstore.Option{
		tieredstore.WithHotTimeout(time.Nanosecond), tieredstore.WithBreaker(1, time.Nanosecond),
		tieredstore.WithWarmTTL(time.Nanosecond), tieredstore.WithObserver(nil),
	} {
		if msg := panicMessage(func() { tieredstore.New(hot, durable, o) }); msg != "" {
			t.Errorf("valid option #%d panicked: %s", i, msg)
		}
	}
}
