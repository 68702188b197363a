package core_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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

// An engine with the options a job runner usually sets, over the embedded
// memory store. Engine.Do takes the scope from Call.Scope; for HTTP
// requests, core.WithKeyScope (or core.WithHeaderScope) names it, as the
// adapters' examples show.
func ExampleNew_options() {
	var mu sync.Mutex
	observed := map[core.Outcome]int{}
	observer := core.ObserverFunc(func(_ context.Context, ev core.Event) {
		mu.Lock()
		defer mu.Unlock()
		observed[ev.Outcome]++
	})
	engine := core.New(memstore.New(),
		core.WithObserver(observer),
		// A duplicate that finds the work running waits up to 5 s for
		// its result instead of getting ErrInFlight at once.
		core.WithWaitForInFlight(5*time.Second),
		// Storing a result is retried for up to 2 s while the store
		// fails; past that, Do returns ErrStoreUnavailable and storing
		// goes on in the background (Engine.Shutdown waits for it).
		core.WithCompleteWait(2*time.Second),
	)
	defer engine.Shutdown(context.Background())

	started, finish := make(chan struct{}), make(chan struct{})
	runs := 0
	charge := func(ctx context.Context) ([]byte, error) {
		runs++
		close(started)
		<-finish
		return []byte("charged 12.00 EUR"), nil
	}
	call := core.Call{Key: "order-1001", Scope: "tenant-42", Name: "charge", Input: []byte(`{"amount":1200}`)}

	// The first delivery, and a duplicate while it runs: the duplicate
	// waits for the result instead of running charge again.
	var first, dup string
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		out, err := engine.Do(context.Background(), call, charge)
		first = fmt.Sprint(string(out), " ", err)
	}()
	<-started
	go func() {
		defer wg.Done()
		out, err := engine.Do(context.Background(), call, charge)
		dup = fmt.Sprint(string(out), " ", err)
	}()
	close(finish)
	wg.Wait()
	fmt.Println("first:     ", first)
	fmt.Println("duplicate: ", dup)

	// A redelivery later gets the stored result.
	out, err := engine.Do(context.Background(), call, charge)
	fmt.Println("redelivery:", string(out), err)
	fmt.Println("charge ran", runs, "time(s)")

	// The same key in another scope is other work.
	other := call
	other.Scope = "tenant-7"
	out, err = engine.Do(context.Background(), other, func(context.Context) ([]byte, error) {
		return []byte("charged 3.00 EUR"), nil
	})
	fmt.Println("tenant-7:  ", string(out), err)

	mu.Lock()
	defer mu.Unlock()
	fmt.Println("observed:  ", observed)
	// Output:
	// first:      charged 12.00 EUR <nil>
	// duplicate:  charged 12.00 EUR <nil>
	// redelivery: charged 12.00 EUR <nil>
	// charge ran 1 time(s)
	// tenant-7:   charged 3.00 EUR <nil>
	// observed:   map[executed:2 replayed:2]
}
