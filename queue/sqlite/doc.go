// Package sqlite is crew's embedded durable queue.
package sqlite
