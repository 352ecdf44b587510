package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/tab"
)

// staticPeers is a directory the test sets (the seam: the Kubernetes one
// is tested with a real API server in isolate).
type staticPeers struct {
	self string
	mu   sync.Mutex
	list []Peer
}

func (p *staticPeers) Self() string { return p.self }

func (p *staticPeers) Live() []Peer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Peer(nil), p.list...)
}

// replica is one Glovebox of a test's several: its proxy port, its peer
// listener, and the streamer its offers reach.
type replica struct {
	srv   *Server
	proxy string
	st    *apiFuzzStreamer
	peer  Peer
	cert  tls.Certificate
}

// startReplicas serves one Server per name, each knowing all of them
// through a directory of its own (which a test may change).
func startReplicas(t *testing.T, names ...string) map[string]*replica {
	t.Helper()
	var list []Peer
	rs := map[string]*replica{}
	var dirs []*staticPeers
	for _, name := range names {
		cert, err := NewPeerCert(name)
		if err != nil {
			t.Fatal(err)
		}
		pln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := Peer{ID: name, Addr: pln.Addr().String(), Key: KeySum(cert.Leaf)}
		list = append(list, p)
		cfg := DefaultConfig()
		cfg.Tabs.StartTimeout = time.Hour
		dir := &staticPeers{self: name}
		dirs = append(dirs, dir)
		cfg.Peers, cfg.PeerCert = dir, cert
		st := &apiFuzzStreamer{}
		srv, err := New(cfg, apiFuzzIsolator{}, st, nil, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 2)
		go func() { done <- srv.Serve(ctx, ln, time.Second) }()
		go func() { done <- srv.ServePeers(ctx, pln) }()
		t.Cleanup(func() {
			cancel()
			for range 2 {
				if err := <-done; err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
		rs[name] = &replica{srv: srv, proxy: ln.Addr().String(), st: st, peer: p, cert: cert}
	}
	for _, d := range dirs {
		d.list = append([]Peer(nil), list...)
	}
	return rs
}

// apiCall posts body to path on site.example through the proxy at
// proxyAddr, from the loopback address from, with extra headers.
func apiCall(t *testing.T, proxyAddr, from, path, body string, hdr http.Header) (int, map[string]any) {
	t.Helper()
	tr := &http.Transport{
		Proxy:       http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr}),
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}).DialContext,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, "http://site.example"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// TestPeerForwarding: a tab made by one replica is used through another,
// for its user only; what a client claims in the peer headers is not
// believed; a tab whose replica is gone is answered as ended; a replica
// whose key is not the directory's is not talked to; the peer port takes
// no one but a listed replica.
func TestPeerForwarding(t *testing.T) {
	rs := startReplicas(t, "a", "b")
	a, b := rs["a"], rs["b"]
	t.Cleanup(func() { endFuzzTabs(a.srv.tabs); endFuzzTabs(b.srv.tabs) })

	status, out := apiCall(t, a.proxy, "127.0.0.1", "/.glovebox/api/tabs", `{"url":"http://site.example/","width":800,"height":600,"dpr":1}`, nil)
	token, _ := out["token"].(string)
	if status != http.StatusCreated || tab.TokenOwner(token) != "a" {
		t.Fatalf("create through a: %d %v, want 201 and a token of a's", status, out)
	}

	// The offer through b reaches a's streamer, for the same client.
	status, out = apiCall(t, b.proxy, "127.0.0.1", "/.glovebox/api/tabs/"+token+"/offer", `{"sdp":"v=0"}`, nil)
	if status != http.StatusBadGateway || !strings.Contains(out["message"].(string), errFuzzPeer.Error()) || a.st.calls.Load() != 1 || b.st.calls.Load() != 0 {
		t.Fatalf("offer through b: %d %v; a's streamer asked %d times, b's %d", status, out, a.st.calls.Load(), b.st.calls.Load())
	}
	if f := b.srv.PeerForwards(); f["forwarded"] != 1 {
		t.Errorf("b's forwards = %v", f)
	}
	if f := a.srv.PeerForwards(); f["answered"] != 1 {
		t.Errorf("a's forwards = %v", f)
	}

	// Another client is told what it would be told of an unknown token,
	// whatever it says in the peer headers.
	forged := http.Header{peerClientHeader: {"127.0.0.1"}, peerUserHeader: {""}, peerOriginHeader: {"http://site.example:80"}}
	for _, h := range []http.Header{nil, forged} {
		status, out = apiCall(t, b.proxy, "127.0.0.2", "/.glovebox/api/tabs/"+token+"/offer", `{"sdp":"v=0"}`, h)
		if status != http.StatusNotFound || out["error"] != "no_tab" || a.st.calls.Load() != 1 {
			t.Fatalf("another client's offer through b (headers %v): %d %v", h, status, out)
		}
	}

	// A hand-over code from a is claimed through b.
	status, out = apiCall(t, a.proxy, "127.0.0.1", "/.glovebox/api/tabs/"+token+"/handoff", `{"url":"http://site.example/next"}`, nil)
	code, _ := out["code"].(string)
	if status != http.StatusOK || tab.TokenOwner(code) != "a" {
		t.Fatalf("handoff: %d %v", status, out)
	}
	status, out = apiCall(t, b.proxy, "127.0.0.1", "/.glovebox/api/claim", `{"code":"`+code+`"}`, nil)
	if status != http.StatusOK || out["token"] != token {
		t.Fatalf("claim through b: %d %v, want the tab's token", status, out)
	}

	// A token of a replica that is gone.
	status, out = apiCall(t, b.proxy, "127.0.0.1", "/.glovebox/api/tabs/c."+randomToken()+"/offer", `{"sdp":"v=0"}`, nil)
	if status != http.StatusGone || out["error"] != "ended" || out["message"] != peerGoneMessage {
		t.Fatalf("a gone replica's tab: %d %v", status, out)
	}
	status, out = apiCall(t, b.proxy, "127.0.0.1", "/.glovebox/api/claim", `{"code":"c.`+randomToken()+`"}`, nil)
	if status != http.StatusNotFound || out["error"] != "no_tab" {
		t.Fatalf("a gone replica's code: %d %v", status, out)
	}

	// The peer port: no client certificate, or one no replica has, gets
	// no answer; a listed replica's does.
	other, err := NewPeerCert("stranger")
	if err != nil {
		t.Fatal(err)
	}
	for name, certs := range map[string][]tls.Certificate{"none": nil, "a stranger's": {other}, "b's": {b.cert}} {
		c, err := tls.Dial("tcp", a.peer.Addr, &tls.Config{InsecureSkipVerify: true, Certificates: certs, MinVersion: tls.VersionTLS13})
		if err == nil {
			// TLS 1.3 reports a refused client certificate on the first read.
			io.WriteString(c, "GET /.glovebox/app.js HTTP/1.1\r\nHost: x\r\nX-Glovebox-Peer-Origin: http://site.example:80\r\nX-Glovebox-Peer-Client: 127.0.0.1\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var line [12]byte
			_, err = io.ReadFull(c, line[:])
			c.Close()
			if err == nil && string(line[:]) != "HTTP/1.1 200" {
				t.Errorf("%s certificate: %q", name, line)
			}
		}
		if (err == nil) != (name == "b's") {
			t.Errorf("peer port with %s certificate: err = %v", name, err)
		}
	}
}

// TestPeerKeyPinned: a replica answering at a listed address with a key
// that is not the listed one is not sent the request.
func TestPeerKeyPinned(t *testing.T) {
	rs := startReplicas(t, "a", "b")
	a, b := rs["a"], rs["b"]
	t.Cleanup(func() { endFuzzTabs(a.srv.tabs) })
	status, out := apiCall(t, a.proxy, "127.0.0.1", "/.glovebox/api/tabs", `{"url":"http://site.example/","width":800,"height":600,"dpr":1}`, nil)
	token, _ := out["token"].(string)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, out)
	}
	dir := b.srv.cfg.Peers.(*staticPeers)
	dir.mu.Lock()
	for i := range dir.list {
		if dir.list[i].ID == "a" {
			dir.list[i].Key[0] ^= 1
		}
	}
	dir.mu.Unlock()
	status, out = apiCall(t, b.proxy, "127.0.0.1", "/.glovebox/api/tabs/"+token+"/offer", `{"sdp":"v=0"}`, nil)
	if status != http.StatusBadGateway || out["error"] != "peer_unreachable" || a.st.calls.Load() != 0 {
		t.Fatalf("offer to a mis-keyed replica: %d %v (a's streamer asked %d times)", status, out, a.st.calls.Load())
	}
}

// TestPeerMediaTarget: ICE-TCP through any replica reaches a live
// replica's media address on the media port, and no other address.
func TestPeerMediaTarget(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MediaTCPPort = 50000
	cert, err := NewPeerCert("a")
	if err != nil {
		t.Fatal(err)
	}
	dir := &staticPeers{self: "a", list: []Peer{{ID: "b", Addr: "192.0.2.2:9444", Media: []netip.Addr{netip.MustParseAddr("192.0.2.2")}}}}
	cfg.Peers, cfg.PeerCert = dir, cert
	s, err := New(cfg, nil, nil, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for addr, want := range map[string]bool{
		"192.0.2.2:50000": true, "192.0.2.2:50001": false, "192.0.2.3:50000": false, "[::ffff:192.0.2.2]:50000": true,
	} {
		if got := s.isMediaTarget(addr); got != want {
			t.Errorf("isMediaTarget(%s) = %v, want %v", addr, got, want)
		}
	}
}

// FuzzPeerRequest sends arbitrary paths, bodies and peer headers to both
// sides of the replicas' link: the user side that picks a request's owner
// (a claim's code is read from its body) and the peer side that believes
// the forwarding replica's headers. Neither panics; every answer is a
// status the API documents with a JSON error; the peer side never answers
// a request whose headers do not name a client address and an origin.
func FuzzPeerRequest(f *testing.F) {
	cert, err := NewPeerCert("a")
	if err != nil {
		f.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Tabs.StartTimeout = time.Hour
	cfg.Peers, cfg.PeerCert = &staticPeers{self: "a", list: []Peer{{ID: "b", Addr: "127.0.0.1:1"}}}, cert
	s, err := New(cfg, apiFuzzIsolator{}, &apiFuzzStreamer{}, nil, quietLog())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.tabs.Close)
	f.Add("/.glovebox/api/claim", []byte(`{"code":"b.x"}`), "127.0.0.1", "http://site.example:80", "")
	f.Add("/.glovebox/api/tabs/b.abc/offer", []byte(`{"sdp":"v=0"}`), "::1", "https://site.example:443", "alice")
	f.Add("/.glovebox/files/a.k", []byte(nil), "garbage", "javascript:alert(1)", "")
	f.Add("/.glovebox/api/tabs/c.abc/detach", []byte("{"), "10.0.0.1", "http://site.example:80/path", "bob")
	f.Fuzz(func(t *testing.T, path string, body []byte, client, origin, user string) {
		defer endFuzzTabs(s.tabs)
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#?") {
			return
		}
		for _, side := range []string{"user", "peer"} {
			r, err := http.NewRequest(http.MethodPost, "http://site.example"+path, strings.NewReader(string(body)))
			if err != nil {
				return
			}
			r.RemoteAddr = "127.0.0.1:41000"
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set(peerClientHeader, client)
			r.Header.Set(peerOriginHeader, origin)
			r.Header.Set(peerUserHeader, user)
			w := httptest.NewRecorder()
			if side == "user" {
				s.serveAPI(w, r)
			} else {
				r.URL.Scheme, r.URL.Host = "", ""
				s.servePeer(w, r)
			}
			if w.Code >= 500 && w.Code != http.StatusBadGateway && w.Code != http.StatusServiceUnavailable {
				t.Fatalf("%s side: %s: status %d: %s", side, path, w.Code, w.Body)
			}
			if w.Code >= 400 && strings.HasPrefix(path, apiPrefix+"api/") {
				var out map[string]any
				if json.Unmarshal(w.Body.Bytes(), &out) != nil || out["error"] == "" || out["message"] == "" {
					t.Fatalf("%s side: %s: status %d without a JSON error: %q", side, path, w.Code, w.Body)
				}
			}
			if side == "peer" && w.Code < 400 {
				if _, err := netip.ParseAddr(client); err != nil || !strings.HasPrefix(origin, "http") {
					t.Fatalf("peer side answered %d for client %q origin %q", w.Code, client, origin)
				}
			}
		}
	})
}
