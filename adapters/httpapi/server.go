package httpapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tokenstore/tokenstore/app"
)

// Config is the HTTP server's configuration.
type Config struct {
	// Addr to listen on, host:port. Port 0 picks a free port (tests).
	Addr              string
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// ShutdownTimeout bounds how long Stop waits for in-flight requests.
	ShutdownTimeout time.Duration

	// TLSCertFile and TLSKeyFile (a PEM chain, leaf first, and its key,
	// the key file private) turn TLS on. ClientCAFile verifies client
	// certificates, when presented, against its PEM certificates. All
	// three are reloaded when they change, or at Server.Reload. Plaintext allows plain HTTP
	// beyond loopback, for a transport protected elsewhere (a service
	// mesh, a sidecar).
	TLSCertFile, TLSKeyFile, ClientCAFile string
	Plaintext                             bool
	// CertPollInterval is how often the TLS files are checked for a
	// change (0: DefaultCertPollInterval).
	CertPollInterval time.Duration
}

// MaxEventWait is the longest GET /v1/events may wait for events with
// this configuration: app.MaxEventWait, kept 5 s below WriteTimeout (which
// would cut a longer answer off); 0 when WriteTimeout leaves no room.
func (c Config) MaxEventWait() time.Duration {
	if c.WriteTimeout <= 0 {
		return app.MaxEventWait
	}
	return min(app.MaxEventWait, max(c.WriteTimeout-5*time.Second, 0))
}

// DefaultConfig listens on loopback with timeouts that bound slow clients.
func DefaultConfig() Config {
	return Config{
		Addr:              "127.0.0.1:8080",
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ShutdownTimeout:   20 * time.Second,
	}
}

// Server is the API server. Start binds the port (so a busy port fails
// start-up, not a goroutine later) and serves in the background; Stop
// drains in-flight requests.
type Server struct {
	cfg Config
	log *slog.Logger
	srv *http.Server

	mu         sync.Mutex
	addr       net.Addr
	done       chan error
	tls        *tlsFiles // nil without TLS, or before Start
	stopReload context.CancelFunc
}

// NewServer builds the server around the API handler (NewHandler, with
// opts).
func NewServer(cfg Config, log *slog.Logger, svc TokenService, auth *Authenticator, ready Checker, opts ...Option) *Server {
	return &Server{
		cfg: cfg,
		log: log,
		srv: &http.Server{
			Handler:           NewHandler(log, svc, auth, ready, opts...),
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			ReadTimeout:       cfg.ReadTimeout,
			WriteTimeout:      cfg.WriteTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			MaxHeaderBytes:    32 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
}

// Start listens on the configured address and serves in a goroutine. With
// TLS, the certificate, its key and the client CA file are loaded first (a
// file that cannot be loaded fails start-up) and watched for the server's
// life.
func (s *Server) Start(context.Context) error {
	var files *tlsFiles
	if s.cfg.TLS() {
		var err error
		if files, err = newTLSFiles(s.cfg, s.log); err != nil {
			return err
		}
		s.srv.TLSConfig = files.serverConfig()
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (TOKENSTORE_HTTP_ADDR): %w; is another process using the port?", s.cfg.Addr, err)
	}
	done := make(chan error, 1)
	reloadCtx, stopReload := context.WithCancel(context.Background())
	s.mu.Lock()
	s.addr = ln.Addr()
	s.done = done
	s.tls = files
	s.stopReload = stopReload
	s.mu.Unlock()
	s.log.Info("listening", "addr", ln.Addr().String(), "tls", files != nil, "client_certificates", s.cfg.ClientCAFile != "")
	if files != nil {
		go files.watch(reloadCtx, cmp.Or(s.cfg.CertPollInterval, DefaultCertPollInterval))
	}
	go func() {
		var err error
		if files != nil {
			err = s.srv.ServeTLS(ln, "", "") // the certificate comes from TLSConfig
		} else {
			err = s.srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	return nil
}

// Reload reads the TLS certificate pair and the client CA file again now,
// whether they changed or not, and logs what it did under trigger (such as
// "SIGHUP"): each part that loads serves from the next handshake, one that
// fails keeps the previous one and is logged at ERROR naming its file. It
// does nothing without TLS or before Start (which loads them anyway).
func (s *Server) Reload(trigger string) {
	s.mu.Lock()
	files := s.tls
	s.mu.Unlock()
	if files != nil {
		files.reload(trigger)
	}
}

// URL is the server's base URL once started: https://host:port with TLS,
// http://host:port without.
func (s *Server) URL() string {
	if s.cfg.TLS() {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// Addr is the bound address once started.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr == nil {
		return ""
	}
	return s.addr.String()
}

// Stop stops accepting connections and waits for in-flight requests, up to
// ShutdownTimeout or ctx's deadline, whichever comes first.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopReload != nil {
		s.stopReload() // open connections keep their certificate
	}
	s.mu.Unlock()
	if s.cfg.ShutdownTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
		defer cancel()
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
		return fmt.Errorf("drain HTTP requests: %w", err)
	}
	s.mu.Lock()
	done := s.done
	s.done = nil // a second Stop has nothing left to wait for
	s.mu.Unlock()
	if done != nil {
		return <-done
	}
	return nil
}
