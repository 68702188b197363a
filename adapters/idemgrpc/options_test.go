package idemgrpc_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/idemkit/idemkit/adapters/idemgrpc"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"google.golang.org/protobuf/types/known/wrapperspb"
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

// TestInterceptorRefusesInvalidOptions: UnaryServerInterceptor panics on
// each invalid option value with a message naming the option and the
// value; before, WithMethods() guarded nothing and WithResponse with a nil
// message panicked inside protobuf.
func TestInterceptorRefusesInvalidOptions(t *testing.T) {
	store := memstore.New()
	t.Cleanup(func() { store.Close() })
	engine := core.New(store)
	for _, tc := range []struct {
		opt  func() idemgrpc.Option
		want string
	}{
		{func() idemgrpc.Option { return idemgrpc.WithMethods() }, "WithMethods()"},
		{func() idemgrpc.Option { return idemgrpc.WithMethods("/a.B/C", "") }, `WithMethods(["/a.B/C" ""])`},
		{func() idemgrpc.Option { return idemgrpc.WithFailurePolicy(nil) }, "WithFailurePolicy(nil)"},
		{func() idemgrpc.Option { return idemgrpc.WithResponse("", wrapperspb.String("")) }, `WithResponse("", *wrapperspb.StringValue)`},
		{func() idemgrpc.Option { return idemgrpc.WithResponse("/a.B/C", nil) }, `WithResponse("/a.B/C", <nil>)`},
	} {
		if msg := panicMessage(func() { idemgrpc.UnaryServerInterceptor(engine, tc.opt()) }); !strings.HasPrefix(msg, "idemgrpc: ") || !strings.Contains(msg, tc.want) {
			t.Errorf("UnaryServerInterceptor(%s) panicked with %q; want a message naming %q", tc.want, msg, tc.want)
		}
	}
	if msg := panicMessage(func() {
		idemgrpc.UnaryServerInterceptor(engine, idemgrpc.WithMethods("/a.B/C"), idemgrpc.WithScope(nil), idemgrpc.WithResponse("/a.B/C", wrapperspb.String("")))
	}); msg != "" {
		t.Errorf("valid options panicked: %s", msg)
	}
}
