module github.com/idemkit/idemkit/adapters/idemchi

go 1.25.0

require (
	github.com/idemkit/idemkit/adapters/idemhttp v0.0.0
	github.com/idemkit/idemkit/conformance v0.0.0
	github.com/idemkit/idemkit/core v0.0.0
)

require github.com/go-chi/chi/v5 v5.5.0

replace (
	github.com/idemkit/idemkit/adapters/idemhttp => ../idemhttp
	github.com/idemkit/idemkit/conformance => ../../conformance
	github.com/idemkit/idemkit/core => ../../core
)
