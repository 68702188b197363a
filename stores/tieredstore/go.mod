module github.com/idemkit/idemkit/stores/tieredstore

go 1.25.0

require github.com/idemkit/idemkit/core v0.0.0

replace github.com/idemkit/idemkit/core => ../../core

require github.com/idemkit/idemkit/conformance v0.0.0

replace github.com/idemkit/idemkit/conformance => ../../conformance
