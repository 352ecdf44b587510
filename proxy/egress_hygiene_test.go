package proxy

import (
	"net/http"
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
