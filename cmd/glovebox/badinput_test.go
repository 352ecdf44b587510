package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/tlsca"
)

func proxyRule(name, host string) policy.Rule {
	return policy.Rule{Name: name, Host: host, Action: policy.ActionAllow}
}

// rawProxy sends raw bytes to the proxy and returns the status line of its answer.
func rawProxy(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, req)
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

func TestMalformedProxyRequests(t *testing.T) {
	site := newTestSite(t)
	g := startGlovebox(t, func(c *Config) {
		c.Proxy.Policy.Rules = append(c.Proxy.Policy.Rules, proxyRule("allow-site", "127.0.0.1"))
	})
	tests := []struct {
		name, req, want string
	}{
		{"garbage", "\x16\x03\x01garbage\r\n\r\n", "400"},
		{"no version", "GET http://example.test/\r\n\r\n", "400"},
		{"bad host", "GET http://[::1/ HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
		{"huge header", "GET " + site.URL + "/ HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 200<<10) + "\r\n\r\n", "431"},
		{"bad CONNECT", "CONNECT nohostport HTTP/1.1\r\nHost: nohostport\r\n\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rawProxy(t, g.addr, tt.req)
			if tt.want != "" && !strings.Contains(got, " "+tt.want+" ") {
				t.Errorf("status line %q, want %s", got, tt.want)
			}
			if strings.Contains(got, " 200 ") {
				t.Errorf("malformed request got %q", got)
			}
		})
	}
	// The proxy still serves a well-formed request.
	resp, err := g.proxied.Get(site.URL + "/style.css")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(site.marker)) {
		t.Errorf("allowed request after garbage: %d %q", resp.StatusCode, body)
	}
}

func TestIsolatedSubresourcesRefused(t *testing.T) {
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	for _, path := range []string{"/", "/app.js", "/style.css"} {
		req, _ := http.NewRequest("GET", site.URL+path, nil)
		req.Header.Set("Accept", "*/*")
		resp, err := g.proxied.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", path, resp.StatusCode)
		}
		if bytes.Contains(body, []byte(site.marker)) {
			t.Errorf("%s: the isolated site's bytes reached the client", path)
		}
	}
	// A browser-like navigation gets the landing page, not the site.
	req, _ := http.NewRequest("GET", site.URL+"/", nil)
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("Sec-Fetch-Dest", "document")
	resp, err := g.proxied.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`id="glovebox-screen"`)) || bytes.Contains(body, []byte(site.marker)) {
		t.Errorf("navigation: %d, landing page expected, got %q", resp.StatusCode, body)
	}
	if n := site.servedCount("/"); n != 0 {
		t.Errorf("the proxy fetched the isolated site itself %d times", n)
	}
}

// apiCall makes a /.glovebox/ API call through the proxy, from a chosen
// loopback source address.
func apiCall(t testing.TB, g *glovebox, from, url string, body any) (int, map[string]any) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	tr := g.proxied.Transport.(*http.Transport).Clone()
	tr.DialContext = d.DialContext
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	b, _ := json.Marshal(body)
	// The clone's keep-alive connection would stay open, with its
	// goroutines and descriptors on both sides, until the proxy's idle
	// timeout: closed once the answer is read.
	defer tr.CloseIdleConnections()
	resp, err := c.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("%s: not JSON (%d): %q", url, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func TestTabTokens(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, func(c *Config) { c.Proxy.Tabs.Max = 1 })
	api := site.URL + "/.glovebox/api"

	status, out := apiCall(t, g, "127.0.0.1", api+"/tabs/not-a-token/offer", map[string]string{"sdp": "v=0"})
	if status != 404 || out["error"] != "no_tab" {
		t.Errorf("unknown token: %d %v", status, out)
	}
	status, out = apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/", "width": 800, "height": 600, "dpr": 1})
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	token := out["token"].(string)
	if len(token) < 40 {
		t.Errorf("token %q is too short to be unguessable", token)
	}

	// Capacity: the second tab is refused with a clear reason; the proxy stays healthy.
	status, out = apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/", "width": 800, "height": 600})
	if status != 503 || out["error"] != "capacity" || !strings.Contains(out["message"].(string), "capacity") {
		t.Errorf("over capacity: %d %v", status, out)
	}

	// Another client (another loopback address) cannot use the token, and
	// learns nothing: the answer is the unknown-token answer.
	fstatus, fout := apiCall(t, g, "127.0.0.2", api+"/tabs/"+token+"/offer", map[string]string{"sdp": "v=0"})
	if fstatus != 404 || fout["error"] != "no_tab" {
		t.Errorf("foreign token: %d %v", fstatus, fout)
	}

	// Garbage bodies.
	for _, tt := range []struct {
		body   any
		status int
		err    string
	}{
		{"not an object", 400, "bad_request"},
		{map[string]any{"sdp": 5}, 400, "bad_request"},
		{map[string]any{"sdp": "garbage"}, 400, "bad_offer"},
		{map[string]any{"sdp": strings.Repeat("x", 100<<10)}, 413, "too_large"},
	} {
		status, out = apiCall(t, g, "127.0.0.1", api+"/tabs/"+token+"/offer", tt.body)
		if status != tt.status || out["error"] != tt.err {
			t.Errorf("offer %.40v: %d %v, want %d %s", tt.body, status, out, tt.status, tt.err)
		}
	}
	status, out = apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": "javascript:alert(1)"})
	if status != 400 {
		t.Errorf("create with a javascript: URL: %d %v", status, out)
	}

	// Expired: after the tab ends (no landing page came back), its owner is
	// told why; anyone else still learns nothing.
	waitFor(t, 30*time.Second, "the unattached tab to end", func() (bool, string) {
		return g.srv.Tabs() == 0, fmt.Sprint(g.srv.Tabs())
	})
	status, out = apiCall(t, g, "127.0.0.1", api+"/tabs/"+token+"/offer", map[string]string{"sdp": "v=0"})
	if status != 410 || out["error"] != "ended" || !strings.Contains(fmt.Sprint(out["message"]), "closed by user") {
		t.Errorf("expired token: %d %v, want 410 ended with the reason", status, out)
	}
	fstatus, fout = apiCall(t, g, "127.0.0.1", api+"/tabs/"+token+"/offer", map[string]string{"sdp": "v=0"})
	if fstatus != 410 {
		t.Errorf("expired token again: %d %v", fstatus, fout)
	}
	fstatus, fout = apiCall(t, g, "127.0.0.2", api+"/tabs/"+token+"/offer", map[string]string{"sdp": "v=0"})
	if fstatus != 404 || fout["error"] != "no_tab" {
		t.Errorf("expired token from another client: %d %v, want the unknown-token answer", fstatus, fout)
	}
	resp, err := http.Get("http://" + g.addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz after all that: %v %v", resp, err)
	}
}

// pionClient is a WebRTC peer in Go standing in for the landing page.
type pionClient struct {
	pc   *webrtc.PeerConnection
	dc   *webrtc.DataChannel
	open chan struct{}
	mu   sync.Mutex
	msgs []map[string]any
	// frames counts the video frames received: RTP packets with the marker
	// bit, which ends a frame.
	frames atomic.Int64
}

func newPionClient(t testing.TB, g *glovebox, api, token string) *pionClient {
	t.Helper()
	return dialPionClient(t, g, api, token, t.Cleanup)
}

// dialPionClient is newPionClient handing the peer's close to cleanup:
// t.Cleanup, or a loop's own, so that a soak's thousands of closed peers
// are not all kept until the test ends.
func dialPionClient(t testing.TB, g *glovebox, api, token string, cleanup func(func())) *pionClient {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(func() { pc.Close() })
	c := &pionClient{pc: pc, open: make(chan struct{})}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
		// Read RTCP as a browser does: pion's interceptors see the sender
		// reports only when it is read, and without them the receiver
		// reports carry no LSR, so the sender cannot measure RTT.
		go func() {
			for {
				if _, _, err := rcv.ReadRTCP(); err != nil {
					return
				}
			}
		}()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if p.Marker && tr.Kind() == webrtc.RTPCodecTypeVideo {
				c.frames.Add(1)
			}
		}
	})
	c.dc, err = pc.CreateDataChannel("glovebox", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.dc.OnOpen(func() { close(c.open) })
	c.dc.OnMessage(func(m webrtc.DataChannelMessage) {
		var v map[string]any
		if json.Unmarshal(m.Data, &v) == nil {
			c.mu.Lock()
			c.msgs = append(c.msgs, v)
			c.mu.Unlock()
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	pc.SetLocalDescription(offer)
	<-gathered
	status, out := apiCall(t, g, "127.0.0.1", api+"/tabs/"+token+"/offer", map[string]string{"sdp": pc.LocalDescription().SDP})
	if status != 200 {
		t.Fatalf("offer: %d %v", status, out)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: out["sdp"].(string)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.open:
	case <-time.After(30 * time.Second):
		t.Fatal("data channel did not open")
	}
	return c
}

func (c *pionClient) count(typ string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.msgs {
		if m["t"] == typ {
			n++
		}
	}
	return n
}

func (c *pionClient) sendJSON(t testing.TB, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := c.dc.SendText(string(b)); err != nil {
		t.Fatal(err)
	}
}

// TestDataChannelGarbage sends garbage, oversized and hostile messages on the
// data channel: each gets an error back, and the tab keeps working.
func TestDataChannelGarbage(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	api := site.URL + "/.glovebox/api"
	status, out := apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/", "width": 800, "height": 600, "dpr": 1})
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	c := newPionClient(t, g, api, out["token"].(string))
	waitFor(t, 30*time.Second, "the page to load in the remote browser", func() (bool, string) {
		return site.servedCount("/app.js") > 0, ""
	})

	garbage := []string{
		"not json at all",
		`{"t":"exec","cmd":"id"}`,
		`{"t":"mouse","type":"move","x":1e308,"y":0}`,
		`{"t":"key","type":"down","key":"` + strings.Repeat("K", 500) + `"}`,
		`{"t":"mouse","type":"down","x":-50000,"y":99999,"button":"left","buttons":1}`,
		`[]`,
		`{"t":"resize","width":-1,"height":5}`,
		`{"t":"resize","width":100000,"height":100000,"dpr":100}`, // clamped, not an error
	}
	for _, m := range garbage {
		if err := c.dc.SendText(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.dc.Send([]byte{0xff, 0x00, 0xfe, 0x01}); err != nil {
		t.Fatal(err)
	}
	if err := c.dc.SendText(strings.Repeat("x", 20<<10)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "error replies", func() (bool, string) {
		return c.count("error") >= 7, fmt.Sprint(c.count("error"))
	})

	// The tab still works: back to the client's size, click the field, type.
	c.sendJSON(t, map[string]any{"t": "resize", "width": 800, "height": 600, "dpr": 1})
	c.sendJSON(t, map[string]any{"t": "mouse", "type": "down", "x": 100, "y": 140, "button": "left", "buttons": 1, "clicks": 1})
	c.sendJSON(t, map[string]any{"t": "mouse", "type": "up", "x": 100, "y": 140, "button": "left", "buttons": 0, "clicks": 1})
	waitFor(t, 20*time.Second, "the remote input to report its focus", func() (bool, string) {
		return site.lastReport("focus") == "field", ""
	})
	c.sendJSON(t, map[string]any{"t": "text", "text": "still alive"})
	waitFor(t, 20*time.Second, "text after garbage to reach the remote page", func() (bool, string) {
		got := site.lastReport("input")
		return got == "still alive", got
	})
	if g.srv.Tabs() != 1 {
		t.Errorf("tabs = %d, want the tab still open", g.srv.Tabs())
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestConnectToMediaPort: browsers reach ICE-TCP through their proxy with
// CONNECT; Glovebox tunnels that to its own media port whatever policy says,
// and nothing else of an isolated host.
func TestConnectToMediaPort(t *testing.T) {
	media := freePort(t)
	g := startGlovebox(t, func(c *Config) { c.Stream.TCPPort = media })
	if got := rawProxy(t, g.addr, fmt.Sprintf("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", media, media)); !strings.Contains(got, " 200 ") {
		t.Errorf("CONNECT to the media port: %q, want 200", got)
	}
	// Any other port of an isolated host is intercepted, never tunnelled:
	// the client meets Glovebox's own certificate and the port sees nothing.
	other, accepted := acceptCounter(t)
	if issuer := interceptIssuer(t, g.addr, other); issuer != tlsca.CAName || accepted() != 0 {
		t.Errorf("CONNECT to another port of an isolated host: certificate from %q, %d connections to the port; want Glovebox's, none", issuer, accepted())
	}
	// A tunnel's event is written when it closes.
	waitFor(t, 10*time.Second, "the media tunnel's audit event", func() (bool, string) {
		for _, e := range g.audit.events() {
			if e["method"] == "CONNECT" && e["rule"] == "glovebox-media" && e["action"] == "allow" {
				return true, ""
			}
		}
		return false, g.audit.String()
	})
}

// TestOwnPagesThroughProxy: a browser already set to use Glovebox that asks
// for the CA or the PAC file at the proxy's own address gets them (they are
// not a site for policy to isolate), and without signing in.
func TestOwnPagesThroughProxy(t *testing.T) {
	g := startGlovebox(t, func(c *Config) { c.Proxy.Policy.Default = policy.ActionBlock })
	for path, ctype := range map[string]string{
		"/glovebox-ca.pem": "application/x-pem-file",
		"/proxy.pac":       "application/x-ns-proxy-autoconfig",
	} {
		resp, err := g.proxied.Get("http://" + g.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || len(body) == 0 {
			t.Errorf("%s through the proxy: %d %q %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	for _, e := range g.audit.events() {
		if e["event"] == "proxy_request" && e["action"] == "block" {
			t.Errorf("the proxy's own page went to policy: %v", e)
		}
	}
}

// TestTabTimeouts: a tab whose user sends no input past tabs.idle_timeout,
// and one past tabs.max_lifetime, ends with that reason, also while its
// landing page is attached.
func TestTabTimeouts(t *testing.T) {
	needChromium(t)
	for _, tc := range []struct {
		name, reason string
		mutate       func(*Config)
	}{
		{"idle", "idle timeout", func(c *Config) { c.Proxy.Tabs.IdleTimeout = 3 * time.Second }},
		{"lifetime", "max lifetime", func(c *Config) { c.Proxy.Tabs.MaxLifetime = 4 * time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			site := newTestSite(t)
			g := startGlovebox(t, tc.mutate)
			api := site.URL + "/.glovebox/api"
			status, out := apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/", "width": 800, "height": 600})
			if status != 201 {
				t.Fatalf("create: %d %v", status, out)
			}
			c := newPionClient(t, g, api, out["token"].(string))
			if tc.name == "lifetime" {
				// Input keeps the tab from being idle; the lifetime still ends it.
				go func() {
					for range 20 {
						c.dc.SendText(`{"t":"mouse","type":"move","x":5,"y":5}`)
						time.Sleep(300 * time.Millisecond)
					}
				}()
			}
			waitFor(t, 30*time.Second, "the tab to end", func() (bool, string) { return c.count("ended") == 1, "" })
			waitFor(t, 10*time.Second, "tab_end with the reason", func() (bool, string) {
				for _, e := range g.audit.events() {
					if e["event"] == "tab_end" {
						return e["reason"] == tc.reason, fmt.Sprint(e["reason"])
					}
				}
				return false, "none"
			})
		})
	}
}

// seriesValue finds name{tab="<tab>",…} in a scrape and returns its value
// and its labels after tab's.
func seriesValue(body, name, tab string) (v float64, labels string, ok bool) {
	prefix := name + `{tab="` + tab + `",`
	for _, line := range strings.Split(body, "\n") {
		rest, found := strings.CutPrefix(line, prefix)
		if !found {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		if i < 0 {
			return 0, "", false
		}
		v, err := strconv.ParseFloat(rest[i+1:], 64)
		return v, rest[:i], err == nil
	}
	return 0, "", false
}

func scrapeMetrics(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestMetrics: the admin address serves Prometheus metrics that follow the
// audit log: a refused request and a tab's start and end move counters.
// While the tab is open and its video flows, it has its own media series
// (frames, bitrate, RTT, loss), labelled with its id and user; they go
// when the tab ends.
func TestMetrics(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	g := startGlovebox(t, func(c *Config) { c.Admin.Listen = admin })
	req, _ := http.NewRequest("GET", site.URL+"/app.js", nil)
	if resp, err := g.proxied.Do(req); err == nil {
		resp.Body.Close()
	}
	api := site.URL + "/.glovebox/api"
	status, out := apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/", "width": 800, "height": 600})
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	tabID := out["tab"].(string)
	c := newPionClient(t, g, api, out["token"].(string))
	waitFor(t, 30*time.Second, "the page", func() (bool, string) { return site.servedCount("/app.js") > 0, "" })

	// RTT needs a sender report out and the pion client's receiver report
	// back (its default interceptors send one a second): wait for it.
	var live string
	waitFor(t, 30*time.Second, "the tab's media series", func() (bool, string) {
		live = scrapeMetrics(t, admin)
		sent, _, _ := seriesValue(live, "glovebox_tab_frames_sent_total", tabID)
		bps, _, _ := seriesValue(live, "glovebox_tab_target_bitrate_bps", tabID)
		rtt, _, _ := seriesValue(live, "glovebox_tab_rtt_seconds", tabID)
		return sent > 0 && bps > 0 && rtt > 0, live
	})
	for _, line := range strings.Split(live, "\n") {
		if strings.Contains(line, `tab="`+tabID+`"`) {
			t.Log(line)
		}
	}
	user := "?"
	for _, ev := range g.audit.events() {
		if ev["event"] == audit.EventTabStart && ev["tab"] == tabID {
			user, _ = ev["user"].(string)
		}
	}
	for _, w := range []struct {
		name     string
		min, max float64
	}{
		{"glovebox_tab_frames_in_total", 1, 1e9},
		{"glovebox_tab_frames_sent_total", 1, 1e9},
		{"glovebox_tab_frames_skipped_total", 0, 1e9},
		{"glovebox_tab_keyframes_total", 1, 1e9},
		{"glovebox_tab_media_bytes_total", 100, 1e12},
		{"glovebox_tab_encode_seconds_total", 1e-9, 1e4},
		{"glovebox_tab_target_bitrate_bps", 1000, 1e9},
		{"glovebox_tab_rtt_seconds", 1e-6, 1}, // loopback
		{"glovebox_tab_packet_loss_ratio", 0, 1},
		{"glovebox_tab_packets_lost_total", 0, 1e9},
		{"glovebox_tab_frame_width_pixels", 320, 800},
		{"glovebox_tab_frame_height_pixels", 240, 600},
		{"glovebox_tab_info", 1, 1},
	} {
		v, labels, ok := seriesValue(live, w.name, tabID)
		switch {
		case !ok:
			t.Errorf("no %s for tab %s:\n%s", w.name, tabID, live)
		case v < w.min || v > w.max:
			t.Errorf("%s = %v, want %v–%v", w.name, v, w.min, w.max)
		case !strings.HasPrefix(labels, `user="`+user+`"`):
			t.Errorf("%s labels %s, want user=%q as in tab_start", w.name, labels, user)
		case w.name == "glovebox_tab_info" && !strings.Contains(labels, `codec="vp8"`) && !strings.Contains(labels, `codec="h264"`):
			t.Errorf("%s labels %s, want the codec", w.name, labels)
		}
	}
	for _, name := range []string{"glovebox_tab_frames_sent_total", "glovebox_tab_rtt_seconds"} {
		if n := strings.Count(live, "# TYPE "+name+" "); n != 1 {
			t.Errorf("TYPE of %s written %d times", name, n)
		}
	}
	// Counters only go up while the tab lives.
	sent1, _, _ := seriesValue(live, "glovebox_tab_frames_sent_total", tabID)
	sent2, _, _ := seriesValue(scrapeMetrics(t, admin), "glovebox_tab_frames_sent_total", tabID)
	if sent2 < sent1 {
		t.Errorf("glovebox_tab_frames_sent_total went from %v to %v", sent1, sent2)
	}

	c.pc.Close()
	waitFor(t, 30*time.Second, "the tab to end", func() (bool, string) { return g.srv.Tabs() == 0, "" })

	var body string
	waitFor(t, 10*time.Second, "the metrics", func() (bool, string) {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return strings.Contains(body, `glovebox_tabs_ended_total{reason="closed by user"} 1`), body
	})
	for _, want := range []string{
		`glovebox_proxy_requests_total{action="isolate",status="4xx"} 1`,
		`glovebox_tabs_started_total{warm="false"} 1`,
		"# TYPE glovebox_tabs_open gauge\nglovebox_tabs_open 0",
		"glovebox_media_frames_sent_total ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, `tab="`+tabID+`"`) || strings.Contains(body, "glovebox_tab_") {
		t.Errorf("the ended tab's series are still there:\n%s", body)
	}
}
