package app_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
	"github.com/tokenstore/tokenstore/tests/memrepo"
)

// gitlab is the provider the fake refreshes; github is stored but not
// refreshable.
const (
	gitlab = domain.ProviderGitLab
	github = domain.ProviderGitHub
)

// declared are the providers a fixture declares unless its Config says.
var declared = []domain.Provider{gitlab, github, domain.ProviderKeycloak, domain.ProviderBitbucket}

// fixture is a TokenService on the in-memory repository, a real keyring and
// a fake provider.
type fixture struct {
	t        *testing.T
	svc      *app.TokenService
	repo     *memrepo.Repository
	provider *fakeProvider
	audit    *app.Auditor // nil: no audit trail
	ring     *fernet.Keyring
	cfg      app.Config // as NewTokenService was given it
}

// newKeyring is a keyring of one fresh key.
func newKeyring(t *testing.T) *fernet.Keyring {
	t.Helper()
	key, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ring, err := fernet.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func newFixture(t *testing.T, cfg app.Config) *fixture {
	t.Helper()
	return newAuditedFixture(t, cfg, app.AuditOff)
}

// newAuditedFixture is newFixture with an audit trail in mode (instance
// "unit") that records into the repository's own log, as both the
// batcher's store and the writes' transactions.
func newAuditedFixture(t *testing.T, cfg app.Config, mode app.AuditMode) *fixture {
	t.Helper()
	ring := newKeyring(t)
	if cfg.Refresh.Lease == 0 {
		cfg.Refresh.Lease = 5 * time.Second
	}
	if cfg.Refresh.WaitTimeout == 0 {
		cfg.Refresh.WaitTimeout = 5 * time.Second
	}
	if cfg.Refresh.PollInterval == 0 {
		cfg.Refresh.PollInterval = 2 * time.Millisecond
	}
	cfg.Refresh.Instance = "unit"
	if cfg.Providers == nil {
		cfg.Providers = declared
	}
	f := &fixture{t: t, repo: memrepo.New(), provider: newFakeProvider(gitlab)}
	if mode != app.AuditOff {
		f.audit = app.NewAuditor(app.AuditConfig{Mode: mode, Instance: "unit"}, nil, f.repo.Audit())
		t.Cleanup(func() { _ = f.audit.Stop(context.Background()) })
	}
	f.ring, f.cfg = ring, cfg
	f.svc = app.NewTokenService(cfg, nil, ring, f.repo, f.provider, f.audit)
	return f
}

// put stores tokens for user whose access token expires in access
// (domain.Never() for 0) with refresh token refresh ("" for none), obtained
// a day ago: a token that expires within the configured margin is inside it
// (its lifetime does not cap the margin; see putFresh).
func (f *fixture) put(user domain.UserID, p domain.Provider, access time.Duration, refresh string) {
	f.t.Helper()
	f.putFresh(user, p, access, refresh)
	_, err := f.repo.UpdateAuthTokens(context.Background(), user, p,
		func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			cur.AccessObtainedAt = time.Now().Add(-24 * time.Hour)
			return &cur, nil, nil
		})
	if err != nil {
		f.t.Fatal(err)
	}
}

// putFresh is put with the tokens obtained now, as PutAuthTokens records
// them: the margin is at most a fraction of their lifetime.
func (f *fixture) putFresh(user domain.UserID, p domain.Provider, access time.Duration, refresh string) {
	f.t.Helper()
	tok := domain.AuthTokens{
		User: user, Provider: p,
		AccessToken: domain.NewSecret("access-" + string(user)), AccessExpiry: domain.At(time.Now().Add(access)),
	}
	if access == 0 {
		tok.AccessExpiry = domain.Never()
	}
	if refresh != "" {
		tok.RefreshToken = domain.NewSecret(refresh)
	}
	if _, err := f.svc.PutAuthTokens(context.Background(), tok); err != nil {
		f.t.Fatalf("PutAuthTokens: %v", err)
	}
}

func (f *fixture) get(user domain.UserID, p domain.Provider) (string, error) {
	tok, err := f.svc.GetAccessToken(context.Background(), user, p)
	if err != nil {
		return "", err
	}
	return tok.Token.Reveal(), nil
}

// row is the stored row, as storage holds it.
func (f *fixture) row(user domain.UserID, p domain.Provider) domain.SealedAuthTokens {
	f.t.Helper()
	row, err := f.repo.GetAuthTokens(context.Background(), user, p)
	if err != nil {
		f.t.Fatalf("GetAuthTokens: %v", err)
	}
	return row
}

// setRefresh stores st as the row's refresh state, as another instance would.
func (f *fixture) setRefresh(user domain.UserID, p domain.Provider, st domain.RefreshState) {
	f.t.Helper()
	_, err := f.repo.UpdateAuthTokens(context.Background(), user, p,
		func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			cur.Refresh = st
			return &cur, nil, nil
		})
	if err != nil {
		f.t.Fatal(err)
	}
}

// fakeProvider is a ports.TokenRefresher for one provider. By default it
// rotates: each call returns access-N and refresh-N, living an hour. Its
// answer can be replaced, and a gate can hold calls until released.
type fakeProvider struct {
	provider domain.Provider

	mu        sync.Mutex
	presented []string // refresh tokens presented, in order
	answer    func(n int) (domain.RefreshedTokens, error)
	gate      chan struct{} // non-nil: calls wait until it is closed
	entered   chan struct{} // receives once per call, before the gate
	revokes   bool          // RevokesPreviousAccessToken's answer
}

var _ ports.TokenRefresher = (*fakeProvider)(nil)

func newFakeProvider(p domain.Provider) *fakeProvider {
	return &fakeProvider{provider: p, entered: make(chan struct{}, 100), answer: rotating}
}

func rotating(n int) (domain.RefreshedTokens, error) {
	return domain.RefreshedTokens{
		AccessToken: domain.NewSecret(fmt.Sprint("access-", n)), AccessExpiry: domain.At(time.Now().Add(time.Hour)),
		RefreshToken: domain.NewSecret(fmt.Sprint("refresh-", n)),
	}, nil
}

func failing(err error) func(int) (domain.RefreshedTokens, error) {
	return func(int) (domain.RefreshedTokens, error) { return domain.RefreshedTokens{}, err }
}

// hold makes calls wait until the returned function is called.
func (p *fakeProvider) hold() (release func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gate = make(chan struct{})
	return sync.OnceFunc(func() { close(p.gate) })
}

func (p *fakeProvider) setAnswer(fn func(n int) (domain.RefreshedTokens, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answer = fn
}

func (p *fakeProvider) calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.presented...)
}

func (p *fakeProvider) Refresh(ctx context.Context, provider domain.Provider, refreshToken domain.Secret) (domain.RefreshedTokens, error) {
	if provider != p.provider {
		return domain.RefreshedTokens{}, fmt.Errorf("%s: %w", provider, domain.ErrProviderNotConfigured)
	}
	p.mu.Lock()
	p.presented = append(p.presented, refreshToken.Reveal())
	n, answer, gate := len(p.presented), p.answer, p.gate
	p.mu.Unlock()
	p.entered <- struct{}{}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return domain.RefreshedTokens{}, fmt.Errorf("%w: %w", domain.ErrProviderUnavailable, ctx.Err())
		}
	}
	return answer(n)
}

func (p *fakeProvider) Configured(provider domain.Provider) bool { return provider == p.provider }

func (p *fakeProvider) Providers() []domain.Provider { return []domain.Provider{p.provider} }

func (p *fakeProvider) RevokesPreviousAccessToken(provider domain.Provider) bool {
	return provider == p.provider && p.revokes
}

// wantCalls fails t unless the provider was called n times.
func (f *fixture) wantCalls(n int) {
	f.t.Helper()
	if got := f.provider.calls(); len(got) != n {
		f.t.Errorf("%d provider calls, want %d", len(got), n)
	}
}

// wantErr fails t unless err matches target.
func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
}

// misplaceRefreshToken gives user's row the refresh token sealed for
// other's: a ciphertext in the wrong place, which must not open.
func (f *fixture) misplaceRefreshToken(user, other domain.UserID) {
	f.t.Helper()
	moved := f.row(other, gitlab).RefreshToken
	if _, err := f.repo.UpdateAuthTokens(context.Background(), user, gitlab,
		func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			cur.RefreshToken = moved
			return &cur, nil, nil
		}); err != nil {
		f.t.Fatal(err)
	}
}
