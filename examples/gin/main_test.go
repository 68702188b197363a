package main

import (
	"testing"

	"github.com/idemkit/idemkit/examples/internal/servicetest"
)

func TestService(t *testing.T) { servicetest.CheckRoutes(t, routes) }

// TestLimits checks the server's limits over real sockets: a slow body is
// cut off by the read timeout and a header bomb is refused.
func TestLimits(t *testing.T) { servicetest.CheckRoutesLimits(t, routes) }
