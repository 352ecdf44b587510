package egress

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// TestEgressParentGetsCheckedAddress: behind a parent proxy the egress
// gives the parent the address it checked, never the name, which the
// parent would resolve again (DNS rebinding). The public-looking addresses
// are never dialled: the recording parent on loopback answers everything
// itself.
func TestEgressParentGetsCheckedAddress(t *testing.T) {
	up := startUpstream(t)
	cfg := testEgressConfig()
	cfg.Upstream = "http://u:p%40ss@127.0.0.1:" + portOf(t, up.ln)
	h := startEgress(t, cfg, allowAll, nil)
	h.res.set("public.test", addrs("93.184.215.14"))
	h.res.set("public6.test", addrs("2606:4700:4700::1111"))
	h.res.set("dual.test", addrs("2606:4700:4700::1111", "93.184.215.14"))
	// A parent without IPv6: the egress tries the next address checked.
	up.refuse = func(target string) bool { return target == "[2606:4700:4700::1111]:443" }
	auth := " Basic " + "dTpwQHNz"

	tests := []struct {
		name    string
		req     string // the request line's method and target
		inside  string // for a CONNECT: the request the client sends through the tunnel
		status  int
		parent  []string // what the parent is asked
		tunnels []string // the requests inside its tunnels
	}{
		{name: "GET", req: "GET http://public.test/p?q=1", status: 200,
			parent: []string{"CONNECT 93.184.215.14:80"}, tunnels: []string{"GET /p?q=1 public.test"}},
		{name: "GET with a port", req: "GET http://Public.Test.:8080/p", status: 200,
			parent: []string{"CONNECT 93.184.215.14:8080"}, tunnels: []string{"GET /p Public.Test.:8080"}},
		{name: "GET IPv6", req: "GET http://public6.test/", status: 200,
			parent: []string{"CONNECT [2606:4700:4700::1111]:80"}, tunnels: []string{"GET / public6.test"}},
		{name: "GET IPv6 literal", req: "GET http://[2606:4700:4700:0::1111]:81/", status: 200,
			parent: []string{"CONNECT [2606:4700:4700::1111]:81"}, tunnels: []string{"GET / [2606:4700:4700:0::1111]:81"}},
		{name: "CONNECT", req: "CONNECT public.test:443", inside: "GET /in HTTP/1.1\r\nHost: public.test\r\n\r\n", status: 200,
			parent: []string{"CONNECT 93.184.215.14:443"}, tunnels: []string{"GET /in public.test"}},
		{name: "CONNECT IPv6", req: "CONNECT public6.test:8443", inside: "GET / HTTP/1.1\r\nHost: public6.test\r\n\r\n", status: 200,
			parent: []string{"CONNECT [2606:4700:4700::1111]:8443"}, tunnels: []string{"GET / public6.test"}},
		{name: "CONNECT loose IPv4", req: "CONNECT 0x5d.184.0xd70e:443", inside: "GET / HTTP/1.1\r\nHost: x\r\n\r\n", status: 200,
			parent: []string{"CONNECT 93.184.215.14:443"}, tunnels: []string{"GET / x"}},
		{name: "CONNECT next address", req: "CONNECT dual.test:443", inside: "GET / HTTP/1.1\r\nHost: dual.test\r\n\r\n", status: 200,
			parent: []string{"CONNECT [2606:4700:4700::1111]:443", "CONNECT 93.184.215.14:443"}, tunnels: []string{"GET / dual.test"}},
		// TLS to the site inside the tunnel, which this parent does not speak.
		{name: "GET https", req: "GET https://public.test/", status: http.StatusBadGateway,
			parent: []string{"CONNECT 93.184.215.14:443"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, beforeInner := len(up.requests()), len(up.tunnelled())
			method, target, _ := strings.Cut(tt.req, " ")
			var status int
			if method == http.MethodConnect {
				c, br, resp := connect(t, h.addr, target, "", tt.inside)
				if status = resp.StatusCode; status == http.StatusOK {
					inner, err := http.ReadResponse(br, nil)
					if err != nil || inner.StatusCode != http.StatusOK {
						t.Errorf("through the tunnel: %v, %v", inner, err)
					}
				}
				c.Close()
			} else {
				host := strings.TrimPrefix(strings.TrimPrefix(target, "http://"), "https://")
				host, _, _ = strings.Cut(host, "/")
				resp, _ := exchange(t, h.addr, tt.req+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
				status = resp.StatusCode
			}
			if status != tt.status {
				t.Errorf("status %d, want %d", status, tt.status)
			}
			var want []string
			for _, p := range tt.parent {
				want = append(want, p+auth)
			}
			if got := up.requests()[before:]; strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("parent was asked\n%q\nwant\n%q", got, want)
			}
			if got := up.tunnelled()[beforeInner:]; strings.Join(got, "\n") != strings.Join(tt.tunnels, "\n") {
				t.Errorf("parent's tunnels carried\n%q\nwant\n%q", got, tt.tunnels)
			}
		})
	}
}

// TestEgressParentRebinding: a name that answers a public address to the
// egress's check and loopback to anyone who asks again. The parent is given
// the public address, so its own resolution (which would find loopback, its
// host's own services) never happens; the name is resolved once, by the
// egress.
func TestEgressParentRebinding(t *testing.T) {
	up := startUpstream(t)
	cfg := testEgressConfig()
	cfg.Upstream = "http://u:p%40ss@127.0.0.1:" + portOf(t, up.ln)
	h := startEgress(t, cfg, allowAll, nil)
	// The parent resolves names with the same resolver, as a parent in the
	// same network would.
	up.setResolver(h.res.resolve)
	rebind := func(call int) []netip.Addr {
		if call == 1 {
			return []netip.Addr{netip.MustParseAddr("93.184.215.14")}
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	auth := " Basic dTpwQHNz"

	h.res.set("rebind.test", rebind)
	c, br, resp := connect(t, h.addr, "rebind.test:443", "", "GET / HTTP/1.1\r\nHost: rebind.test\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT status %d", resp.StatusCode)
	}
	if inner, err := http.ReadResponse(br, nil); err != nil || inner.StatusCode != http.StatusOK {
		t.Errorf("through the tunnel: %v, %v", inner, err)
	}
	c.Close()
	if n := h.res.count("rebind.test"); n != 1 {
		t.Errorf("CONNECT: rebind.test resolved %d times, want once (by the egress)", n)
	}

	h.res.set("rebind.test", rebind)
	if resp, body := exchange(t, h.addr, "GET http://rebind.test/x HTTP/1.1\r\nHost: rebind.test\r\n\r\n"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET: %d %q", resp.StatusCode, body)
	}
	if n := h.res.count("rebind.test"); n != 1 {
		t.Errorf("GET: rebind.test resolved %d times, want once (by the egress)", n)
	}

	want := []string{"CONNECT 93.184.215.14:443" + auth, "CONNECT 93.184.215.14:80" + auth}
	if got := up.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("parent was asked\n%q\nwant\n%q", got, want)
	}
	if got, want := up.tunnelled(), []string{"GET / rebind.test", "GET /x rebind.test"}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("parent's tunnels carried %q, want %q", got, want)
	}
}
