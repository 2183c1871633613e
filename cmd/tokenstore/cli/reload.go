package cli

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
)

// reloader is one thing serve reads again on SIGHUP.
type reloader struct {
	// name says what is reloaded, in the log.
	name string
	// reload reads it again now; trigger ("SIGHUP") is for its log lines.
	// It logs its own outcome, and a failure keeps what was loaded.
	reload func(trigger string)
}

// reloaders is everything SIGHUP reloads, in order. It is the one list a
// new reloadable part (the keyring, issue 12) joins: add it in
// hangupReloaders.
type reloaders []reloader

// hangupReloaders lists what this configuration can reload: the TLS
// certificate, its key and the client CA file when TLS is on.
func hangupReloaders(cfg httpapi.Config, s *httpapi.Server) reloaders {
	var list reloaders
	if cfg.TLS() {
		list = append(list, reloader{name: "TLS certificate, key and client CA", reload: s.Reload})
	}
	return list
}

// notifyHangup catches SIGHUP from now on, so that it no longer stops the
// process (Go's default); the caller passes the channel to reloadOnHangup
// and calls stop when done.
func notifyHangup() (hup <-chan os.Signal, stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch, func() { signal.Stop(ch) }
}

// reloadOnHangup runs every reloader on each signal from hup until ctx
// ends. With nothing to reload it says so at INFO, so an operator's SIGHUP
// is answered either way.
func reloadOnHangup(ctx context.Context, hup <-chan os.Signal, list reloaders, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if len(list) == 0 {
				log.Info("SIGHUP received: nothing to reload (TLS is off); the server keeps serving")
				continue
			}
			for _, r := range list {
				log.Info("SIGHUP received: reloading", "what", r.name)
				r.reload("SIGHUP")
			}
		}
	}
}
