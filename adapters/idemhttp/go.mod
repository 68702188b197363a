module github.com/idemkit/idemkit/adapters/idemhttp

go 1.25.0

require (
	github.com/idemkit/idemkit/core v0.1.0
	github.com/idemkit/idemkit/internal v0.1.0
)
