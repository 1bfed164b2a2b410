package settings

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// LogLevel is debug, info, warn or error: every binary's log_level.
func LogLevel(p *slog.Level) Value { return Func(p, "level", ParseLogLevel) }

// LogFormat is json or text: every binary's log_format.
func LogFormat(p *string) Value {
	return Func(p, "format", func(s string) (string, error) {
		if s != "json" && s != "text" {
			return "", fmt.Errorf("log format %q is not json or text", s)
		}
		return s, nil
	})
}

// ParseLogLevel accepts debug, info, warn and error.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q is not one of debug, info, warn, error", s)
}

// NewLogger logs to w at level, as JSON or, with format "text", as text.
func NewLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
