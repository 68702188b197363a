module github.com/idemkit/idemkit/migrations

go 1.25.0
