// Package examples holds one runnable program per problem that crew was
// built to solve. Each subdirectory is a main package with its own README
// section in the repository's README.md.
package examples
