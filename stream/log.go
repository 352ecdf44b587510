package stream

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLoggerFactory sends pion's logs to slog with component=pion and the
// pion scope. pion is chatty, so its levels are shifted down one step:
// its errors are our warnings, its warnings our info, its info our debug,
// and its debug and trace are dropped.
type pionLoggerFactory struct {
	log *slog.Logger
}

func newPionLoggerFactory(log *slog.Logger) *pionLoggerFactory {
	return &pionLoggerFactory{log: log.With("component", "pion")}
}

// NewLogger implements logging.LoggerFactory.
func (f *pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return &pionLogger{log: f.log.With("scope", scope)}
}

type pionLogger struct {
	log *slog.Logger
}

var _ logging.LeveledLogger = (*pionLogger)(nil)

func (l *pionLogger) emit(level slog.Level, msg string) {
	l.log.Log(context.Background(), level, msg)
}

func (l *pionLogger) emitf(level slog.Level, format string, args ...any) {
	// Check first: most pion messages are filtered out, so skip the Sprintf.
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (l *pionLogger) Trace(string)          {}
func (l *pionLogger) Tracef(string, ...any) {}
func (l *pionLogger) Debug(string)          {}
func (l *pionLogger) Debugf(string, ...any) {}
func (l *pionLogger) Info(msg string)       { l.emit(slog.LevelDebug, msg) }
func (l *pionLogger) Infof(format string, args ...any) {
	l.emitf(slog.LevelDebug, format, args...)
}
func (l *pionLogger) Warn(msg string) { l.emit(slog.LevelInfo, msg) }
func (l *pionLogger) Warnf(format string, args ...any) {
	l.emitf(slog.LevelInfo, format, args...)
}
func (l *pionLogger) Error(msg string) { l.emit(slog.LevelWarn, msg) }
func (l *pionLogger) Errorf(format string, args ...any) {
	l.emitf(slog.LevelWarn, format, args...)
}
