package cli

import (
	"context"
	"io"
	"log/slog"
	"os"
)

// LogConfig selects the log format (json, text, or auto: text on a
// terminal) and level (debug, info, warn, error).
type LogConfig struct{ Format, Level string }

// NewLogger returns the process logger: JSON for machines, text for people
// at a terminal ("auto" decides by whether w is a terminal). When w buffers
// (a *LogStream, or any writer with a Flush() error method), every line at
// WARN or above is flushed at once with what waited before it: operators
// tail the log during an incident.
func NewLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.Format
	if format == "" || format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	if f, ok := w.(flusher); ok {
		h = flushOnWarn{h, f}
	}
	return slog.New(h)
}

type flusher interface{ Flush() error }

// flushOnWarn flushes its writer after each record at slog.LevelWarn or
// above.
type flushOnWarn struct {
	slog.Handler
	w flusher
}

func (h flushOnWarn) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		_ = h.w.Flush()
	}
	return err
}

func (h flushOnWarn) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushOnWarn{h.Handler.WithAttrs(attrs), h.w}
}

func (h flushOnWarn) WithGroup(name string) slog.Handler {
	return flushOnWarn{h.Handler.WithGroup(name), h.w}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
