package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFakeProviderRotatesAndRefusesReuse(t *testing.T) {
	p := &fakeProvider{refresh: "r0", access: "a0"}
	srv := httptest.NewServer(p)
	defer srv.Close()
	refresh := func(rt string) (int, map[string]any) {
		resp, err := http.PostForm(srv.URL+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if status, body := refresh("r0"); status != 200 || body["access_token"] != "storm-access-1" || body["refresh_token"] != "storm-refresh-1" {
		t.Fatalf("first refresh: %d %v", status, body)
	}
	if status, body := refresh("r0"); status != 400 || body["error"] != "invalid_grant" {
		t.Errorf("a refresh token presented twice: %d %v, want 400 invalid_grant", status, body)
	}
	if st := p.state(); st.Calls != 2 || st.Reuses != 1 || st.Access != "storm-access-1" || st.AnsweredAt.Before(st.CalledAt) {
		t.Errorf("state: %+v", st)
	}
}

func TestRequestDurations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "storm.log")
	route := "GET /v1/users/{user}/providers/{provider}/tokens"
	lines := []string{
		`{"time":"2026-01-01T10:00:00.5Z","level":"INFO","msg":"starting tokenstore"}`,
		`{"time":"2026-01-01T10:00:01.1Z","level":"INFO","msg":"request","route":"` + route + `","status":200,"duration_ms":250.5}`,
		`{"time":"2026-01-01T10:00:01.2Z","level":"INFO","msg":"request","route":"GET /healthz","status":200,"duration_ms":1}`,
		`{"time":"2026-01-01T10:00:03Z","level":"INFO","msg":"request","route":"` + route + `","status":200,"duration_ms":9}`,
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 1, 1, 10, 0, 1, 0, time.UTC)
	got, err := requestDurations(path, route, from, from.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != 250500*time.Microsecond {
		t.Errorf("durations %v, want [250.5ms]", got)
	}
}
