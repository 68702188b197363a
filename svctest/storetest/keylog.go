package storetest

import (
	"context"
	"sync"

	"github.com/idemkit/idemkit/core"
)

// KeyLog is a core.Observer that records the storage keys of executed
// requests, in order.
type KeyLog struct {
	mu   sync.Mutex
	keys []string
}

// Observe implements core.Observer.
func (l *KeyLog) Observe(_ context.Context, ev core.Event) {
	if ev.Outcome == core.OutcomeExecuted {
		l.mu.Lock()
		l.keys = append(l.keys, ev.KeyHash)
		l.mu.Unlock()
	}
}

// Executed returns the storage keys seen so far.
func (l *KeyLog) Executed() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.keys...)
}
