package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/adapters/secretfile"
	"github.com/tokenstore/tokenstore/domain"
)

// DefaultDevDatabasePort is dev.database_port's default; devdb.sh has the
// same default, which a test checks.
const DefaultDevDatabasePort = 55432

// DevDatabaseURL is the database `task run` starts for development
// (tests/pgimage/devdb.sh), on 127.0.0.1:port.
func DevDatabaseURL(port int) string {
	return fmt.Sprintf("postgres://tokenstore:tokenstore@127.0.0.1:%d/tokenstore?sslmode=disable", port)
}

// prepareDev makes development defaults real: a key file and a caller
// credential in the dev directory, created once (mode 0600) and reused, so
// restarts keep data readable and curl commands working. Without create (a
// one-off command's --dev) nothing is made: the key file is used when
// serve --dev made it, and callers are serve's business.
func prepareDev(cfg *Config, log *slog.Logger, create bool) error {
	if err := cfg.devKeys(log, create); err != nil {
		return err
	}
	if create && len(cfg.Callers) == 0 {
		path := filepath.Join(cfg.DevDir, "caller-credential")
		if !exists(path) {
			cred, _, err := httpapi.NewCredential()
			if err != nil {
				return err
			}
			if err := writeSecretFile(path, cred+"\n"); err != nil {
				return fmt.Errorf("create development caller credential: %w", err)
			}
			log.Info("created development caller credential", "path", path)
		}
		cred, err := secretfile.Read(path, "development caller credential")
		if err != nil {
			return err
		} else if cred == "" {
			return fmt.Errorf("%s is empty", path)
		}
		h, err := httpapi.ParseCredentialHash(httpapi.HashCredential(cred))
		if err != nil {
			return err
		}
		cfg.Callers = []httpapi.Caller{{Name: "dev", CredentialHash: h, Permissions: httpapi.AllPermissions}}
		log.Info("dev mode: caller \"dev\" has every permission; its credential is in the file",
			"path", path, "permissions", strings.Join(httpapi.PermissionNames(), ","))
	}
	if len(cfg.OAuth.Providers) == 0 {
		for _, name := range DevProviders() {
			cfg.OAuth.Providers = append(cfg.OAuth.Providers, oauth.ProviderConfig{Name: name, StoreOnly: true})
		}
		cfg.App.Providers = cfg.OAuth.Names()
		log.Info("dev mode: providers declared store-only (tokens kept, never refreshed); configure providers to refresh them",
			"providers", cfg.App.Providers)
	}
	return nil
}

// devKeys gives a --dev configuration without keys the development key
// file, creating it (mode 0600) the first time when create (serve); a
// one-off command (create false) only uses it when serve made it, and
// otherwise notes where it looked (Keyring says so). A SIGHUP reload calls
// it too, so it reads the keys from where start-up did.
func (cfg *Config) devKeys(log *slog.Logger, create bool) error {
	if !cfg.Dev || len(cfg.Keys.Keys) > 0 {
		return nil
	}
	path := filepath.Join(cfg.DevDir, "keys")
	switch {
	case !exists(path) && !create:
		cfg.devKeyFile = path
		return nil
	case !exists(path):
		k, err := fernet.GenerateKey()
		if err != nil {
			return err
		}
		content := "# Development key made by `tokenstore serve --dev`. Never use it in production.\n" + k.Encode() + "\n"
		if err := writeSecretFile(path, content); err != nil {
			return fmt.Errorf("create development key file: %w", err)
		}
		log.Info("created development key file", "path", path)
	}
	if err := cfg.loadKeyFile(path); err != nil {
		return err
	}
	cfg.KeySource = "development key file " + path
	log.Info("dev mode: using development key file", "path", path)
	return nil
}

// DevProviders are declared store-only by `serve --dev` when no provider
// is configured, so the README's quick start (gitlab) and its neighbours
// can store tokens at once; tests/servicetest declares them too.
func DevProviders() []domain.Provider {
	return []domain.Provider{domain.ProviderGitHub, domain.ProviderGitLab, domain.ProviderBitbucket,
		domain.ProviderAzureDevOps, domain.ProviderKeycloak}
}

// writeSecretFile creates path with mode 0600 (and its directory with 0700),
// failing if it exists: development secrets are made once, never replaced.
func writeSecretFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
