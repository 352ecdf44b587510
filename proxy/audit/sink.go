package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Sinks. Every audit event goes to each configured sink (audit.sinks):
// stdout, a rotated file, or syslog, each in its format (JSON lines or
// CEF). A sink has a queue of its own that never blocks the proxy: when a
// destination is slow or away, events wait there, and when the queue is
// full the oldest go, counted in glovebox_audit_dropped_total{sink} and
// said in the log once a minute. A destination that fails is retried with
// back-off, its events kept meanwhile.

// Formats of a sink.
const (
	FormatJSON = "json"
	FormatCEF  = "cef"
)

// DefaultQueue is how many events a sink holds for a destination that is
// away.
const DefaultQueue = 10000

// destination is where a sink writes: one formatted event per Write (a
// line without its newline), with the event's name and time.
type destination interface {
	Write(ev eventMeta, event []byte) error
	Close() error
}

// eventMeta is what a destination may need of an event besides its line.
type eventMeta struct {
	name string
	time time.Time
}

// permanent says whether a write failed for good: the event can never be
// written (too large for a datagram, or for the file's size limit), and
// retrying it would hold up every event behind it.
func permanent(err error) bool {
	return errors.Is(err, syscall.EMSGSIZE) || strings.Contains(err.Error(), "exceeds maximum file size")
}

// Sink is one destination of the audit log with its format and queue.
type Sink struct {
	name    string
	format  string
	version string
	dst     destination
	log     *slog.Logger
	metrics *Metrics

	mu      sync.Mutex
	queue   []queued
	seq     uint64 // of the next event queued
	max     int
	dropped uint64
	lastErr error
	errAt   time.Time
	closed  bool
	// abandoned: the sink closed with events still queued; run writes
	// no more (the destination is closed).
	abandoned atomic.Bool
	kick      chan struct{} // capacity 1
	done      chan struct{}
	reported  time.Time // when drops were last logged
}

// queued is an event waiting in a sink's queue.
type queued struct {
	seq  uint64
	line []byte
}

// newSink starts a sink writing to dst; queue bounds the events it holds
// (0: DefaultQueue).
func newSink(name, format, version string, dst destination, queue int, log *slog.Logger) *Sink {
	if queue <= 0 {
		queue = DefaultQueue
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{name: name, format: format, version: version, dst: dst, max: queue, log: log.With("sink", name),
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	go s.run()
	return s
}

// Name is the sink's name in metrics and logs.
func (s *Sink) Name() string { return s.name }

// enqueue hands the sink one event (its JSON line); it never blocks.
func (s *Sink) enqueue(line []byte) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.max {
		s.queue = s.queue[1:]
		s.dropLocked()
	}
	s.queue = append(s.queue, queued{seq: s.seq, line: line})
	s.seq++
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// dropLocked counts one event dropped, and says so at most once a minute.
func (s *Sink) dropLocked() {
	s.dropped++
	s.metrics.add("glovebox_audit_dropped_total", "Audit events a sink dropped, its queue full (the destination slow or away).", 1, "sink", s.name)
	if time.Since(s.reported) > time.Minute {
		s.reported = time.Now()
		s.log.Warn("audit sink queue full: dropping the oldest events", "queued", len(s.queue), "dropped", s.dropped, "last_error", errString(s.lastErr))
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// run writes the queued events, in order, retrying a failed one with
// back-off (it stays at the head of the queue).
func (s *Sink) run() {
	defer close(s.done)
	backoff := 100 * time.Millisecond
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return
			}
			<-s.kick
			continue
		}
		// The head leaves the queue while it is written: it is not the
		// queue's to drop. A failed write puts it back in front.
		head := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()

		meta, out, ferr := s.formatLine(head.line)
		if ferr != nil {
			// Never writable: it goes.
			s.log.Warn("audit event not formatted", "err", ferr)
			continue
		}
		if s.abandoned.Load() {
			return
		}
		err := s.dst.Write(meta, out)
		s.mu.Lock()
		if err == nil {
			s.lastErr = nil
			s.mu.Unlock()
			backoff = 100 * time.Millisecond
			continue
		}
		if permanent(err) {
			s.dropLocked()
			s.mu.Unlock()
			s.log.Warn("audit event dropped: the destination cannot take it", "event", meta.name, "bytes", len(out), "err", err)
			continue
		}
		if len(s.queue) < s.max {
			s.queue = append([]queued{head}, s.queue...)
		} else {
			s.dropLocked()
		}
		first := s.lastErr == nil
		s.lastErr, s.errAt = err, time.Now()
		closed := s.closed
		s.mu.Unlock()
		if first {
			s.log.Warn("audit sink failed: keeping its events and retrying", "err", err)
		}
		if closed {
			return
		}
		select {
		case <-time.After(backoff):
		case <-s.kick:
			// A new event is no reason to retry sooner: wait out the
			// rest, unless the sink is closing.
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if !closed {
				time.Sleep(backoff / 2)
			}
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// formatLine is the event's name and time, and the event in the sink's
// format.
func (s *Sink) formatLine(line []byte) (eventMeta, []byte, error) {
	line = bytes.TrimRight(line, "\n")
	var ev struct {
		Event string    `json:"event"`
		Time  time.Time `json:"time"`
	}
	if err := json.Unmarshal(line, &ev); err != nil {
		return eventMeta{}, nil, err
	}
	meta := eventMeta{name: ev.Event, time: ev.Time}
	if s.format != FormatCEF {
		return meta, line, nil
	}
	c, err := CEFLine(line, s.version)
	return meta, []byte(c), err
}

// health is the sink's last write error, nil once a write succeeds.
func (s *Sink) health() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr == nil {
		return nil
	}
	return fmt.Errorf("audit sink %s: events are waiting: last write failed at %s: %w", s.name,
		s.errAt.UTC().Format(time.RFC3339), s.lastErr)
}

// close writes what is queued, for at most grace, then closes the
// destination.
func (s *Sink) close(grace time.Duration) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	select {
	case <-s.done:
	case <-time.After(grace):
		s.abandoned.Store(true)
		s.log.Warn("audit sink closed with events still queued")
	}
	// Closing the destination stops a write in flight (syslog's).
	return s.dst.Close()
}

// lineWriter is a destination on an io.Writer: one line per event.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
	c  io.Closer // nil: not ours to close
}

func (l *lineWriter) Write(_ eventMeta, event []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.w.Write(append(event, '\n'))
	return err
}

func (l *lineWriter) Close() error {
	if l.c == nil {
		return nil
	}
	return l.c.Close()
}

// Sinks are the open audit.sinks.
type Sinks struct {
	sinks []*Sink
	files []*fileDest
}

// OpenSinks opens each sink of cfgs, checked by SinkConfig.Validate;
// version is Glovebox's, for CEF's header. Drops are counted in metrics
// and logged to log.
func OpenSinks(cfgs []SinkConfig, version string, stdout, stderr io.Writer, metrics *Metrics, log *slog.Logger) (*Sinks, error) {
	s := &Sinks{}
	for i, c := range cfgs {
		dst, err := c.destination(stdout, stderr)
		if err != nil {
			s.Close(0)
			return nil, fmt.Errorf("audit.sinks[%d]: %w", i, err)
		}
		if f, ok := dst.(*fileDest); ok {
			s.files = append(s.files, f)
		}
		format := c.Format
		if format == "" {
			format = FormatJSON
		}
		sink := newSink(c.name(), format, version, dst, c.Queue, log)
		sink.metrics = metrics
		s.sinks = append(s.sinks, sink)
	}
	return s, nil
}

// enqueue hands line to every sink; it never blocks.
func (s *Sinks) enqueue(line []byte) {
	for _, k := range s.sinks {
		k.enqueue(bytes.Clone(line))
	}
}

// Reopen starts a new file for each file sink (on SIGHUP, after
// logrotate moved the files away).
func (s *Sinks) Reopen() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.reopen())
	}
	return errors.Join(errs...)
}

// Health is every sink's last write error, nil when all write.
func (s *Sinks) Health() error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, k := range s.sinks {
		errs = append(errs, k.health())
	}
	return errors.Join(errs...)
}

// Close writes what the sinks hold, waiting at most grace for them all,
// and closes them.
func (s *Sinks) Close(grace time.Duration) error {
	if s == nil {
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(s.sinks))
	for i, k := range s.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = k.close(grace)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
