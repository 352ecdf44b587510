// Package audit writes what the SOC reads: one JSON event per proxy
// decision, tab start and end and egress request, with a fixed schema, in
// lines from which no tab token or hand-over code can be read (the
// redacting log handler, which the proxy's operational log uses too), and
// the Prometheus metrics counted from them. It imports no other Glovebox
// package.
package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/glovebox/glovebox/proxy/policy"
)

// Audit event names. The schema of each is pinned by TestAuditSchema: SOC
// tooling parses these lines, so change them only on purpose.
const (
	EventRequest  = "proxy_request"
	EventTabStart = "tab_start"
	EventTabEnd   = "tab_end"
	EventError    = "error"
	EventEgress   = "egress_request"
	// EventAdmin is an administrator's action in the console.
	EventAdmin = "admin_action"
)

// Audit writes one JSON line per proxy decision and per tab start and end.
type Audit struct {
	l    *slog.Logger
	sink *auditSink
	// Metrics, when set, counts every event too.
	Metrics *Metrics
	// ClipboardContent logs the text of clipboard events
	// (audit.clipboard_content). Set it before the first event.
	ClipboardContent bool
}

// auditSink is the writer under the audit log. It keeps the error of the
// last write: slog drops a handler's errors, and a SOC that loses events
// (a full disk, a closed pipe) must learn it from health.
type auditSink struct {
	w io.Writer
	// sinks are audit.sinks, each handed every line; nil until AddSinks.
	sinks *Sinks
	// taps are handed every line too (AddTap).
	taps []func(line []byte)
	// audit is the Audit the sink writes for: its Metrics count the events
	// w could not take.
	audit *Audit

	mu      sync.Mutex
	lastErr error
	errAt   time.Time
}

func (s *auditSink) Write(p []byte) (int, error) {
	if s.sinks != nil {
		s.sinks.enqueue(p)
	}
	for _, tap := range s.taps {
		tap(p)
	}
	if s.w == nil {
		return len(p), nil
	}
	n, err := s.w.Write(p)
	s.mu.Lock()
	s.lastErr = err
	if err != nil {
		s.errAt = time.Now()
	}
	s.mu.Unlock()
	if err != nil {
		s.audit.Metrics.add("glovebox_audit_lost_total", "Audit events the audit output could not write (a full disk, a closed pipe): lost from it.", 1)
	}
	return n, err
}

// Health reports whether the audit log's last write failed, and why; nil
// once a write succeeds again.
func (a *Audit) Health() error {
	if a == nil {
		return nil
	}
	s := a.sink
	var errs []error
	s.mu.Lock()
	if s.lastErr != nil {
		errs = append(errs, fmt.Errorf("audit: events are being lost: last write failed at %s: %w", s.errAt.UTC().Format(time.RFC3339), s.lastErr))
	}
	s.mu.Unlock()
	if s.sinks != nil {
		errs = append(errs, s.sinks.Health())
	}
	return errors.Join(errs...)
}

// AddSinks hands every event to sinks too (audit.sinks), besides the
// writer given to New. Call it before the first event.
func (a *Audit) AddSinks(sinks *Sinks) {
	a.sink.sinks = sinks
}

// AddTap hands every event's JSON line (with its newline) to tap too, as
// it is written, one at a time: the console's ring of recent events. tap
// must not block, and must copy what it keeps (the line's buffer is
// reused). Call it before the first event.
func (a *Audit) AddTap(tap func(line []byte)) {
	a.sink.taps = append(a.sink.taps, tap)
}

// MaxField bounds each string field of an event (a URL, a title, an
// error): a longer one is cut to it, ending in truncatedMark.
const MaxField = 4096

const truncatedMark = "…[truncated]"

// New returns an Audit writing JSON lines to w (nil: to its sinks only). The message key becomes
// "event" and the level is left out: every line is an event, not a log.
func New(w io.Writer) *Audit {
	sink := &auditSink{w: w}
	h := slog.NewJSONHandler(sink, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.MessageKey:
				a.Key = "event"
			case slog.LevelKey:
				return slog.Attr{}
			case slog.TimeKey:
				a.Value = slog.StringValue(a.Value.Time().UTC().Format(time.RFC3339Nano))
			default:
				// A URL of 60 kB (what the proxy's header limit lets
				// through) would be an event no UDP syslog can carry,
				// and queues of such events would take a lot of memory.
				if a.Value.Kind() == slog.KindString && len(a.Value.String()) > MaxField {
					cut, _ := cutText(a.Value.String(), MaxField-len(truncatedMark))
					a.Value = slog.StringValue(cut + truncatedMark)
				}
			}
			return a
		},
	})
	// Events name URLs and errors that quote them: no token or hand-over
	// code may reach the SOC's log through them (see redact.go).
	a := &Audit{l: slog.New(NewRedactHandler(h)), sink: sink}
	sink.audit = a
	return a
}

// RequestEvent is one proxy decision.
type RequestEvent struct {
	// RequestID is the proxy's id of the request, unique to it.
	RequestID string
	// Time is when the request came; zero: now.
	Time     time.Time
	ClientIP string
	User     string
	Method   string
	URL      string
	Host     string
	Action   policy.Action
	Rule     string
	Status   int
	Bytes    int64
	Duration time.Duration
	Tab      string
	Error    string
}

// Request logs one proxy decision.
func (a *Audit) Request(e RequestEvent) {
	if a == nil {
		return
	}
	a.Metrics.add("glovebox_proxy_requests_total", "Proxy requests by policy action and status class.", 1,
		"action", string(e.Action), "status", statusClass(e.Status))
	a.Metrics.add("glovebox_proxy_response_bytes_total", "Body bytes sent to clients.", float64(e.Bytes))
	attrs := []slog.Attr{
		slog.String("request_id", e.RequestID),
		slog.String("client_ip", e.ClientIP),
		slog.String("user", e.User),
		slog.String("method", e.Method),
		slog.String("url", e.URL),
		slog.String("host", e.Host),
		slog.String("action", string(e.Action)),
		slog.String("rule", e.Rule),
		slog.Int("status", e.Status),
		slog.Int64("bytes", e.Bytes),
		slog.Int64("duration_ms", e.Duration.Milliseconds()),
	}
	if e.Tab != "" {
		attrs = append(attrs, slog.String("tab", e.Tab))
	}
	if e.Error != "" {
		attrs = append(attrs, slog.String("error", e.Error))
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	rec := slog.NewRecord(e.Time, slog.LevelInfo, EventRequest, 0)
	rec.AddAttrs(attrs...)
	a.l.Handler().Handle(context.Background(), rec)
}

// EgressEvent is one request an isolated browser made through the egress proxy.
type EgressEvent struct {
	// Tab and User are "" when the source address is not a known tab.
	Tab      string
	User     string
	ClientIP string // the container's address
	Method   string
	URL      string // without credentials; host:port for CONNECT
	Host     string
	Action   policy.Action // allow, isolate, block or refuse
	Rule     string        // the policy rule, or the egress proxy's reason to refuse
	Status   int
	// Bytes is what reached the browser: the response body, or for a
	// CONNECT tunnel the bytes from the destination.
	Bytes    int64
	Duration time.Duration
	// DestIP is the checked address dialled; "" when none was (refused,
	// failed, or sent to the upstream proxy: it is given the checked
	// address, but Glovebox does not see its connection).
	DestIP string
	Error  string
}

// Egress logs one request of an isolated browser.
func (a *Audit) Egress(e EgressEvent) {
	if a == nil {
		return
	}
	a.Metrics.add("glovebox_egress_requests_total", "Requests of the isolated browsers by action.", 1,
		"action", string(e.Action))
	attrs := []slog.Attr{
		slog.String("tab", e.Tab),
		slog.String("user", e.User),
		slog.String("client_ip", e.ClientIP),
		slog.String("method", e.Method),
		slog.String("url", e.URL),
		slog.String("host", e.Host),
		slog.String("action", string(e.Action)),
		slog.String("rule", e.Rule),
		slog.Int("status", e.Status),
		slog.Int64("bytes", e.Bytes),
		slog.Int64("duration_ms", e.Duration.Milliseconds()),
		slog.String("dest_ip", e.DestIP),
	}
	if e.Error != "" {
		attrs = append(attrs, slog.String("error", e.Error))
	}
	a.l.LogAttrs(context.Background(), slog.LevelInfo, EventEgress, attrs...)
}

// Untabbed counts a request of an isolated browser no tab has (a warm
// browser of the pool, or one whose tab just ended): no user caused it,
// so it is not an audit event; the egress proxy refused it.
func (a *Audit) Untabbed(e EgressEvent) {
	if a == nil {
		return
	}
	a.Metrics.add("glovebox_egress_untabbed_total", "Requests of isolated browsers that no tab has (warm browsers of the pool), refused and not audited.", 1,
		"action", string(e.Action))
}

// TabEvent is the start or end of one isolated tab.
type TabEvent struct {
	Tab      string
	ClientIP string
	User     string
	URL      string
	Host     string
	Runtime  string
	Browser  string
	// Node is the Kubernetes node of the browser's pod ("" for the
	// other runtimes).
	Node      string
	Duration  time.Duration
	Frames    int64
	Bytes     int64
	Keyframes int64
	Reason    string
	// Media counters of tab_end (see stream.Stats): frames captured, sent
	// and skipped to keep the frame rate the bitrate allows, time in the
	// encoder, congestion control's last and lowest target bitrate (bits/s),
	// and the browser's last report of round-trip time and loss.
	FramesIn, FramesSent, FramesSkipped int64
	EncodeTime                          time.Duration
	Bitrate, MinBitrate                 int64
	RTT                                 time.Duration
	Loss                                float64
	PacketsLost                         int64
	Codec                               string // "vp8" or "h264"
	// Warm says the tab got a browser the pool had started ahead.
	Warm bool
	// RequestID (tab_start) is the proxy_request whose landing page
	// opened the tab; Opener the tab whose page opened it as a popup.
	RequestID, Opener string
	// Recording is the file of the tab's recording (its rule said record),
	// "" when it was not recorded; RecordingError says why the recording
	// failed or is incomplete (the file, if named, has what was written).
	Recording, RecordingError string
}

// TabStart logs that a tab's browser is up.
func (a *Audit) TabStart(e TabEvent) {
	if a == nil {
		return
	}
	a.Metrics.add("glovebox_tabs_started_total", "Tabs whose browser started, warm (from the pool) or cold.", 1,
		"warm", fmt.Sprint(e.Warm))
	a.l.LogAttrs(context.Background(), slog.LevelInfo, EventTabStart, append(e.common(),
		slog.Bool("warm", e.Warm),
		slog.String("request_id", e.RequestID),
		slog.String("opener", e.Opener),
	)...)
}

// common are the attributes every tab event has.
func (e TabEvent) common() []slog.Attr {
	return []slog.Attr{
		slog.String("tab", e.Tab),
		slog.String("client_ip", e.ClientIP),
		slog.String("user", e.User),
		slog.String("url", e.URL),
		slog.String("host", e.Host),
		slog.String("runtime", e.Runtime),
		slog.String("browser", e.Browser),
		slog.String("node", e.Node),
		slog.Int64("duration_ms", e.Duration.Milliseconds()),
	}
}

// TabEnd logs that a tab ended and why.
func (a *Audit) TabEnd(e TabEvent) {
	if a == nil {
		return
	}
	a.Metrics.add("glovebox_tabs_ended_total", "Tabs ended, by reason.", 1, "reason", reasonClass(e.Reason))
	a.Metrics.add("glovebox_media_frames_sent_total", "Video frames sent to users.", float64(e.FramesSent))
	a.Metrics.add("glovebox_media_frames_skipped_total", "Video frames skipped to fit the link.", float64(e.FramesSkipped))
	a.Metrics.add("glovebox_media_keyframes_total", "Keyframes sent.", float64(e.Keyframes))
	a.Metrics.add("glovebox_media_bytes_total", "Media bytes sent.", float64(e.Bytes))
	a.Metrics.add("glovebox_media_encode_seconds_total", "Time spent encoding video.", e.EncodeTime.Seconds())
	a.l.LogAttrs(context.Background(), slog.LevelInfo, EventTabEnd, append(e.common(),
		slog.Int64("frames", e.Frames),
		slog.Int64("keyframes", e.Keyframes),
		slog.Int64("bytes", e.Bytes),
		slog.Int64("frames_in", e.FramesIn),
		slog.Int64("frames_sent", e.FramesSent),
		slog.Int64("frames_skipped", e.FramesSkipped),
		slog.Int64("encode_ms", e.EncodeTime.Milliseconds()),
		slog.Int64("bitrate", e.Bitrate),
		slog.Int64("min_bitrate", e.MinBitrate),
		slog.Float64("rtt_ms", float64(e.RTT.Microseconds())/1000),
		slog.Float64("loss", e.Loss),
		slog.Int64("packets_lost", e.PacketsLost),
		slog.String("codec", e.Codec),
		slog.String("reason", e.Reason),
		slog.String("recording", e.Recording),
		slog.String("recording_error", e.RecordingError),
	)...)
}

// AdminEvent is one action of an administrator in the console.
type AdminEvent struct {
	// Admin is who did it: the console user, or the name the trusted
	// reverse proxy gave (admin.header).
	Admin    string
	ClientIP string
	// Action is what was done: sign_in, sign_out, view_console,
	// list_tabs, end_tab, list_events, list_recordings, play_recording.
	Action string
	// Tab is the tab acted on, "" for none.
	Tab string
	// Target is what else the action names: the user of the tab ended,
	// the recording played, the filter of the events listed.
	Target string
	// Status is the console's HTTP answer: 200, 401 for a failed sign-in,
	// 404 for a tab already gone, …
	Status int
}

// Admin logs one administrator's action.
func (a *Audit) Admin(e AdminEvent) {
	if a == nil {
		return
	}
	a.Metrics.add("glovebox_admin_actions_total", "Administrators' actions in the console, by action and status class.", 1,
		"action", e.Action, "status", statusClass(e.Status))
	a.l.LogAttrs(context.Background(), slog.LevelInfo, EventAdmin,
		slog.String("admin", e.Admin),
		slog.String("client_ip", e.ClientIP),
		slog.String("action", e.Action),
		slog.String("tab", e.Tab),
		slog.String("target", e.Target),
		slog.Int("status", e.Status),
	)
}
