module github.com/idemkit/idemkit/adapters/idemchi/test

go 1.25.0

require (
	github.com/go-chi/chi/v5 v5.5.0
	github.com/idemkit/idemkit/adapters/idemchi v0.1.0
	github.com/idemkit/idemkit/conformance v0.1.0
	github.com/idemkit/idemkit/core v0.1.0
)

require (
	github.com/idemkit/idemkit/adapters/idemhttp v0.1.0 // indirect
	github.com/idemkit/idemkit/internal v0.1.0 // indirect
)
