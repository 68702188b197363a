module github.com/idemkit/idemkit/internal

go 1.25.0

require github.com/idemkit/idemkit/core v0.1.0
