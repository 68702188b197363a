package idemriver_test

import (
	"context"
	"fmt"

	"github.com/riverqueue/river/rivertype"

	"github.com/idemkit/idemkit/adapters/idemriver"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// ReceiptArgs are a job's args carrying a key the producer chose: the
// Idempotency-Key of the request that ordered the receipt.
type ReceiptArgs struct {
	Order    int    `json:"order"`
	OrderKey string `json:"order_key"`
}

func (ReceiptArgs) Kind() string { return "receipt" }

// River works the same logical job twice (two inserts, two job IDs, one
// key in the args): the worker runs once, and both jobs complete. Here the
// middleware is called as River calls it, without a database.
func ExampleMiddleware() {
	engine := core.New(memstore.New())
	mw := idemriver.Middleware(engine,
		idemriver.WithArgsKey(func(a ReceiptArgs) string { return a.OrderKey }))
	sendReceipt := func(ctx context.Context) error {
		fmt.Println("sending the receipt")
		return nil
	}
	for id := int64(1); id <= 2; id++ {
		job := &rivertype.JobRow{ID: id, Kind: "receipt", Attempt: 1,
			EncodedArgs: []byte(`{"order": 1001, "order_key": "8e03978e-40d5"}`)}
		err := mw.Work(context.Background(), job, sendReceipt)
		fmt.Printf("job %d: %v\n", id, err)
	}
	// Output:
	// sending the receipt
	// job 1: <nil>
	// job 2: <nil>
}
