//go:build !race

package batch_test

// raceEnabled reports whether the tests run under the race detector, which
// makes every item many times slower.
const raceEnabled = false
