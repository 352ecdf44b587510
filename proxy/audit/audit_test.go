package audit

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/policy"
)

// TestAuditSchema pins the keys of every audit event: SOC tooling parses them.
func TestAuditSchema(t *testing.T) {
	var buf bytes.Buffer
	a := New(&buf)
	a.Request(RequestEvent{ClientIP: "192.0.2.1", Method: "GET", URL: "http://a.test/", Host: "a.test",
		Action: policy.ActionIsolate, Rule: "default", Status: 200, Bytes: 10, Duration: 1500 * time.Microsecond})
	a.TabStart(TabEvent{Tab: "t1", ClientIP: "192.0.2.1", URL: "http://a.test/", Host: "a.test", Runtime: "process", Browser: "pid 1"})
	a.TabEnd(TabEvent{Tab: "t1", ClientIP: "192.0.2.1", URL: "http://a.test/", Host: "a.test", Runtime: "process",
		Browser: "pid 1", Duration: time.Minute, Frames: 3, Keyframes: 1, Bytes: 1000, Reason: "closed by user"})
	a.Egress(EgressEvent{Tab: "t1", User: "alice", ClientIP: "198.18.0.2", Method: "GET", URL: "http://a.test/", Host: "a.test",
		Action: policy.ActionIsolate, Rule: "default", Status: 200, Bytes: 10, Duration: time.Millisecond, DestIP: "192.0.2.7"})
	a.Egress(EgressEvent{ClientIP: "198.18.0.9", Method: "CONNECT", URL: "a.test:443", Host: "a.test",
		Action: policy.ActionRefuse, Rule: "unknown source", Status: 403})
	a.File(FileEvent{Event: EventDownload, Tab: "t1", User: "alice", URL: "http://a.test/f.txt", Host: "a.test",
		Name: "f.txt", MIME: "text/plain", Size: 3, SHA256: "ab", Decision: FileAllowed, Verdict: "clean"})
	a.File(FileEvent{Event: EventUpload, Tab: "t1", URL: "http://a.test/", Host: "a.test", Name: "e.com",
		Decision: FileDenied, Reason: "threat found", Verdict: "infected", Threat: "Eicar"})
	a.Navigate(NavigateEvent{Tab: "t1", User: "alice", URL: "http://a.test/b", Host: "a.test", Title: "B", How: "link"})
	a.Dialog(DialogEvent{Tab: "t1", User: "alice", URL: "http://a.test/b", Host: "a.test", Kind: "confirm", Answer: "accept"})
	a.Clipboard(ClipboardEvent{Tab: "t1", URL: "http://a.test/", Host: "a.test", Direction: ClipboardOut, Size: 5, Decision: FileAllowed})
	a.Admin(AdminEvent{Admin: "root", ClientIP: "192.0.2.9", Action: "end_tab", Tab: "t1", Target: "alice", Status: 200})

	fileKeys := []string{"client_ip", "decision", "event", "file_name", "host", "mime", "reason", "scanner", "sha256", "size",
		"tab", "threat", "time", "url", "user", "verdict"}
	want := map[string][]string{
		EventRequest:  {"action", "bytes", "client_ip", "duration_ms", "event", "host", "method", "request_id", "rule", "status", "time", "url", "user"},
		EventTabStart: {"browser", "client_ip", "duration_ms", "event", "host", "node", "opener", "request_id", "runtime", "tab", "time", "url", "user", "warm"},
		EventTabEnd: {"bitrate", "browser", "bytes", "client_ip", "codec", "duration_ms", "encode_ms", "event", "frames", "frames_in", "frames_sent",
			"frames_skipped", "host", "keyframes", "loss", "min_bitrate", "node", "packets_lost", "reason", "recording", "recording_error", "rtt_ms", "runtime", "tab", "time", "url", "user"},
		EventDownload:  fileKeys,
		EventUpload:    fileKeys,
		EventClipboard: {"client_ip", "decision", "direction", "event", "host", "kind", "reason", "size", "tab", "time", "url", "user"},
		EventNavigate:  {"client_ip", "event", "host", "how", "tab", "time", "title", "url", "user"},
		EventDialog:    {"answer", "client_ip", "event", "host", "kind", "tab", "time", "url", "user"},
		EventAdmin:     {"action", "admin", "client_ip", "event", "status", "tab", "target", "time"},
		EventEgress:    {"action", "bytes", "client_ip", "dest_ip", "duration_ms", "event", "host", "method", "rule", "status", "tab", "time", "url", "user"},
	}
	dec := json.NewDecoder(&buf)
	seen := 0
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		ev, _ := m["event"].(string)
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !reflect.DeepEqual(keys, want[ev]) {
			t.Errorf("%s keys = %v, want %v", ev, keys, want[ev])
		}
		if _, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err != nil {
			t.Errorf("%s time: %v", ev, err)
		}
		seen++
	}
	if seen != 11 {
		t.Fatalf("decoded %d events, want 11", seen)
	}
}

// TestClipboardContent: a clipboard event keeps its text only under
// ClipboardContent, cut to MaxClipboardText at a character boundary.
func TestClipboardContent(t *testing.T) {
	long := strings.Repeat("a", MaxClipboardText-1) + "é and more"
	for _, on := range []bool{false, true} {
		var buf bytes.Buffer
		a := New(&buf)
		a.ClipboardContent = on
		a.Clipboard(ClipboardEvent{Tab: "t1", Direction: ClipboardOut, Size: 14, Decision: FileAllowed, Text: "secret: hunter2"})
		a.Clipboard(ClipboardEvent{Tab: "t1", Direction: ClipboardIn, Size: len(long), Decision: FileDenied, Reason: "policy", Text: long})
		dec := json.NewDecoder(&buf)
		var evs []map[string]any
		for dec.More() {
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				t.Fatal(err)
			}
			evs = append(evs, m)
		}
		if len(evs) != 2 {
			t.Fatalf("ClipboardContent=%v: %d events, want 2", on, len(evs))
		}
		if !on {
			if strings.Contains(buf.String(), "hunter2") || evs[0]["text"] != nil || evs[1]["text"] != nil {
				t.Errorf("ClipboardContent off: the text is logged: %v", evs)
			}
			continue
		}
		if evs[0]["text"] != "secret: hunter2" || evs[0]["text_truncated"] != false {
			t.Errorf("ClipboardContent on: %v, want the text, not truncated", evs[0])
		}
		if got := evs[1]["text"]; got != strings.Repeat("a", MaxClipboardText-1) || evs[1]["text_truncated"] != true {
			t.Errorf("ClipboardContent on, long text: %d bytes, truncated %v; want %d bytes cut before the é", len(got.(string)), evs[1]["text_truncated"], MaxClipboardText-1)
		}
		if evs[1]["size"] != float64(len(long)) {
			t.Errorf("size = %v, want the whole text's %d", evs[1]["size"], len(long))
		}
	}
}

// TestAddTap: a tap gets every event's line, as written, besides the writer.
func TestAddTap(t *testing.T) {
	var buf bytes.Buffer
	a := New(&buf)
	var lines []string
	a.AddTap(func(line []byte) { lines = append(lines, string(line)) })
	a.Admin(AdminEvent{Admin: "root", Action: "sign_in", Status: 200})
	a.TabStart(TabEvent{Tab: "t1"})
	if len(lines) != 2 || lines[0]+lines[1] != buf.String() {
		t.Fatalf("tap got %q, the writer %q", lines, buf.String())
	}
	if !strings.Contains(lines[0], `"event":"admin_action"`) || !strings.HasSuffix(lines[0], "\n") {
		t.Errorf("tap line %q", lines[0])
	}
}

// TestLongFieldsCut: a field longer than MaxField (a 60 kB URL) is cut to
// it, marked, and the line stays valid JSON that a UDP syslog can carry.
func TestLongFieldsCut(t *testing.T) {
	var buf bytes.Buffer
	a := New(&buf)
	long := "http://a.test/" + strings.Repeat("é", 30000)
	a.Request(RequestEvent{URL: long, Host: "a.test", Action: policy.ActionBlock, Status: 403})
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	u := m["url"].(string)
	if len(u) > MaxField || !strings.HasSuffix(u, truncatedMark) || !strings.HasPrefix(long, strings.TrimSuffix(u, truncatedMark)) {
		t.Errorf("url of %d bytes, want at most %d ending in %q", len(u), MaxField, truncatedMark)
	}
	if buf.Len() > 8192 {
		t.Errorf("the event is %d bytes", buf.Len())
	}
}
