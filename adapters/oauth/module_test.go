package oauth_test

import (
	"strings"
	"testing"

	"go.uber.org/fx"

	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

func TestModule(t *testing.T) {
	t.Parallel()
	cfg := oauth.Config{Providers: []oauth.ProviderConfig{
		{Name: "github", ClientID: "id", ClientSecret: domain.NewSecret(clientSecret)},
		{Name: "keycloak", ClientID: "id", BaseURL: "http://keycloak:8080", Realm: "app"},
	}}
	opts := []fx.Option{oauth.Module, fx.Supply(cfg), fx.NopLogger}
	if err := fx.ValidateApp(append(opts, fx.Invoke(func(ports.TokenRefresher, *oauth.Refresher) {}))...); err != nil {
		t.Fatalf("ValidateApp: %v", err)
	}

	var port ports.TokenRefresher
	var refresher *oauth.Refresher
	app := fx.New(append(opts, fx.Populate(&port, &refresher))...)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	if port != ports.TokenRefresher(refresher) {
		t.Error("the port and *Refresher are different instances")
	}
	if !refresher.Configured("keycloak") {
		t.Error("keycloak not configured")
	}
}

func TestModuleRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	cfg := oauth.Config{Providers: []oauth.ProviderConfig{{Name: "gitlab", ClientSecret: domain.NewSecret(clientSecret)}}}
	app := fx.New(oauth.Module, fx.Supply(cfg), fx.NopLogger, fx.Invoke(func(ports.TokenRefresher) {}))
	err := app.Err()
	if err == nil || !strings.Contains(err.Error(), "providers[gitlab].client_id: must not be empty") {
		t.Fatalf("Err() = %v", err)
	}
	assertNoSecrets(t, err.Error())
}
