package main

import (
	"testing"

	"github.com/idemkit/idemkit/examples/internal/servicetest"
)

func TestService(t *testing.T) { servicetest.CheckRoutes(t, routes) }
