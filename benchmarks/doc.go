// Package benchmarks measures crew against the libraries it replaces, side
// by side in one run. It is a module of its own so that crew's core module
// never depends on its peers. See README.md for the numbers and how to
// reproduce them.
package benchmarks
