package core_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

func ExampleParseKey() {
	for _, v := range []string{`"8e03978e-40d5-43e8-bc93-6894a57f9324"`, `order-42`, `""`, `"a";v=1`} {
		key, err := core.ParseKey([]string{v}, false, core.DefaultMaxKeyLength)
		switch {
		case errors.Is(err, core.ErrInvalidKey):
			fmt.Printf("%-40s → 400 (%v)\n", v, err)
		default:
			fmt.Printf("%-40s → key %s\n", v, key)
		}
	}
	// Output:
	// "8e03978e-40d5-43e8-bc93-6894a57f9324"   → key 8e03978e-40d5-43e8-bc93-6894a57f9324
	// order-42                                 → key order-42
	// ""                                       → 400 (core: invalid idempotency key: empty key)
	// "a";v=1                                  → 400 (core: invalid idempotency key: parameters are not allowed)
}

// A job handler made safe to redeliver: the queue's task ID is the key,
// the task's payload its input. The second delivery gets the stored
// result; the work does not run again.
func ExampleEngine_Do() {
	engine := core.New(memstore.New())
	sendReceipt := func(ctx context.Context) ([]byte, error) {
		fmt.Println("sending the receipt")
		return []byte("receipt sent"), nil
	}
	call := core.Call{Key: "task-7f3a", Scope: "tenant-42", Name: "email:receipt", Input: []byte(`{"order":1001}`)}
	for delivery := 1; delivery <= 2; delivery++ {
		out, err := engine.Do(context.Background(), call, sendReceipt)
		fmt.Printf("delivery %d: %s %v\n", delivery, out, err)
	}
	// Output:
	// sending the receipt
	// delivery 1: receipt sent <nil>
	// delivery 2: receipt sent <nil>
}
