package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
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

	mu   sync.Mutex
	addr net.Addr
	done chan error
}

// NewServer builds the server around the API handler (NewHandler).
func NewServer(cfg Config, log *slog.Logger, svc TokenService, auth *Authenticator, ready Checker) *Server {
	return &Server{
		cfg: cfg,
		log: log,
		srv: &http.Server{
			Handler:           NewHandler(log, svc, auth, ready),
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			ReadTimeout:       cfg.ReadTimeout,
			WriteTimeout:      cfg.WriteTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			MaxHeaderBytes:    32 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
}

// Start listens on the configured address and serves in a goroutine.
func (s *Server) Start(context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (TOKENSTORE_HTTP_ADDR): %w; is another process using the port?", s.cfg.Addr, err)
	}
	done := make(chan error, 1)
	s.mu.Lock()
	s.addr = ln.Addr()
	s.done = done
	s.mu.Unlock()
	s.log.Info("listening", "addr", ln.Addr().String())
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	return nil
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
