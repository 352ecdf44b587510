package audit

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/glovebox/glovebox/internal/syslogtest"
	"github.com/glovebox/glovebox/internal/testenv"
	"github.com/glovebox/glovebox/proxy/policy"
)

// sinkAudit is an Audit writing only to the sinks of cfgs, closed (what
// they hold written) when the test ends.
func sinkAudit(t *testing.T, cfgs ...SinkConfig) (*Audit, *Sinks, *Metrics) {
	t.Helper()
	for i, c := range cfgs {
		if err := c.Validate(); err != nil {
			t.Fatalf("sink %d: %v", i, err)
		}
	}
	m := NewMetrics()
	s, err := OpenSinks(cfgs, "1.0", io.Discard, io.Discard, m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(5 * time.Second) })
	a := New(nil)
	a.Metrics = m
	a.AddSinks(s)
	return a, s, m
}

// numbered logs request n: its URL says n.
func numbered(a *Audit, n int) {
	a.Request(RequestEvent{ClientIP: "192.0.2.1", User: "alice", Method: "GET", URL: fmt.Sprintf("http://a.test/%d", n),
		Host: "a.test", Action: policy.ActionAllow, Rule: "default", Status: 200, Bytes: 10})
}

// requestNumbers are the n of each numbered request in lines (JSON).
func requestNumbers(t *testing.T, lines []string) []int {
	t.Helper()
	var ns []int
	for _, l := range lines {
		var e struct {
			Event, URL string
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("not a JSON event: %q: %v", l, err)
		}
		var n int
		if _, err := fmt.Sscanf(e.URL, "http://a.test/%d", &n); err != nil {
			t.Fatalf("not a numbered request: %q", l)
		}
		ns = append(ns, n)
	}
	return ns
}

// sessionEvents logs a browsing session's events, as the proxy would.
func sessionEvents(a *Audit) {
	a.Request(RequestEvent{RequestID: "r1", ClientIP: "192.0.2.1", User: "alice", Method: "GET", URL: "http://a.test/p?q=1|2", Host: "a.test",
		Action: policy.ActionIsolate, Rule: "news", Status: 200, Bytes: 10, Duration: time.Millisecond, Tab: "t1"})
	a.TabStart(TabEvent{Tab: "t1", ClientIP: "192.0.2.1", User: "alice", URL: "http://a.test/p?q=1|2", Host: "a.test", Runtime: "containerd", Browser: "c1"})
	a.Egress(EgressEvent{Tab: "t1", User: "alice", ClientIP: "198.18.0.2", Method: "GET", URL: "http://a.test/p?q=1|2", Host: "a.test",
		Action: policy.ActionIsolate, Rule: "news", Status: 200, Bytes: 10, DestIP: "192.0.2.7"})
	a.File(FileEvent{Event: EventDownload, Tab: "t1", ClientIP: "192.0.2.1", User: "alice", URL: "http://a.test/r=1.pdf", Host: "a.test",
		Name: `re=port|1\x.pdf`, MIME: "application/pdf", Size: 42, SHA256: "ab12", Decision: FileDenied, Reason: "threat found",
		Verdict: "infected", Threat: "Eicar"})
	a.TabEnd(TabEvent{Tab: "t1", ClientIP: "192.0.2.1", User: "alice", URL: "http://a.test/p?q=1|2", Host: "a.test", Runtime: "containerd",
		Browser: "c1", Duration: time.Minute, Frames: 3, Reason: "closed by user"})
}

// TestSyslogSinks sends a session's events to a real rsyslog over UDP, TCP
// and TLS (with a client certificate it requires), as JSON and as CEF, and
// reads back what rsyslog wrote: RFC 5424's header fields and each event
// whole.
func TestSyslogSinks(t *testing.T) {
	if err := syslogtest.Missing(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	srv := syslogtest.Start(t, syslogtest.Options{RequireClientCert: true})
	for _, format := range []string{FormatJSON, FormatCEF} {
		t.Run(format, func(t *testing.T) {
			sinks := []SinkConfig{
				{Type: "syslog", Network: "udp", Address: srv.UDP, Format: format, Facility: "local3", AppName: "gbx-" + format},
				{Type: "syslog", Network: "tcp", Address: srv.TCP, Format: format, Facility: "local3", AppName: "gbx-" + format},
				{Type: "syslog", Network: "tls", Address: srv.TLS, Format: format, Facility: "local3", AppName: "gbx-" + format,
					CAFile: srv.CAFile, CertFile: srv.ClientCert, KeyFile: srv.ClientKey},
			}
			var want strings.Builder
			ref := New(&want)
			sessionEvents(ref)
			wantLines := strings.Split(strings.TrimSpace(want.String()), "\n")

			a, s, _ := sinkAudit(t, sinks...)
			sessionEvents(a)
			s.Close(10 * time.Second)
			host, _ := os.Hostname()
			for _, network := range []string{"udp", "tcp", "tls"} {
				got := appLines(srv, network, "gbx-"+format, len(wantLines))
				if len(got) != len(wantLines) {
					t.Fatalf("%s: rsyslog got %d events, want %d: %+v\n%s", network, len(got), len(wantLines), got, srv.Output())
				}
				for i, l := range got {
					var ev struct{ Event string }
					json.Unmarshal([]byte(wantLines[i]), &ev)
					if l.Facility != "local3" || l.Severity != "info" || l.MsgID != ev.Event || l.ProcID != fmt.Sprint(os.Getpid()) || l.Hostname != host {
						t.Errorf("%s: header %+v, want local3 info msgid %s procid %d host %s", network, l, ev.Event, os.Getpid(), host)
					}
					if format == FormatJSON {
						if !jsonEqual(t, l.Msg, wantLines[i]) {
							t.Errorf("%s: message\n%s\nwant\n%s", network, l.Msg, wantLines[i])
						}
						continue
					}
					wantCEF, err := CEFLine([]byte(wantLines[i]), "1.0")
					if err != nil {
						t.Fatal(err)
					}
					hg, eg := parseCEF(t, l.Msg)
					hw, ew := parseCEF(t, wantCEF)
					delete(eg, "rt")
					delete(ew, "rt")
					if !slices.Equal(hg, hw) || fmt.Sprint(eg) != fmt.Sprint(ew) {
						t.Errorf("%s: CEF\n%s\nwant\n%s", network, l.Msg, wantCEF)
					}
					if ev.Event == EventDownload && (eg["fname"] != `re=port|1\x.pdf` || eg["request"] != "http://a.test/r=1.pdf" || eg["cs1"] != "t1") {
						t.Errorf("%s: download's CEF extension lost its escapes: %v", network, eg)
					}
				}
			}
		})
	}
}

// appLines waits (up to 30 s) until rsyslog has n messages of app on
// network, and returns those it has.
func appLines(srv *syslogtest.Server, network, app string, n int) []syslogtest.Line {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got []syslogtest.Line
		for _, l := range srv.Lines(network) {
			if l.AppName == app {
				got = append(got, l)
			}
		}
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jsonEqual says whether a and b are the same JSON object but for time
// (rsyslog's copy was made in another run of the same events).
func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var ma, mb map[string]any
	if err := json.Unmarshal([]byte(a), &ma); err != nil {
		t.Errorf("not JSON: %q: %v", a, err)
		return false
	}
	json.Unmarshal([]byte(b), &mb)
	delete(ma, "time")
	delete(mb, "time")
	return fmt.Sprint(ma) == fmt.Sprint(mb)
}

// TestSyslogReceiverAway stops rsyslog while events are logged: they wait
// in the sink's queue, health says so, and when rsyslog is back they all
// arrive, in order, once each.
func TestSyslogReceiverAway(t *testing.T) {
	if err := syslogtest.Missing(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	srv := syslogtest.Start(t, syslogtest.Options{})
	for _, network := range []string{"tcp", "tls"} {
		t.Run(network, func(t *testing.T) {
			addr := map[string]string{"tcp": srv.TCP, "tls": srv.TLS}[network]
			app := "away-" + network
			a, s, _ := sinkAudit(t, SinkConfig{Type: "syslog", Network: network, Address: addr, AppName: app, CAFile: map[string]string{"tls": srv.CAFile}[network]})
			wait := func(n int) []string {
				var msgs []string
				for _, l := range appLines(srv, network, app, n) {
					msgs = append(msgs, l.Msg)
				}
				return msgs
			}
			for i := range 5 {
				numbered(a, i)
			}
			if got := wait(5); len(got) != 5 {
				t.Fatalf("before: %d events arrived, want 5\n%s", len(got), srv.Output())
			}
			srv.Stop()
			for i := 5; i < 50; i++ {
				numbered(a, i)
			}
			deadline := time.Now().Add(30 * time.Second)
			for s.Health() == nil {
				if time.Now().After(deadline) {
					t.Fatal("health says nothing with the receiver away")
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("health while away: %v", s.Health())
			srv.Restart()
			numbered(a, 50)
			got := wait(51)
			if ns := requestNumbers(t, got); !slices.Equal(ns, seq(0, 51)) {
				t.Fatalf("rsyslog got requests %v, want 0…50 once each in order", ns)
			}
			for deadline := time.Now().Add(30 * time.Second); s.Health() != nil; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("health still failing with the receiver back: %v", s.Health())
				}
			}
		})
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// stuckDest is a destination that never finishes a write until released.
type stuckDest struct {
	started chan struct{} // closed at the first write
	once    sync.Once
	release chan struct{}
	mu      sync.Mutex
	got     []string
}

func (d *stuckDest) Write(_ eventMeta, event []byte) error {
	d.once.Do(func() { close(d.started) })
	<-d.release
	d.mu.Lock()
	d.got = append(d.got, string(event))
	d.mu.Unlock()
	return nil
}

func (d *stuckDest) Close() error { return nil }

// TestSinkNeverBlocks logs into a sink whose destination hangs: every call
// returns, the queue keeps the newest events, and the drops are counted
// and said.
func TestSinkNeverBlocks(t *testing.T) {
	var logBuf syncBuffer
	m := NewMetrics()
	d := &stuckDest{started: make(chan struct{}), release: make(chan struct{})}
	sink := newSink("stuck", FormatJSON, "1", d, 10, slog.New(slog.NewTextHandler(&logBuf, nil)))
	sink.metrics = m
	a := New(nil)
	a.Metrics = m
	a.AddSinks(&Sinks{sinks: []*Sink{sink}})
	numbered(a, 0)
	<-d.started
	for i := 1; i < 100; i++ {
		numbered(a, i) // would hang here if a write blocked
	}
	close(d.release)
	sink.close(10 * time.Second)
	d.mu.Lock()
	ns := requestNumbers(t, d.got)
	d.mu.Unlock()
	// The first is in the hung write; the queue kept the newest 10 of
	// the rest.
	if want := append([]int{0}, seq(90, 100)...); !slices.Equal(ns, want) {
		t.Errorf("written %v, want %v", ns, want)
	}
	out := httptest.NewRecorder()
	m.ServeHTTP(out, nil)
	if !strings.Contains(out.Body.String(), `glovebox_audit_dropped_total{sink="stuck"} 89`) {
		t.Errorf("metrics do not count 89 drops:\n%s", out.Body.String())
	}
	if !strings.Contains(logBuf.String(), "dropping the oldest events") {
		t.Errorf("the log does not say events are dropped: %q", logBuf.String())
	}
}

// TestFileSinkRotation writes past the size limit: rotated, compressed
// files and a fresh one, which together hold every event once.
func TestFileSinkRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	a, s, _ := sinkAudit(t, SinkConfig{Type: "file", Path: path, MaxSizeMB: 1, MaxBackups: 10, Queue: 100000})
	const n = 12000 // ~2.5 MB of events
	for i := range n {
		numbered(a, i)
	}
	s.Close(30 * time.Second)
	// lumberjack compresses in the background: wait for the .gz files.
	var gz []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		gz, _ = filepath.Glob(filepath.Join(dir, "audit-*.log.gz"))
		plain, _ := filepath.Glob(filepath.Join(dir, "audit-*.log"))
		if len(gz) >= 2 && len(plain) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotated files: %v compressed, %v not", gz, plain)
		}
	}
	slices.Sort(gz) // lumberjack's names sort by time
	var lines []string
	for _, f := range append(gz, path) {
		lines = append(lines, readLines(t, f)...)
	}
	if ns := requestNumbers(t, lines); !slices.Equal(ns, seq(0, n)) {
		t.Fatalf("the files hold %d events, want 0…%d once each in order", len(ns), n-1)
	}
	if st, _ := os.Stat(path); st.Size() >= 1<<20 {
		t.Errorf("the current file is %d bytes, past the limit", st.Size())
	}
}

// TestFileSinkReopen moves the file away as logrotate does; Reopen (on
// SIGHUP) starts a new one and nothing is lost.
func TestFileSinkReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	a, s, _ := sinkAudit(t, SinkConfig{Type: "file", Path: path})
	for i := range 10 {
		numbered(a, i)
	}
	flush(t, s)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	numbered(a, 10) // still into the moved file: it is open
	flush(t, s)
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	for i := 11; i < 20; i++ {
		numbered(a, i)
	}
	s.Close(10 * time.Second)
	if ns := requestNumbers(t, readLines(t, path+".1")); !slices.Equal(ns, seq(0, 11)) {
		t.Errorf("moved file holds %v", ns)
	}
	if ns := requestNumbers(t, readLines(t, path)); !slices.Equal(ns, seq(11, 20)) {
		t.Errorf("new file holds %v", ns)
	}
}

// flush waits until every sink's queue is empty.
func flush(t *testing.T, s *Sinks) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		n := 0
		for _, k := range s.sinks {
			k.mu.Lock()
			n += len(k.queue)
			k.mu.Unlock()
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still queued", n)
		}
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		z, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		r = z
	}
	var lines []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return lines
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// BenchmarkRequestEvent is the proxy's cost of one audit event: to a
// buffer alone, and with a TCP syslog sink whose receiver listens
// (accepting and discarding) or is away (its port closed). The sink's
// queue means the last two cost the same.
func BenchmarkRequestEvent(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c)
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	away := closed.Addr().String()
	closed.Close()
	for _, c := range []struct {
		name string
		addr string
	}{{"buffer", ""}, {"syslog-up", ln.Addr().String()}, {"syslog-away", away}} {
		b.Run(c.name, func(b *testing.B) {
			a := New(io.Discard)
			if c.addr != "" {
				s, err := OpenSinks([]SinkConfig{{Type: "syslog", Network: "tcp", Address: c.addr, Queue: 1000}}, "1", io.Discard, io.Discard, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close(0)
				a.AddSinks(s)
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				numbered(a, i)
			}
		})
	}
}

// failOnce refuses one event for good (a datagram too large) and takes
// the others.
type failOnce struct {
	mu  sync.Mutex
	got []string
}

func (d *failOnce) Write(_ eventMeta, event []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if strings.Contains(string(event), "a.test/1\"") {
		return fmt.Errorf("write udp: %w", syscall.EMSGSIZE)
	}
	d.got = append(d.got, string(event))
	return nil
}

func (d *failOnce) Close() error { return nil }

// TestSinkPermanentError: an event the destination can never take is
// dropped and counted; it does not hold up the ones behind it.
func TestSinkPermanentError(t *testing.T) {
	m := NewMetrics()
	d := &failOnce{}
	sink := newSink("once", FormatJSON, "1", d, 10, nil)
	sink.metrics = m
	a := New(nil)
	a.AddSinks(&Sinks{sinks: []*Sink{sink}})
	for i := range 3 {
		numbered(a, i)
	}
	sink.close(10 * time.Second)
	if ns := requestNumbers(t, d.got); !slices.Equal(ns, []int{0, 2}) {
		t.Errorf("written %v, want [0 2]", ns)
	}
	out := httptest.NewRecorder()
	m.ServeHTTP(out, nil)
	if !strings.Contains(out.Body.String(), `glovebox_audit_dropped_total{sink="once"} 1`) {
		t.Errorf("the drop is not counted:\n%s", out.Body.String())
	}
	if sink.health() != nil {
		t.Errorf("health after a dropped event: %v", sink.health())
	}
}
