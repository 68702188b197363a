package idemriver_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/idemkit/idemkit/adapters/idemriver"
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

// TestMiddlewareRefusesInvalidOptions: a nil WithArgsKey function panics
// in Middleware, naming the option, instead of on every job of its kind;
// nil WithKeyFunc and WithScope are the defaults.
func TestMiddlewareRefusesInvalidOptions(t *testing.T) {
	store := memstore.New()
	t.Cleanup(func() { store.Close() })
	engine := core.New(store)
	if msg := panicMessage(func() { idemriver.Middleware(engine, idemriver.WithArgsKey[renamedArgs](nil)) }); !strings.HasPrefix(msg, "idemriver: ") || !strings.Contains(msg, "WithArgsKey[") {
		t.Errorf("Middleware(WithArgsKey(nil)) panicked with %q; want a message naming WithArgsKey", msg)
	}
	if msg := panicMessage(func() { idemriver.Middleware(engine, idemriver.WithKeyFunc(nil), idemriver.WithScope(nil)) }); msg != "" {
		t.Errorf("Middleware(WithKeyFunc(nil), WithScope(nil)) panicked: %s; want the defaults", msg)
	}
}
