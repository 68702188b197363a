package readme

import (
	"testing"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// mystore stands for a user's store package in README's "Your own store".
var mystore = struct{ New func() *memstore.Store }{New: func() *memstore.Store { return memstore.New() }}

// README's "Your own store", here on memstore.
func TestMyStore(t *testing.T) {
	conformance.TestStore(t, func(t *testing.T) core.Store { return mystore.New() })
}
