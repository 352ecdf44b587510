package egress

import (
	"net/http"
	"strings"
	"testing"
)

// TestEgressStripsHopByHop: what reaches the site lacks the hop-by-hop
// headers, those the Connection header names, and auth.header, whatever
// its configured name: a page must not pass itself off as a user to an
// internal app behind the egress that trusts the header.
func TestEgressStripsHopByHop(t *testing.T) {
	o := startOrigin(t)
	hop := []string{"X-Hop-A", "X-Hop-B", "Keep-Alive", "TE", "Trailer", "Upgrade", "Proxy-Authorization", "Proxy-Connection"}
	tests := []struct {
		name       string
		authHeader string // EgressConfig.AuthHeader; "" is the default
		user       string // the header that names a user
	}{
		{"default auth.header", "", "X-Authenticated-User"},
		{"configured auth.header", "X-Remote-User", "x-remote-user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testEgressConfig("site.test")
			cfg.AuthHeader = tt.authHeader
			h := startEgress(t, cfg, allowAll, nil)
			req := "GET http://site.test:" + o.port + "/ HTTP/1.1\r\nHost: site.test\r\n" +
				"Connection: keep-alive, X-Hop-A, x-hop-b\r\nX-Hop-A: 1\r\nX-Hop-B: 2\r\nKeep-Alive: timeout=5\r\n" +
				"TE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\n" +
				tt.user + ": admin\r\nX-Kept: yes\r\n\r\n"
			resp, body := exchange(t, h.addr, req)
			if resp.StatusCode != http.StatusOK || body != originBody {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			got := o.header()
			for _, k := range append(hop, tt.user) {
				if v, ok := got[http.CanonicalHeaderKey(k)]; ok {
					t.Errorf("origin saw %s: %q", k, v)
				}
			}
			if got.Get("X-Kept") != "yes" {
				t.Errorf("origin saw X-Kept %q, want the end-to-end header passed on", got.Get("X-Kept"))
			}
		})
	}
}

// TestEgressDeny: egress.deny and the cloud metadata addresses are refused
// in every form, even for a host allow_internal names; other allowed
// internal hosts still work.
func TestEgressDeny(t *testing.T) {
	o := startOrigin(t)
	cfg := testEgressConfig("site.test", "wiki.test", "meta.test", "metadata.google.internal", "10.9.0.5", "168.63.129.16")
	cfg.Deny = []string{"93.184.215.0/24", "10.9.0.0/16", "2606:4700::/32"}
	h := startEgress(t, cfg, allowAll, nil)
	h.res.set("denied.test", addrs("93.184.215.14"))
	h.res.set("denied6.test", addrs("2606:4700::6810:84e5"))
	h.res.set("wiki.test", addrs("10.9.0.5"))
	h.res.set("metadata.google.internal", addrs("169.254.169.254"))
	h.res.set("wire.test", addrs("168.63.129.16"))
	h.res.set("alibaba.test", addrs("100.100.100.200"))
	h.res.set("imds6.test", addrs("fd00:ec2::254"))
	refused := []string{
		"denied.test:80",
		"denied6.test:80",
		"93.184.215.14:80",
		"[::ffff:93.184.215.14]:80",
		"[64:ff9b::5db8:d70e]:80", // NAT64 of 93.184.215.14
		"[2002:5db8:d70e::1]:80",  // 6to4 of it
		"0x5d.0xb8.0xd7.0x0e:80",
		"wiki.test:80",       // allowed, but on the deny list
		"10.9.0.5:" + o.port, // allowed by address, denied by prefix
		"meta.test:80",       // 169.254.169.254: metadata wins over allow_internal
		"metadata.google.internal:80",
		"168.63.129.16:80", // Azure WireServer, a public address
		"wire.test:80",
		"alibaba.test:80",
		"imds6.test:80",
		"[fd00:ec2::254]:80",
	}
	for _, target := range refused {
		for _, method := range []string{"GET", "CONNECT"} {
			t.Run(method+" "+target, func(t *testing.T) {
				req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n"
				if method == "GET" {
					req = "GET http://" + target + "/ HTTP/1.1\r\nHost: " + target + "\r\n\r\n"
				}
				resp, body := exchange(t, h.addr, req)
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "internal address") {
					t.Errorf("got %d %q, want 403", resp.StatusCode, body)
				}
			})
		}
	}
	// An allowed internal host off the lists is still reached.
	resp, body := exchange(t, h.addr, "GET http://site.test:"+o.port+"/ HTTP/1.1\r\nHost: site.test\r\n\r\n")
	if resp.StatusCode != http.StatusOK || body != originBody {
		t.Errorf("site.test: %d %q", resp.StatusCode, body)
	}
	if n := o.ln.n.Load(); n != 1 {
		t.Errorf("origin accepted %d connections, want 1 (site.test)", n)
	}
}
