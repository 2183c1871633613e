package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenstore/tokenstore/adapters/fernet"
)

// The refresh storm (issue 14): 3 instances × 200 callers ask at once for
// one token whose access token has expired, so every caller needs the
// refreshed one; the provider (fakeProvider, in a process of its own:
// serveProvider) takes 200 ms to answer. Exactly one refresh must reach the provider, and the
// callers' p99 must stay within 300 ms: the refresh itself plus 100 ms for
// the callers to learn of it. The callers are goroutines of this program
// (wrk cannot fire one simultaneous burst); their connections are opened
// by a first burst (not counted) on the still valid token, so the measured
// latencies do not include TCP set-up. The report also gives the
// instances' own durations from their request logs, which leave out the
// time the callers waited for a CPU on this machine. The instances'
// background refresh worker is off, so only the readers refresh.

const (
	stormInstances = 3
	stormCallers   = 200 // per instance
	stormRounds    = 3
	stormDelay     = 200 * time.Millisecond
	stormUser      = "storm-user"
	stormProvider  = "storm"
	stormDatabase  = "storm"
)

// stormRound is one burst's outcome.
type stormRound struct {
	providerCalls int64
	latencies     []time.Duration // of the answers that were right, as the callers saw them
	// server is the instances' own durations of the burst's requests (their
	// request log's duration_ms): the callers' latencies less the time this
	// program's 600 goroutines waited for a CPU.
	server     []time.Duration
	start, end time.Time
	// calledAt, answeredAt: when the (last) provider call of the round
	// arrived and was answered, to split the callers' latency into the
	// time before the refresh reached the provider, the provider's own
	// time, and the time the answers took after it.
	calledAt, answeredAt time.Time
	wrong                []string // answers that were not the refreshed token (at most a few kept)
	wrongCount           int
}

type stormResult struct {
	rounds []stormRound
	reuses int64 // refresh tokens presented twice (each burns the grant at a real provider)
}

// fakeProvider is an OAuth token endpoint that rotates refresh tokens, as
// GitLab does: each refresh answers a new access and refresh token after
// delay, and a refresh token presented twice is refused (invalid_grant)
// and counted.
type fakeProvider struct {
	delay   time.Duration
	mu      sync.Mutex
	n       int
	refresh string // the refresh token that is valid now
	access  string // the access token issued last
	calls   int64
	reuses  int64
	// calledAt, answeredAt: when the last refresh (a call that was not
	// refused) arrived and was answered.
	calledAt, answeredAt time.Time
}

func (p *fakeProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/token" || r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "refresh_token" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	arrived := time.Now()
	p.mu.Lock()
	p.calls++
	if r.PostForm.Get("refresh_token") != p.refresh {
		p.reuses++
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
		return
	}
	p.n++
	p.calledAt = arrived
	p.refresh, p.access = fmt.Sprintf("storm-refresh-%d", p.n), fmt.Sprintf("storm-access-%d", p.n)
	answer := map[string]any{"access_token": p.access, "refresh_token": p.refresh, "token_type": "bearer", "expires_in": 3600}
	p.mu.Unlock()
	time.Sleep(p.delay)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(answer)
	p.mu.Lock()
	p.answeredAt = time.Now()
	p.mu.Unlock()
}

// providerState is what the fake provider has seen (GET /state).
type providerState struct {
	Calls, Reuses int64
	Access        string // the access token issued last
	// CalledAt, AnsweredAt: when the last refresh arrived and was answered.
	CalledAt, AnsweredAt time.Time
}

func (p *fakeProvider) state() providerState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return providerState{Calls: p.calls, Reuses: p.reuses, Access: p.access, CalledAt: p.calledAt, AnsweredAt: p.answeredAt}
}

// serveProvider serves the storm's fake provider on addr until the process
// is killed: POST /token, and GET /state (providerState, JSON). It runs as
// a process of its own (startSelf) because in this one its handler would
// wait for a CPU behind the 600 callers' goroutines: measured at 25-51 ms
// between tokenstore sending the refresh and the handler starting, time a
// real provider, elsewhere, does not add.
func serveProvider(addr string) error {
	p := &fakeProvider{delay: stormDelay, refresh: "storm-refresh-0", access: "storm-access-0"}
	mux := http.NewServeMux()
	mux.Handle("/token", p)
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p.state())
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// providerStateOf reads the state of the fake provider at url.
func providerStateOf(ctx context.Context, url string) (providerState, error) {
	var st providerState
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/state", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("the fake provider's state: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func (b *bench) stormPart(ctx context.Context) (*stormResult, error) {
	url, err := b.newDatabase(ctx, stormDatabase)
	if err != nil {
		return nil, err
	}
	fake, err := b.startSelf(ctx, "storm-provider", "-serve-provider", "/state")
	if err != nil {
		return nil, err
	}
	defer fake.stop()

	key, err := fernet.GenerateKey()
	if err != nil {
		return nil, err
	}
	progress("storm: starting %d tokenstore instances", stormInstances)
	var instances []*server
	for i := range stormInstances {
		in, err := b.startServer(ctx, fmt.Sprintf("storm-%d", i+1), serverConfig{
			"database": map[string]any{"url": url},
			"keys":     []string{key.Encode()},
			"callers":  []any{b.caller.entry},
			"providers": []any{map[string]any{"name": stormProvider, "kind": "oauth2", "client_id": "bench",
				"client_secret": "bench-client-secret", "token_url": fake.url + "/token"}},
			"refresh": map[string]any{"worker": false},
		})
		if err != nil {
			return nil, err
		}
		instances = append(instances, in)
	}
	defer func() {
		for _, in := range instances {
			in.stop()
		}
	}()

	api := apiClient(stormCallers)
	status, body, err := do(ctx, api, b.caller.credential, http.MethodPut, tokensURL(instances[0], stormUser, stormProvider),
		map[string]any{"access_token": "storm-access-0", "refresh_token": "storm-refresh-0", "expires_in": 3600})
	if err != nil || status != http.StatusOK {
		return nil, fmt.Errorf("storing the storm's token: %d %s %v", status, body, err)
	}
	conn, err := pgx.Connect(ctx, b.db.url(superuser, stormDatabase))
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)

	// A first burst on the still valid token (no refresh) opens the
	// connections the measured bursts reuse.
	for _, a := range burst(ctx, api, b.caller.credential, instances).answers {
		if a.err != "" || a.token != "storm-access-0" {
			return nil, fmt.Errorf("the warm-up burst (no refresh due) got %s", a)
		}
	}
	if st, err := providerStateOf(ctx, fake.url); err != nil || st.Calls != 0 {
		return nil, fmt.Errorf("%w: the provider was called %d times before the token expired (%v)", errInvalid, st.Calls, err)
	}
	res := &stormResult{}
	for r := range stormRounds {
		if _, err := conn.Exec(ctx, `UPDATE auth_tokens SET access_token_expires_at = clock_timestamp() - interval '1 minute'
			WHERE user_id = $1 AND provider = $2`, stormUser, stormProvider); err != nil {
			return nil, err
		}
		before, err := providerStateOf(ctx, fake.url)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		round := burst(ctx, api, b.caller.credential, instances)
		round.start, round.end = t0, time.Now()
		after, err := providerStateOf(ctx, fake.url)
		if err != nil {
			return nil, err
		}
		access := after.Access
		round.providerCalls = after.Calls - before.Calls
		round.calledAt, round.answeredAt = after.CalledAt, after.AnsweredAt
		// Every answer must be the token of the refresh just made.
		kept := round.latencies[:0]
		for _, a := range round.answers {
			if a.err != "" || a.token != access {
				round.wrongCount++
				if len(round.wrong) < 3 {
					round.wrong = append(round.wrong, a.String())
				}
				continue
			}
			kept = append(kept, a.latency)
		}
		round.latencies = kept
		progress("storm round %d/%d: %d provider call(s), %d right answers, %d wrong", r+1, stormRounds,
			round.providerCalls, len(round.latencies), round.wrongCount)
		res.rounds = append(res.rounds, round.stormRound)
	}
	last, err := providerStateOf(ctx, fake.url)
	if err != nil {
		return nil, err
	}
	res.reuses = last.Reuses
	for _, in := range instances {
		in.stop() // its log is complete
	}
	for i := range res.rounds {
		rd := &res.rounds[i]
		for _, in := range instances {
			d, err := requestDurations(in.logPath, "GET /v1/users/{user}/providers/{provider}/tokens", rd.start, rd.end)
			if err != nil {
				return nil, err
			}
			rd.server = append(rd.server, d...)
		}
	}
	return res, nil
}

// requestDurations reads an instance's request log: the duration_ms of
// every request to route logged (on completion) between from and to.
func requestDurations(logPath, route string, from, to time.Time) ([]time.Duration, error) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return nil, err
	}
	var out []time.Duration
	for line := range strings.Lines(string(b)) {
		var e struct {
			Time     time.Time `json:"time"`
			Msg      string    `json:"msg"`
			Route    string    `json:"route"`
			Duration float64   `json:"duration_ms"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Msg != "request" || e.Route != route {
			continue
		}
		if !e.Time.Before(from) && !e.Time.After(to) {
			out = append(out, time.Duration(e.Duration*float64(time.Millisecond)))
		}
	}
	return out, nil
}

type stormAnswer struct {
	token, err string
	status     int
	latency    time.Duration
}

func (a stormAnswer) String() string {
	if a.err != "" {
		return a.err
	}
	return fmt.Sprintf("%d with token %q", a.status, a.token)
}

type burstResult struct {
	stormRound
	answers []stormAnswer
}

// burst starts every caller at once and waits for all answers.
func burst(ctx context.Context, api *http.Client, cred string, instances []*server) burstResult {
	n := len(instances) * stormCallers
	answers := make([]stormAnswer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		in := instances[i%len(instances)]
		wg.Go(func() {
			<-start
			t0 := time.Now()
			status, body, err := do(ctx, api, cred, http.MethodGet, tokensURL(in, stormUser, stormProvider), nil)
			a := stormAnswer{status: status, latency: time.Since(t0)}
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			switch {
			case err != nil:
				a.err = err.Error()
			case status != http.StatusOK:
				a.err = strconv.Itoa(status) + " " + string(body)
			case json.Unmarshal(body, &tok) != nil:
				a.err = "unreadable answer"
			default:
				a.token = tok.AccessToken
			}
			answers[i] = a
		})
	}
	close(start)
	wg.Wait()
	r := burstResult{answers: answers}
	r.latencies = make([]time.Duration, 0, n)
	return r
}
