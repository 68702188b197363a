package tieredstore_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
)

// Any core.Cache can be the hot tier and any core.Store the durable one:
// here an in-process memstore cache in front of another memstore standing
// in for Postgres. The first replay comes from the durable tier and warms
// the cache; the next ones are answered by the cache alone.
func Example() {
	ctx := context.Background()
	hot, durable := memstore.New(), memstore.New()
	defer hot.Close()
	defer durable.Close()
	store := tieredstore.New(hot, durable)

	req := core.ClaimRequest{Key: "k1", Fingerprint: core.Fingerprint{1}, Token: "t1", Lease: time.Minute}
	c, _ := store.Claim(ctx, req)
	fmt.Println("first request:", c.Status)
	resp := &core.Response{Status: http.StatusCreated, Body: []byte(`{"id":"pay_1"}`)}
	_ = store.Complete(ctx, "k1", req.Token, resp, 24*time.Hour)

	cached, _ := hot.Lookup(ctx, "k1", req.Fingerprint)
	fmt.Println("in the hot tier after the first request:", cached.Response != nil)

	retry := req
	retry.Token = "t2"
	c, _ = store.Claim(ctx, retry)
	fmt.Println("retry:", c.Status, string(c.Response.Body))
	store.Flush() // the warm-up runs in the background

	cached, _ = hot.Lookup(ctx, "k1", req.Fingerprint)
	fmt.Println("in the hot tier after the retry:", cached.Response != nil)
	// Output:
	// first request: acquired
	// in the hot tier after the first request: false
	// retry: replay {"id":"pay_1"}
	// in the hot tier after the retry: true
}
