package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"
)

// defaultHealthcheckTimeout bounds the whole check (connect, TLS, answer):
// below the image's HEALTHCHECK --timeout, so the command reports its own
// reason instead of being killed.
const defaultHealthcheckTimeout = 4 * time.Second

func runHealthcheck(ctx context.Context, args []string, env Env) error {
	fs := newFlags("healthcheck", `Usage: tokenstore healthcheck [--dev] [--config FILE] [--url URL] [--ca-file FILE] [--timeout D]

Asks the server this configuration describes whether it is ready (GET
/readyz) and exits 0 when it answers 200, 1 otherwise, printing one line
either way. It is the container image's HEALTHCHECK (the image has no curl).

The URL defaults to http.addr (TOKENSTORE_HTTP_ADDR): every interface
(0.0.0.0, ::, or no host) is asked on its loopback address, and https is
used when http.tls_cert_file is set. With TLS and no --ca-file, the server
must present exactly the certificate http.tls_cert_file holds (whatever
names it carries: the check connects on loopback); --ca-file trusts that
CA instead and checks the URL's host name as any client would.
/readyz, not /healthz: a container that cannot reach its database or runs
behind the schema should not count as healthy to docker-compose's
depends_on or a load balancer; use --url .../healthz for liveness only.
`, env)
	flags := addConfigFlags(fs, true)
	rawURL := fs.String("url", "", "the URL to GET (default: /readyz on http.addr, see above)")
	caFile := fs.String("ca-file", "", "PEM CA certificates to trust for https (default: the certificate of http.tls_cert_file, or the system's roots without TLS settings)")
	timeout := fs.Duration("timeout", defaultHealthcheckTimeout, "deadline of the whole check")
	words, err := parseArgs(fs, args, env)
	if err != nil {
		return err
	}
	if len(words) != 0 {
		fs.Usage()
		return fmt.Errorf("healthcheck: unexpected %q", words[0])
	}
	if *timeout <= 0 {
		return errors.New("healthcheck: --timeout must be positive, such as 3s")
	}
	cfg, _, err := flags.load(env, env.Stderr, false)
	if err != nil {
		return err
	}
	target := *rawURL
	if target == "" {
		if target, err = readyURL(cfg.HTTP.Addr, cfg.HTTP.TLS()); err != nil {
			return err
		}
	} else if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("healthcheck: --url %q is not an http:// or https:// URL", target)
	}
	tlsCfg, err := healthcheckTLS(*caFile, cfg.HTTP.TLSCertFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	status, body, err := probe(ctx, target, tlsCfg)
	if err != nil {
		return fmt.Errorf("healthcheck: %s: %w", target, err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d: %s", target, status, body)
	}
	fmt.Fprintf(env.Stdout, "healthcheck: %s answered 200\n", target)
	return nil
}

// readyURL is the /readyz URL of a server listening on addr (host:port).
func readyURL(addr string, withTLS bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return "", fmt.Errorf("healthcheck: TOKENSTORE_HTTP_ADDR (http.addr) %q names no fixed port: give --url", addr)
	}
	switch ip := net.ParseIP(host); {
	case host == "" || ip != nil && ip.Equal(net.IPv4zero):
		host = "127.0.0.1"
	case ip != nil && ip.Equal(net.IPv6unspecified):
		host = "::1"
	}
	scheme := "http"
	if withTLS {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port), Path: "/readyz"}).String(), nil
}

// healthcheckTLS says whom an https check trusts: the CAs of caFile with
// the usual host name check; otherwise, when the server has a certificate
// file, exactly the leaf it holds (the check asks on loopback, a name the
// certificate rarely carries); otherwise the system's roots.
func healthcheckTLS(caFile, certFile string) (*tls.Config, error) {
	switch {
	case caFile != "":
		pemCerts, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("healthcheck: --ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemCerts) {
			return nil, fmt.Errorf("healthcheck: --ca-file: %s holds no PEM certificate", caFile)
		}
		return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
	case certFile != "":
		return &tls.Config{
			MinVersion: tls.VersionTLS12,
			// Verification is VerifyConnection's: the presented leaf must be
			// the configured one, read at the moment of the check (a reloaded
			// file is what the server serves once it has reloaded).
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				want, err := leafOf(certFile)
				if err != nil {
					return err
				}
				if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
					return fmt.Errorf("the server's certificate is not the one in TOKENSTORE_HTTP_TLS_CERT_FILE (http.tls_cert_file) %s: give --ca-file to trust a CA instead", certFile)
				}
				return nil
			},
		}, nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}, nil
}

// leafOf is the DER of the first certificate in a PEM file.
func leafOf(certFile string) ([]byte, error) {
	raw, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("TOKENSTORE_HTTP_TLS_CERT_FILE (http.tls_cert_file): %w", err)
	}
	for block, rest := pem.Decode(raw); block != nil; block, rest = pem.Decode(rest) {
		if block.Type == "CERTIFICATE" {
			return block.Bytes, nil
		}
	}
	return nil, fmt.Errorf("TOKENSTORE_HTTP_TLS_CERT_FILE (http.tls_cert_file): %s holds no PEM certificate", certFile)
}

// probe GETs target once, without following redirects or reusing
// connections, and returns the status and a printable excerpt of the body.
func probe(ctx context.Context, target string, tlsCfg *tls.Config) (int, string, error) {
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	return resp.StatusCode, printable(body), nil
}

// printable keeps an answer's excerpt on one line of visible text.
func printable(b []byte) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, strings.ToValidUTF8(string(b), "?")))
}
