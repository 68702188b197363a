package core_test

import (
	"errors"
	"fmt"

	"github.com/idemkit/idemkit/core"
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
