package cli

import (
	"io"
	"log/slog"
	"os"
)

// LogConfig selects the log format (json, text, or auto: text on a
// terminal) and level (debug, info, warn, error).
type LogConfig struct{ Format, Level string }

// NewLogger returns the process logger: JSON for machines, text for people
// at a terminal ("auto" decides by whether w is a terminal).
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
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
