package main

import (
	"strings"
	"testing"
	"time"
)

func TestSettings(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	s, err := settingsFromEnv("bin/tokenstore", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s.duration != 10*time.Second || s.rounds != 3 || s.warmup != 2*time.Second || strings.Join(s.parts, ",") != "http,storm,reencrypt,memory" || s.memLimit != "64MiB" || s.keep || s.maxConns != 0 {
		t.Errorf("defaults %+v", s)
	}
	s, err = settingsFromEnv("b", env(map[string]string{"BENCH_DURATION": "5s", "BENCH_ROUNDS": "1",
		"BENCH_ONLY": "storm, memory,storm", "BENCH_KEEP": "1", "BENCH_WARMUP": "0s", "BENCH_MAX_CONNS": "16", "BENCH_GOMEMLIMIT": "off"}))
	if err != nil {
		t.Fatal(err)
	}
	if s.duration != 5*time.Second || s.rounds != 1 || strings.Join(s.parts, ",") != "storm,memory" || s.memLimit != "off" || !s.keep || s.warmup != 0 || s.maxConns != 16 {
		t.Errorf("parsed %+v", s)
	}
	for name, v := range map[string]string{
		"BENCH_DURATION": "2.5s", "BENCH_ROUNDS": "0", "BENCH_ONLY": "http,get", "BENCH_KEEP": "yes", "BENCH_WARMUP": "x",
		"BENCH_MAX_CONNS": "0", "BENCH_GOMEMLIMIT": "64 MiB",
	} {
		_, err := settingsFromEnv("b", env(map[string]string{name: v}))
		if err == nil || !strings.Contains(err.Error(), name+"=") {
			t.Errorf("%s=%s: err %v, want one naming the variable", name, v, err)
		}
	}
	if _, err := settingsFromEnv("b", env(map[string]string{"BENCH_DURATION": "0s"})); err == nil {
		t.Error("BENCH_DURATION=0s accepted")
	}
}

func TestMedian(t *testing.T) {
	if median([]float64{3, 1, 2}) != 2 || median([]float64{4, 1, 3, 2}) != 2.5 || median(nil) != 0 {
		t.Error("median")
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 13489.6: "13,490", 1234567: "1,234,567"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %s, want %s", in, got, want)
		}
	}
}
