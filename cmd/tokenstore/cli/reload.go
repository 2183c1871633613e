package cli

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"go.uber.org/fx"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
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
// new reloadable part joins: add it in hangupReloaders.
type reloaders []reloader

// hangupIn is what SIGHUP can reload. Keys is how serve loaded its keys;
// a graph built without it (tests) has no keyring to reload.
type hangupIn struct {
	fx.In
	HTTP      httpapi.Config
	Server    *httpapi.Server
	Keys      keyLoader `optional:"true"`
	Keyring   *fernet.SwappableKeyring
	Stored    ports.KeyInventory
	Heartbeat *app.KeyringHeartbeat
	Log       *slog.Logger
}

// hangupReloaders lists what this configuration can reload: the TLS
// certificate, its key and the client CA file when TLS is on, and the
// keyring.
func hangupReloaders(in hangupIn) reloaders {
	var list reloaders
	if in.HTTP.TLS() {
		list = append(list, reloader{name: "TLS certificate, key and client CA", reload: in.Server.Reload})
	}
	if in.Keys != nil {
		r := keyringReload{load: in.Keys, ring: in.Keyring, stored: in.Stored, heartbeat: in.Heartbeat, log: in.Log}
		list = append(list, reloader{name: "keyring", reload: r.reload})
	}
	return list
}

// keyLoader loads the configuration again from the sources serve started
// with (the same config file path, environment and --dev), for the keys.
type keyLoader func() (Config, error)

// keyringReload replaces the server's keyring with a newly loaded one,
// unless the new one would leave stored values unreadable.
type keyringReload struct {
	load      keyLoader
	ring      *fernet.SwappableKeyring
	stored    ports.KeyInventory
	heartbeat *app.KeyringHeartbeat
	log       *slog.Logger
}

// keyringReloadTimeout bounds the database queries of one reload.
const keyringReloadTimeout = 30 * time.Second

// reload loads the keys, builds the keyring, checks that it opens every
// stored value (app.CheckKeyring) and swaps it in whole; on any failure the
// current keyring stays and an ERROR line says why, naming key ids (never
// key material). A new keyring is recorded at once (heartbeat).
func (k keyringReload) reload(trigger string) {
	ctx, cancel := context.WithTimeout(context.Background(), keyringReloadTimeout)
	defer cancel()
	cfg, err := k.load()
	if err == nil && len(cfg.Keys.Keys) == 0 {
		err = errNoKeys
	}
	var next *fernet.Keyring
	if err == nil {
		next, err = fernet.NewKeyringFromConfig(cfg.Keys)
	}
	if err != nil {
		k.log.Error("keyring not reloaded: the keys cannot be loaded; the current keyring stays in use",
			"trigger", trigger, "err", err)
		return
	}
	if err := app.CheckKeyring(ctx, k.stored, next.Keys()); err != nil {
		attrs := []any{"trigger", trigger, "primary", next.PrimaryKeyID(), "keys", next.Keys(), "err", err}
		if missing, ok := errors.AsType[*app.MissingKeysError](err); ok {
			ids := make([]domain.KeyID, len(missing.Missing))
			for i, m := range missing.Missing {
				ids[i] = m.KeyID
			}
			attrs = append(attrs, "missing_key_ids", ids)
		}
		k.log.Error("keyring not reloaded: it would leave stored values unreadable; the current keyring stays in use", attrs...)
		return
	}
	old := k.ring.Swap(next)
	if slices.Equal(old.Keys(), next.Keys()) {
		k.log.Info("keyring reloaded: unchanged", "trigger", trigger, "primary", next.PrimaryKeyID(), "keys", next.Keys())
	} else {
		k.log.Info("keyring reloaded", "trigger", trigger, "primary", next.PrimaryKeyID(), "keys", next.Keys(),
			"previous_primary", old.PrimaryKeyID(), "previous_keys", old.Keys(), "key_source", cfg.KeySource)
	}
	if err := k.heartbeat.Beat(ctx); err != nil {
		k.log.Warn("could not record the reloaded keyring; the next heartbeat tries again", "err", err)
	}
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
				log.Info("SIGHUP received: nothing to reload; the server keeps serving")
				continue
			}
			for _, r := range list {
				log.Info("SIGHUP received: reloading", "what", r.name)
				r.reload("SIGHUP")
			}
		}
	}
}
