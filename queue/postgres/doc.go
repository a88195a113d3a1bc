// Package postgres is crew's queue on PostgreSQL.
package postgres
