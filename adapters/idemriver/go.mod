module github.com/idemkit/idemkit/adapters/idemriver

go 1.26.0

require (
	github.com/idemkit/idemkit/core v0.1.0
	github.com/riverqueue/river/rivertype v0.51.2
)
