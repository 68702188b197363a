package idemasynq_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/idemkit/idemkit/adapters/idemasynq"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
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

// TestMiddlewareRefusesInvalidOptions: Middleware panics on each invalid
// option value, naming it, instead of failing on every task (a nil
// function) or silently using the task ID (an empty header name).
func TestMiddlewareRefusesInvalidOptions(t *testing.T) {
	store := memstore.New()
	t.Cleanup(func() { store.Close() })
	engine := core.New(store)
	for _, tc := range []struct {
		opt  idemasynq.Option
		want string
	}{
		{idemasynq.WithKeyFunc(nil), "WithKeyFunc(nil)"},
		{idemasynq.WithScope(nil), "WithScope(nil)"},
		{idemasynq.WithKeyHeader(""), `WithKeyHeader("")`},
	} {
		if msg := panicMessage(func() { idemasynq.Middleware(engine, tc.opt) }); !strings.HasPrefix(msg, "idemasynq: ") || !strings.Contains(msg, tc.want) {
			t.Errorf("Middleware(%s) panicked with %q; want a message naming %q", tc.want, msg, tc.want)
		}
	}
	if msg := panicMessage(func() {
		idemasynq.Middleware(engine, idemasynq.WithKeyHeader("x-key"), idemasynq.WithKeyFunc(idemasynq.DefaultKey), idemasynq.WithScope(idemasynq.DefaultScope))
	}); msg != "" {
		t.Errorf("valid options panicked: %s", msg)
	}
}
