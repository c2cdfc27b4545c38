// Package migrations holds the database schema as numbered goose migrations, embedded so
// that the binary migrates without the source tree.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
