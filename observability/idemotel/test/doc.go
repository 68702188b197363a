// Package test holds idemotel's tests: they need the OpenTelemetry SDK,
// otelhttp and idemhttp, which the published module does not.
package test
