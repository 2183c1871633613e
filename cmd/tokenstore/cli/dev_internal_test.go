package cli

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/domain"
)

// TestDevDeclaresQuickStartProviders: `serve --dev` without providers
// declares the README quick start's gitlab (and the other well-known names)
// store-only, so its curl commands store tokens; configured providers are
// left as they are.
func TestDevDeclaresQuickStartProviders(t *testing.T) {
	t.Parallel()
	cfg := Defaults()
	cfg.Dev, cfg.DevDir = true, t.TempDir()
	if err := prepareDev(&cfg, slog.New(slog.DiscardHandler), true); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cfg.App.Providers, domain.ProviderGitLab) || !slices.Equal(cfg.App.Providers, cfg.OAuth.Names()) {
		t.Errorf("declared providers = %v (oauth %v); want gitlab among them, the same in both", cfg.App.Providers, cfg.OAuth.Names())
	}
	for _, p := range cfg.OAuth.Providers {
		if !p.StoreOnly {
			t.Errorf("dev provider %s is refreshed; want store-only (no credentials in dev)", p.Name)
		}
	}
	if err := cfg.OAuth.Validate(); err != nil {
		t.Errorf("dev providers do not validate: %v", err)
	}

	configured := Defaults()
	configured.Dev, configured.DevDir = true, t.TempDir()
	configured.OAuth = oauth.Config{Providers: []oauth.ProviderConfig{{Name: "corp", StoreOnly: true}}}
	configured.App.Providers = configured.OAuth.Names()
	if err := prepareDev(&configured, slog.New(slog.DiscardHandler), true); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(configured.App.Providers, []domain.Provider{"corp"}) {
		t.Errorf("dev changed configured providers: %v", configured.App.Providers)
	}
}
