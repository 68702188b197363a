//go:build race

package memstore_test

// raceEnabled reports a build with the race detector, which makes the key
// flood ten times slower.
const raceEnabled = true
