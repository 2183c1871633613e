package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenstore/tokenstore/adapters/secretfile"
)

// The settings the TLS errors name.
const (
	settingCertFile  = "TOKENSTORE_HTTP_TLS_CERT_FILE (http.tls_cert_file)"
	settingKeyFile   = "TOKENSTORE_HTTP_TLS_KEY_FILE (http.tls_key_file)"
	settingClientCA  = "TOKENSTORE_HTTP_CLIENT_CA_FILE (http.client_ca_file)"
	settingPlaintext = "TOKENSTORE_HTTP_PLAINTEXT (http.plaintext)"
)

// DefaultCertPollInterval is how often the certificate, key and client CA
// files are checked for a change: a stat of each, so cheap enough to do
// often.
const DefaultCertPollInterval = 2 * time.Second

// TLS reports whether the server speaks TLS (a certificate is configured).
func (c Config) TLS() bool { return c.TLSCertFile != "" }

// validateTransport is the transport's part of Validate: TLS settings that
// go together, and no plain HTTP beyond loopback unless the operator says
// the transport is protected elsewhere.
func (c Config) validateTransport() error {
	switch {
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return fmt.Errorf("%s and %s go together: set both or neither", settingCertFile, settingKeyFile)
	case c.ClientCAFile != "" && !c.TLS():
		return fmt.Errorf("%s checks client certificates, which only TLS carries: set %s and %s too", settingClientCA, settingCertFile, settingKeyFile)
	case c.Plaintext && c.TLS():
		return fmt.Errorf("%s says the transport is protected elsewhere, but %s turns TLS on: keep one", settingPlaintext, settingCertFile)
	case !c.TLS() && !c.Plaintext && !Loopback(c.Addr):
		return fmt.Errorf("http.addr %s is not a loopback address and the API would answer in plain HTTP, bearer credentials and tokens included: "+
			"set %s and %s, or, when a service mesh or sidecar already protects the transport, set %s to true", c.Addr, settingCertFile, settingKeyFile, settingPlaintext)
	}
	return nil
}

// Loopback reports whether addr (host:port) can only be reached from this
// machine: a loopback IP or "localhost". An empty host is every interface.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckFiles refuses, when the configuration is loaded, a TLS file setting
// that names no file, or a key file others may read (the secret-file
// rule); their content is read, and checked, when the server starts.
func (c Config) CheckFiles() error {
	for _, f := range []struct{ path, setting string }{{c.TLSCertFile, settingCertFile}, {c.ClientCAFile, settingClientCA}} {
		if f.path == "" {
			continue
		}
		if info, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.setting, err)
		} else if !info.Mode().IsRegular() {
			return fmt.Errorf("%s: %s is not a file", f.setting, f.path)
		}
	}
	if c.TLSKeyFile != "" {
		return secretfile.Check(c.TLSKeyFile, settingKeyFile)
	}
	return nil
}

// alpn is what the server offers in ALPN, as net/http's ServeTLS would
// set it: the configuration handed out for each handshake must say it
// again, or HTTP/2 would be lost.
var alpn = []string{"h2", "http/1.1"}

// tlsFiles holds the certificate pair and the client CA pool and replaces
// either when its files change (checked every poll interval) or when
// Server.Reload is called (serve does on SIGHUP). What a handshake uses is
// one *tls.Config, replaced whole at each reload and handed out by
// GetConfigForClient: a reload applies from the next handshake, and open
// connections keep what they negotiated. A part that cannot be loaded
// leaves its current value in place; the error, logged once, names the
// file and never quotes its content.
type tlsFiles struct {
	certFile, keyFile, caFile string
	log                       *slog.Logger
	cur                       atomic.Pointer[tls.Config] // what new handshakes use

	mu       sync.Mutex // serializes reloads; guards the fields below
	pair     *tls.Certificate
	pool     *x509.CertPool // nil: no client certificates asked for
	seenPair [2]os.FileInfo // the files as last loaded or tried
	seenCA   os.FileInfo
}

// newTLSFiles loads every file once: one that cannot be loaded fails
// start-up.
func newTLSFiles(c Config, log *slog.Logger) (*tlsFiles, error) {
	f := &tlsFiles{certFile: c.TLSCertFile, keyFile: c.TLSKeyFile, caFile: c.ClientCAFile, log: log}
	f.seenPair, f.seenCA = f.stat()
	var err error
	if f.pair, err = loadPair(f.certFile, f.keyFile, time.Now()); err != nil {
		return nil, err
	}
	if f.caFile != "" {
		if f.pool, _, err = loadClientCAs(f.caFile); err != nil {
			return nil, err
		}
	}
	f.publish()
	return f, nil
}

// serverConfig is the server's TLS configuration: TLS 1.2 or newer, and
// for each handshake the current pair and client CAs. With client CAs a
// presented certificate is verified against them, and a client may also
// connect without one.
func (f *tlsFiles) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         alpn,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return f.cur.Load(), nil },
	}
}

// publish makes the current pair and pool what new handshakes use. A
// session resumed from before a reload is verified again (crypto/tls checks
// the session's chain against the handshake's ClientCAs), so a client of a
// CA taken out of the file cannot resume its way back in.
func (f *tlsFiles) publish() {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: alpn, Certificates: []tls.Certificate{*f.pair}}
	if f.pool != nil {
		cfg.ClientCAs, cfg.ClientAuth = f.pool, tls.VerifyClientCertIfGiven
	}
	f.cur.Store(cfg)
}

// watch reloads a part when its files change, until ctx ends. Each
// change is tried once: a broken file is reported once, not at every
// tick, and tried again when it changes again.
func (f *tlsFiles) watch(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f.mu.Lock()
			pair, ca := f.stat()
			if !sameFiles(pair[:], f.seenPair[:]) {
				f.seenPair = pair
				f.reloadPair("file change")
			}
			if !sameFiles([]os.FileInfo{ca}, []os.FileInfo{f.seenCA}) {
				f.seenCA = ca
				f.reloadCA("file change")
			}
			f.mu.Unlock()
		}
	}
}

// reload reads every file again now, changed or not.
func (f *tlsFiles) reload(trigger string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seenPair, f.seenCA = f.stat()
	f.reloadPair(trigger)
	f.reloadCA(trigger)
}

func (f *tlsFiles) reloadPair(trigger string) {
	pair, err := loadPair(f.certFile, f.keyFile, time.Now())
	if err != nil {
		f.log.Error("TLS certificate not reloaded; still serving the previous one", "trigger", trigger, "err", err)
		return
	}
	f.pair = pair
	f.publish()
	f.log.Info("TLS certificate reloaded", "trigger", trigger, "cert_file", f.certFile,
		"subject", pair.Leaf.Subject.String(), "not_after", pair.Leaf.NotAfter)
}

func (f *tlsFiles) reloadCA(trigger string) {
	if f.caFile == "" {
		return
	}
	pool, n, err := loadClientCAs(f.caFile)
	if err != nil {
		f.log.Error("TLS client CA not reloaded; still verifying client certificates against the previous CAs", "trigger", trigger, "err", err)
		return
	}
	f.pool = pool
	f.publish()
	f.log.Info("TLS client CA reloaded", "trigger", trigger, "client_ca_file", f.caFile, "certificates", n)
}

// stat follows symbolic links, so a Kubernetes secret volume's swap of its
// ..data link counts as a change. A missing file is nil.
func (f *tlsFiles) stat() (pair [2]os.FileInfo, ca os.FileInfo) {
	pair[0], _ = os.Stat(f.certFile)
	pair[1], _ = os.Stat(f.keyFile)
	if f.caFile != "" {
		ca, _ = os.Stat(f.caFile)
	}
	return pair, ca
}

func sameFiles(a, b []os.FileInfo) bool {
	for i := range a {
		switch {
		case a[i] == nil || b[i] == nil:
			if a[i] != b[i] {
				return false
			}
		case !os.SameFile(a[i], b[i]) || !a[i].ModTime().Equal(b[i].ModTime()) || a[i].Size() != b[i].Size():
			return false
		}
	}
	return true
}

// loadClientCAs reads http.client_ca_file: PEM certificates, text between
// them allowed (as in CA bundles), into a pool; n counts them. Anything else is refused rather than
// skipped: a key, a block that is not a certificate, a certificate that
// does not parse, or a truncated block (a file caught half written), which
// would otherwise drop a CA and refuse its clients in silence.
func loadClientCAs(file string) (pool *x509.CertPool, n int, err error) {
	rest, err := os.ReadFile(file)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", settingClientCA, err)
	}
	pool = x509.NewCertPool()
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		n++
		if block.Type != "CERTIFICATE" {
			return nil, 0, fmt.Errorf("%s: block %d of %s is a %q, not a CERTIFICATE", settingClientCA, n, file, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: certificate %d of %s: %w", settingClientCA, n, file, err)
		}
		pool.AddCert(cert)
	}
	switch {
	case bytes.Contains(rest, []byte("-----BEGIN")):
		return nil, 0, fmt.Errorf("%s: %s ends in a PEM block that does not decode (truncated?) after %d certificate(s)", settingClientCA, file, n)
	case n == 0:
		return nil, 0, fmt.Errorf("%s: %s holds no PEM certificate", settingClientCA, file)
	}
	return pool, n, nil
}

// loadPair reads the certificate chain and its key (the key file under the
// secret-file rule) and refuses a certificate that is not valid at now.
func loadPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", settingCertFile, err)
	}
	keyPEM, err := secretfile.Read(keyFile, settingKeyFile)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, []byte(keyPEM))
	if err != nil {
		// crypto/tls's errors name what is wrong, never the PEM content.
		return nil, fmt.Errorf("%s %s and %s %s: %w", settingCertFile, certFile, settingKeyFile, keyFile, err)
	}
	if pair.Leaf == nil {
		return nil, errors.New(settingCertFile + ": no certificate")
	}
	switch leaf := pair.Leaf; {
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("%s: the certificate in %s expired at %s", settingCertFile, certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("%s: the certificate in %s is not valid before %s", settingCertFile, certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &pair, nil
}
