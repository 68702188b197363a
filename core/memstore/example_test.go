package memstore_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// The life of one key, driven by hand: the engine makes these calls for
// every guarded request.
func Example() {
	st := memstore.New(memstore.WithMaxEntries(10_000))
	defer st.Close()
	ctx := context.Background()

	req := core.ClaimRequest{Key: "3f2a…", Fingerprint: core.Fingerprint{1}, Token: "t1", Lease: 30 * time.Second}
	c, _ := st.Claim(ctx, req)
	fmt.Println("first:", c.Status)

	req.Token = "t2"
	c, _ = st.Claim(ctx, req)
	fmt.Println("duplicate while running:", c.Status)

	resp := &core.Response{Status: 201, Header: http.Header{"Location": {"/payments/1"}}, Body: []byte(`{"id":1}`)}
	if err := st.Complete(ctx, req.Key, "t1", resp, 24*time.Hour); err != nil {
		fmt.Println(err)
	}
	c, _ = st.Claim(ctx, req)
	fmt.Println("retry:", c.Status, c.Response.Status, c.Response.Header.Get("Location"), string(c.Response.Body))

	req.Fingerprint = core.Fingerprint{2}
	c, _ = st.Claim(ctx, req)
	fmt.Println("other payload:", c.Status)
	// Output:
	// first: acquired
	// duplicate while running: in-flight
	// retry: replay 201 /payments/1 {"id":1}
	// other payload: mismatch
}
