module github.com/idemkit/idemkit/core

go 1.25.0
