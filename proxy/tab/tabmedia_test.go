package tab

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/stream"
)

func scrape(t *testing.T, m *audit.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type = %q", ct)
	}
	return rec.Body.String()
}

// TestTabMediaMetrics: one set of series per tab, labelled by tab and user;
// the link's gauges only while a peer is attached, RTT only once measured;
// nothing once the tab is gone.
func TestTabMediaMetrics(t *testing.T) {
	tabs := []Media{
		{Tab: "t1", User: "alice", Attached: true, Stats: stream.Stats{FramesIn: 40, FramesSent: 30, FramesSkipped: 2, Keyframes: 3,
			BytesSent: 123456, EncodeTime: 1500 * time.Millisecond, TargetBitrate: 1500000, RTT: 25 * time.Millisecond,
			FractionLost: 0.25, PacketsLost: 7, Width: 800, Height: 600, Codec: "vp8"}},
		{Tab: "t2", User: "", Attached: false, Stats: stream.Stats{FramesSent: 5}},
		{Tab: "t3", User: "b\"ob", Attached: true, Stats: stream.Stats{TargetBitrate: 300000}},
	}
	m := audit.NewMetrics()
	m.Collector(MediaMetrics(func() []Media { return tabs }))
	body := scrape(t, m)
	for _, want := range []string{
		"# TYPE glovebox_tab_frames_sent_total counter\n" +
			`glovebox_tab_frames_sent_total{tab="t1",user="alice"} 30` + "\n" +
			`glovebox_tab_frames_sent_total{tab="t2",user=""} 5` + "\n" +
			`glovebox_tab_frames_sent_total{tab="t3",user="b\"ob"} 0` + "\n",
		`glovebox_tab_info{tab="t1",user="alice",codec="vp8"} 1`,
		`glovebox_tab_info{tab="t2",user="",codec=""} 1`,
		`glovebox_tab_frames_in_total{tab="t1",user="alice"} 40`,
		`glovebox_tab_frames_skipped_total{tab="t1",user="alice"} 2`,
		`glovebox_tab_keyframes_total{tab="t1",user="alice"} 3`,
		`glovebox_tab_media_bytes_total{tab="t1",user="alice"} 123456`,
		`glovebox_tab_encode_seconds_total{tab="t1",user="alice"} 1.5`,
		"# TYPE glovebox_tab_target_bitrate_bps gauge\n" +
			`glovebox_tab_target_bitrate_bps{tab="t1",user="alice"} 1.5e+06` + "\n" +
			`glovebox_tab_target_bitrate_bps{tab="t3",user="b\"ob"} 300000` + "\n",
		"# TYPE glovebox_tab_rtt_seconds gauge\n" + `glovebox_tab_rtt_seconds{tab="t1",user="alice"} 0.025` + "\n# HELP",
		`glovebox_tab_packet_loss_ratio{tab="t1",user="alice"} 0.25`,
		"# TYPE glovebox_tab_packets_lost_total counter\n",
		`glovebox_tab_packets_lost_total{tab="t1",user="alice"} 7`,
		`glovebox_tab_frame_width_pixels{tab="t1",user="alice"} 800`,
		`glovebox_tab_frame_height_pixels{tab="t1",user="alice"} 600`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	for _, absent := range []string{
		`glovebox_tab_target_bitrate_bps{tab="t2"`, // detached: no link gauges
		`glovebox_tab_packet_loss_ratio{tab="t2"`,
		`glovebox_tab_rtt_seconds{tab="t3"`, // no receiver report yet
		`glovebox_tab_frame_width_pixels{tab="t3"`,
	} {
		if strings.Contains(body, absent) {
			t.Errorf("metrics have %q:\n%s", absent, body)
		}
	}
	if n := strings.Count(body, "# TYPE glovebox_tab_frames_sent_total "); n != 1 {
		t.Errorf("TYPE of glovebox_tab_frames_sent_total written %d times", n)
	}

	tabs = nil
	if body := scrape(t, m); strings.Contains(body, "glovebox_tab_") {
		t.Errorf("series outlive their tabs:\n%s", body)
	}
}

// TestTabManagerMedia: a tab is listed once it has had a peer, with the
// retired peers' counters, and not after it ended.
func TestTabManagerMedia(t *testing.T) {
	m := NewManager(DefaultConfig(), nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer m.Close()
	tb := &Tab{m: m, id: "t1", user: "alice", token: "tok", retired: map[*stream.Peer]bool{}, ended: make(chan struct{}), cancel: func() {}}
	m.mu.Lock()
	m.tabs[tb.token] = tb
	m.mu.Unlock()
	if got := m.Media(); len(got) != 0 {
		t.Fatalf("a tab that never had a peer: %+v", got)
	}
	tb.mu.Lock()
	tb.retired[new(stream.Peer)] = true // its counters are in stats
	tb.stats = stream.Stats{FramesSent: 5, TargetBitrate: 1000, RTT: time.Second}
	tb.mu.Unlock()
	got := m.Media()
	if len(got) != 1 || got[0].Tab != "t1" || got[0].User != "alice" || got[0].Attached ||
		got[0].Stats.FramesSent != 5 || got[0].Stats.TargetBitrate != 0 || got[0].Stats.RTT != 0 {
		t.Fatalf("a detached tab: %+v", got)
	}
	tb.End("test")
	if got := m.Media(); len(got) != 0 {
		t.Fatalf("an ended tab: %+v", got)
	}
}
