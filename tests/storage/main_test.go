// Package storage_test runs the storage core against a real PostgreSQL: the
// repository contract, PostgreSQL-specific locking, the migrations, and what
// actually lands in the tables.
package storage_test

import (
	"testing"

	"github.com/tokenstore/tokenstore/tests/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }
