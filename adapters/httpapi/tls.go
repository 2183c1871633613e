package httpapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
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

// DefaultCertPollInterval is how often the certificate and key files are
// checked for a change: a stat of each, so cheap enough to do often.
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

// newTLSConfig builds the server's TLS configuration: TLS 1.2 or newer, the
// certificate from reloader (read at each handshake, so a reload applies to
// new connections while open ones keep theirs), and, with a client CA,
// client certificates verified against it when presented.
func newTLSConfig(c Config, reloader *certReloader) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: reloader.get}
	if c.ClientCAFile != "" {
		pemCerts, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", settingClientCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemCerts) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", settingClientCA, c.ClientCAFile)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// certReloader holds the current certificate and key pair and replaces it
// when the files change (checked every poll interval) or on SIGHUP. A pair
// that cannot be loaded leaves the current one in place; the error, logged,
// names the file and never quotes its content.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	cur               atomic.Pointer[tls.Certificate]
	seen              [2]os.FileInfo // the files as last loaded or tried
}

// newCertReloader loads the pair once: a pair that cannot be loaded fails
// start-up.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	r.seen = r.stat()
	pair, err := loadPair(certFile, keyFile, time.Now())
	if err != nil {
		return nil, err
	}
	r.cur.Store(pair)
	return r, nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.cur.Load(), nil }

// run reloads on SIGHUP and when either file changes, until ctx ends.
func (r *certReloader) run(ctx context.Context, every time.Duration) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.seen = r.stat()
			r.reload("SIGHUP")
		case <-tick.C:
			// Tried once per change: a broken file is reported once, not at
			// every tick, and retried when it changes again.
			if now := r.stat(); !sameFiles(now, r.seen) {
				r.seen = now
				r.reload("file change")
			}
		}
	}
}

func (r *certReloader) reload(trigger string) {
	pair, err := loadPair(r.certFile, r.keyFile, time.Now())
	if err != nil {
		r.log.Error("TLS certificate not reloaded; still serving the previous one", "trigger", trigger, "err", err)
		return
	}
	r.cur.Store(pair)
	r.log.Info("TLS certificate reloaded", "trigger", trigger, "cert_file", r.certFile,
		"subject", pair.Leaf.Subject.String(), "not_after", pair.Leaf.NotAfter)
}

// stat follows symbolic links, so a Kubernetes secret volume's swap of its
// ..data link counts as a change. A missing file is nil.
func (r *certReloader) stat() (fi [2]os.FileInfo) {
	fi[0], _ = os.Stat(r.certFile)
	fi[1], _ = os.Stat(r.keyFile)
	return fi
}

func sameFiles(a, b [2]os.FileInfo) bool {
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
