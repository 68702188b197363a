module github.com/idemkit/idemkit/tools/release

go 1.25.0

require golang.org/x/mod v0.34.0
