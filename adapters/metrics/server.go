package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
)

// DefaultAddr is where /metrics is served unless configured: loopback,
// so the series (caller and provider names, volumes) stay on the machine
// until the operator chooses an address a scraper can reach.
const DefaultAddr = "127.0.0.1:9090"

// Config is the metrics listener's configuration (metrics.* settings).
type Config struct {
	// Addr is host:port; "" serves no metrics. Port 0 picks a free port
	// (tests).
	Addr string
	// Pprof adds net/http/pprof under /debug/pprof/ on the same listener.
	// Only on a loopback Addr (Validate).
	Pprof bool
}

// Validate refuses pprof on an address other machines can reach: a
// profile shows the process's internals and any client could start a
// 30-second CPU profile. Metrics alone may be served anywhere: they carry
// no secret and no user id.
func (c Config) Validate() error {
	if c.Pprof && c.Addr == "" {
		return errors.New("TOKENSTORE_METRICS_PPROF (metrics.pprof) is on but TOKENSTORE_METRICS_ADDR (metrics.addr) is empty: pprof is served on the metrics listener; give it an address")
	}
	if c.Pprof && !httpapi.Loopback(c.Addr) {
		return fmt.Errorf("TOKENSTORE_METRICS_PPROF (metrics.pprof) is on and TOKENSTORE_METRICS_ADDR (metrics.addr) %s is not a loopback address: "+
			"profiles expose the process's internals; serve them on 127.0.0.1 and reach them through a port forward", c.Addr)
	}
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return fmt.Errorf("TOKENSTORE_METRICS_ADDR (metrics.addr) %q is not host:port", c.Addr)
		}
	}
	return nil
}

// Server serves /metrics (and /debug/pprof/ when configured) on its own
// listener, apart from the API: scrapers need no caller credential, and
// the API's port answers only callers.
type Server struct {
	cfg Config
	log *slog.Logger
	srv *http.Server

	mu   sync.Mutex
	addr net.Addr
	done chan error
}

// NewServer returns the metrics server of m. log may be nil (discard).
func NewServer(cfg Config, m *Metrics, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn), ErrorHandling: promhttp.ContinueOnError,
	}))
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return &Server{cfg: cfg, log: log, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		// A CPU profile or trace runs for up to its ?seconds= (30 by
		// default): leave it room.
		WriteTimeout: 2 * time.Minute,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
}

// Start binds the address (a busy port fails start-up) and serves in the
// background; with no address it does nothing.
func (s *Server) Start(context.Context) error {
	if s.cfg.Addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (TOKENSTORE_METRICS_ADDR / metrics.addr): %w", s.cfg.Addr, err)
	}
	done := make(chan error, 1)
	s.mu.Lock()
	s.addr, s.done = ln.Addr(), done
	s.mu.Unlock()
	s.log.Info("serving metrics", "addr", ln.Addr().String(), "pprof", s.cfg.Pprof)
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	return nil
}

// Addr is the bound address once started, "" when not serving.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr == nil {
		return ""
	}
	return s.addr.String()
}

// Stop closes the listener and waits for scrapes in flight, or for ctx.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	done := s.done
	s.done = nil
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
		return fmt.Errorf("stop the metrics server: %w", err)
	}
	return <-done
}
