// Package migrations embeds tokenstore's goose migrations. The same files are
// sqlc's schema, so the generated code and the real database cannot drift.
package migrations

import "embed"

// FS holds the migration files, named NNNNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
