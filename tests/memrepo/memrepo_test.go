package memrepo_test

import (
	"testing"

	"github.com/tokenstore/tokenstore/tests/memrepo"
	"github.com/tokenstore/tokenstore/tests/repotest"
)

// TestContract holds the in-memory repository to the PostgreSQL adapter's
// contract, so app tests on it test what production runs.
func TestContract(t *testing.T) {
	t.Parallel()
	repotest.Run(t, func(*testing.T) repotest.Repository { return memrepo.New() })
}

// TestAuditContract holds the in-memory audit log to the PostgreSQL
// adapter's contract.
func TestAuditContract(t *testing.T) {
	t.Parallel()
	repotest.RunAudit(t, func(*testing.T) repotest.AuditLog { return memrepo.NewAuditLog() })
}
