package api_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/tests/servicetest"
)

// BenchmarkReadsTLS compares token reads over HTTPS with reads over plain
// HTTP, from two instances on the same database in the same run, as a
// ratio (x-plain: a TLS read's time over a plain read's), so the figure
// means the same on any machine. keepalive reuses connections, as a
// service's HTTP client does; new-connection pays a full handshake (ECDSA
// P-256, TLS 1.3) on every read.
func BenchmarkReadsTLS(b *testing.B) {
	plain := servicetest.Start(b, servicetest.Options{})
	secure := servicetest.Start(b, servicetest.Options{TLS: true, DSN: plain.DSN, Keys: plain.Keys})
	const path = "/v1/users/bench/providers/gitlab/tokens"
	put, _ := http.NewRequest("PUT", plain.Instances[0].URL+path,
		strings.NewReader(`{"access_token":"glpat-bench-0123456789","refresh_token":"glrt-bench-0123456789","expires_in":86400}`))
	put.Header.Set("Authorization", "Bearer "+plain.Credentials[servicetest.CallerAll])
	put.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(put); err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("PUT: %v %v", resp, err)
	}

	for _, mode := range []struct {
		name      string
		keepAlive bool
	}{{"keepalive", true}, {"new-connection", false}} {
		b.Run(mode.name, func(b *testing.B) {
			client := func(c *servicetest.Cluster) func() {
				tr := &http.Transport{DisableKeepAlives: !mode.keepAlive, MaxIdleConnsPerHost: 4}
				if c.CA != nil {
					tr.TLSClientConfig = &tls.Config{RootCAs: c.CA.Pool()}
				}
				b.Cleanup(tr.CloseIdleConnections)
				hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
				url, cred := c.Instances[0].URL+path, "Bearer "+c.Credentials[servicetest.CallerAll]
				return func() {
					req, _ := http.NewRequest("GET", url, nil)
					req.Header.Set("Authorization", cred)
					resp, err := hc.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("GET: %d", resp.StatusCode)
					}
				}
			}
			plainRead, tlsRead := client(plain), client(secure)
			for range 50 { // warm pools and connections
				plainRead()
				tlsRead()
			}
			var base, full time.Duration
			timed := func(read func()) time.Duration { start := time.Now(); read(); return time.Since(start) }
			first := false
			for b.Loop() {
				// Interleaved, each side first in turn, so machine noise
				// hits both alike.
				if first = !first; first {
					base += timed(plainRead)
					full += timed(tlsRead)
				} else {
					full += timed(tlsRead)
					base += timed(plainRead)
				}
			}
			b.ReportMetric(float64(full)/float64(base), "x-plain")
			b.ReportMetric(float64(base.Microseconds())/float64(b.N), "µs-plain/op")
			b.ReportMetric(float64(full.Microseconds())/float64(b.N), "µs-tls/op")
		})
	}
}
