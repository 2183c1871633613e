package app_test

import (
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// recorder is an app.Observer that keeps what it is told.
type recorder struct {
	mu       sync.Mutex
	attempts []string // provider/outcome
	calls    int
}

func (r *recorder) RefreshAttempt(p domain.Provider, outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts = append(r.attempts, string(p)+"/"+outcome)
}

func (r *recorder) ProviderCall(domain.Provider, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
}

func (r *recorder) LeaseWait(domain.Provider, time.Duration, string) {}
func (r *recorder) AuditWrite(int, time.Duration, error)             {}

// TestObserverSeesRefreshOutcomes: each refresh attempt is reported once
// with its outcome (the stored failure code for a failure), and each
// provider call once; a read that needs no refresh reports nothing.
func TestObserverSeesRefreshOutcomes(t *testing.T) {
	t.Parallel()
	obs := &recorder{}
	f := newFixture(t, app.Config{Observer: obs})
	f.put("alice", gitlab, -time.Minute, "r1")
	if _, err := f.get("alice", gitlab); err != nil {
		t.Fatal(err)
	}
	if _, err := f.get("alice", gitlab); err != nil { // fresh now: no attempt
		t.Fatal(err)
	}
	f.provider.setAnswer(failing(domain.ErrGrantRevoked))
	f.put("bob", gitlab, -time.Minute, "r2")
	_, err := f.get("bob", gitlab)
	wantErr(t, err, domain.ErrReauthRequired)

	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []string{"gitlab/" + app.RefreshRefreshed, "gitlab/" + domain.CodeGrantRevoked}
	if len(obs.attempts) != len(want) || obs.attempts[0] != want[0] || obs.attempts[1] != want[1] {
		t.Errorf("attempts %v, want %v", obs.attempts, want)
	}
	if obs.calls != 2 {
		t.Errorf("provider calls %d, want 2", obs.calls)
	}
}
