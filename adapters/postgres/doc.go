// Package postgres implements ports.TokenRepository on PostgreSQL through
// pgx/v5 and the sqlc-generated package db, and runs tokenstore's goose
// migrations. It is the only package that imports db: sqlc rows and pgx
// errors are turned into domain types and errors here and nowhere else.
package postgres
