package pgxstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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

// TestNewRefusesInvalidOptions: New (and EnsureSchema, which shares the
// options) panics on each invalid value with a message naming the option
// and the value, as memstore does, where it used to keep the default
// without a word; the valid edge values pass. No server is needed: New
// does not connect.
func TestNewRefusesInvalidOptions(t *testing.T) {
	pool := new(pgxpool.Pool)
	bad := []struct {
		opt  Option
		want string
	}{
		{WithTable(""), `WithTable("")`},
		{WithPruneBatch(0), "WithPruneBatch(0)"},
		{WithPruneBatch(-1), "WithPruneBatch(-1)"},
		{WithTimeout(-time.Second), "WithTimeout(-1s)"},
		{WithLeaseTolerance(0), "WithLeaseTolerance(0s)"},
		{WithLeaseTolerance(-time.Second), "WithLeaseTolerance(-1s)"},
		{WithStepRetention(0), "WithStepRetention(0s)"},
		{WithStepRetention(-time.Hour), "WithStepRetention(-1h0m0s)"},
	}
	for _, tc := range bad {
		t.Run(tc.want, func(t *testing.T) {
			for name, f := range map[string]func(){
				"New":          func() { New(pool, tc.opt) },
				"EnsureSchema": func() { EnsureSchema(context.Background(), pool, tc.opt) },
			} {
				if msg := panicMessage(f); !strings.HasPrefix(msg, "pgxstore: ") || !strings.Contains(msg, tc.want) {
					t.Errorf("%s(%s) panicked with %q; want a message naming %q", name, tc.want, msg, tc.want)
				}
			}
		})
	}
	for i, o := range []Option{
		WithTable("t"), WithSchema(""), WithPruneBatch(1), WithTimeout(0), WithLeaseTolerance(time.Nanosecond),
		WithStepRetention(time.Nanosecond), WithPruneReport(nil),
	} {
		if msg := panicMessage(func() { New(pool, o) }); msg != "" {
			t.Errorf("valid option #%d panicked: %s", i, msg)
		}
	}
	s := New(pool)
	if msg := panicMessage(func() { s.StartPruner(context.Background(), 0) }); !strings.Contains(msg, "StartPruner(0s)") {
		t.Errorf("StartPruner(0) panicked with %q; want a message naming the interval", msg)
	}
}
