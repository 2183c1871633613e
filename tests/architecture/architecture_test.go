// Package architecture_test checks that dependencies point the way the
// README's layout says: fx only at the composition root, the sqlc output
// only behind the PostgreSQL adapter, and a domain and ports that know no
// driver. It reads `go list` and needs no database.
package architecture_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/tokenstore/tokenstore"

// pkg is what `go list -json` says about one package (or test variant).
type pkg struct {
	ImportPath, ForTest                string
	Standard                           bool
	Imports, TestImports, XTestImports []string
	Deps                               []string
}

// own is the package's path without its test-variant suffix, relative to
// the module ("app", "adapters/postgres"); "" for a package outside it.
func (p pkg) own() string {
	path, _, _ := strings.Cut(p.ImportPath, " ")
	path = strings.TrimSuffix(strings.TrimSuffix(path, ".test"), "_test")
	rel, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return ""
	}
	return rel
}

func (p pkg) in(dirs ...string) bool {
	for _, d := range dirs {
		if own := p.own(); own == d || strings.HasPrefix(own, d+"/") {
			return true
		}
	}
	return false
}

// list runs `go list -json` over the whole module, test variants included.
func list(t *testing.T, args ...string) []pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json", "-test"}, append(args, module+"/...")...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pkgs
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
}

// TestFxOnlyAtTheCompositionRoot: implementation packages must be usable
// without fx (plain constructors a test can call); only cmd/tokenstore/cli
// writes the graph.
func TestFxOnlyAtTheCompositionRoot(t *testing.T) {
	t.Parallel()
	for _, p := range list(t) {
		if !p.in("app", "adapters", "domain", "ports") {
			continue
		}
		for _, d := range p.Deps {
			if d == "go.uber.org/fx" || strings.HasPrefix(d, "go.uber.org/fx/") {
				t.Errorf("%s depends on %s: only cmd/tokenstore/cli may use fx", p.ImportPath, d)
				break
			}
		}
	}
}

// TestOnlyThePostgresAdapterImportsDB: sqlc's generated package stays behind
// its adapter, which maps its rows to domain types. tests/benchhttp (task
// bench:http) imports it too, to record the statements its methods send and
// give pgbench the very same ones; it never runs a query through it.
func TestOnlyThePostgresAdapterImportsDB(t *testing.T) {
	t.Parallel()
	for _, p := range list(t) {
		if p.in("adapters/postgres", "db", "tests/benchhttp") {
			continue
		}
		for _, imp := range append(append(p.Imports, p.TestImports...), p.XTestImports...) {
			if imp == module+"/db" {
				t.Errorf("%s imports %s: only adapters/postgres may", p.ImportPath, imp)
			}
		}
	}
}

// TestCoreKnowsNoDriver: domain imports only the standard library, and no
// port mentions a pgx type (pgtype or otherwise).
func TestCoreKnowsNoDriver(t *testing.T) {
	t.Parallel()
	pkgs := list(t, "-deps")
	standard := map[string]bool{}
	for _, p := range pkgs {
		standard[p.ImportPath] = p.Standard
	}
	for _, p := range pkgs {
		switch {
		case p.in("ports"):
			for _, d := range p.Deps {
				if strings.HasPrefix(d, "github.com/jackc/pgx") {
					t.Errorf("%s depends on %s: ports speak domain types, not the driver's", p.ImportPath, d)
					break
				}
			}
		case p.in("domain") && p.ForTest == "" && !strings.HasSuffix(p.ImportPath, ".test"):
			for _, imp := range p.Imports {
				if !standard[imp] {
					t.Errorf("%s imports %s: the domain uses the standard library only", p.ImportPath, imp)
				}
			}
		}
	}
}

// TestClientStandsAlone: the Go client is what other services import, so it
// brings none of the server (no domain, driver or fx) and no module but the
// generator's small runtime: its dependencies are the standard library,
// client/... and oapi-codegen's runtime (with the two modules that needs).
func TestClientStandsAlone(t *testing.T) {
	t.Parallel()
	allowed := []string{"github.com/oapi-codegen/runtime", "github.com/apapsch/go-jsonmerge/v2", "github.com/google/uuid"}
	pkgs := list(t, "-deps")
	standard := map[string]bool{}
	for _, p := range pkgs {
		standard[p.ImportPath] = p.Standard
	}
	found := false
	for _, p := range pkgs {
		if p.ImportPath != module+"/client" {
			continue
		}
		found = true
	deps:
		for _, d := range p.Deps {
			if standard[d] || strings.HasPrefix(d, module+"/client/") {
				continue
			}
			for _, a := range allowed {
				if d == a || strings.HasPrefix(d, a+"/") {
					continue deps
				}
			}
			t.Errorf("client depends on %s: callers would build it too; the client needs only net/http and the generator's runtime", d)
		}
	}
	if !found {
		t.Fatal("no package client in the module")
	}
}

// TestCoreKnowsNoTelemetrySDK: the use cases report what they do through
// app.Observer and the OpenTelemetry trace API only; the metrics library,
// the OpenTelemetry SDK and its exporters, and every adapter stay out of
// domain, ports and app (the composition root and the adapters own them).
func TestCoreKnowsNoTelemetrySDK(t *testing.T) {
	t.Parallel()
	banned := []string{"github.com/prometheus/", "go.opentelemetry.io/otel/sdk", "go.opentelemetry.io/otel/exporters/",
		"go.opentelemetry.io/contrib/", module + "/adapters/", module + "/cmd/"}
	for _, p := range list(t) {
		if !p.in("app", "domain", "ports") || p.ForTest != "" || strings.HasSuffix(p.ImportPath, ".test") {
			continue
		}
		for _, d := range p.Deps {
			for _, b := range banned {
				if strings.HasPrefix(d, b) {
					t.Errorf("%s depends on %s: the core reports through app.Observer and the trace API, never a metrics or tracing SDK or an adapter", p.ImportPath, d)
				}
			}
		}
	}
}
