package egress

import (
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/upstream"
)

// TestEgressWithParent pins the choice: the egress proxy inherits the
// proxy's parent unless egress.upstream names its own or says "direct",
// and upstream.direct applies to it whichever parent it has.
func TestEgressWithParent(t *testing.T) {
	up := upstream.Config{Proxy: "http://parent.corp:3128", Direct: []string{"corp.example"}, IdleTimeout: time.Second}
	tests := []struct{ egress, want string }{
		{"", "http://parent.corp:3128"},
		{"direct", ""},
		{"http://other.corp:8080", "http://other.corp:8080"},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		c.Upstream = tt.egress
		if err := c.Validate(); err != nil {
			t.Errorf("egress.upstream %q: %v", tt.egress, err)
		}
		got := c.WithParent(up)
		if got.Upstream != tt.want || !reflect.DeepEqual(got.Direct, up.Direct) {
			t.Errorf("egress.upstream %q → %q %v, want %q", tt.egress, got.Upstream, got.Direct, tt.want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("resolved %q: %v", got.Upstream, err)
		}
	}
	if got := DefaultConfig().WithParent(upstream.DefaultConfig()); got.Upstream != "" {
		t.Errorf("defaults: egress upstream %q, want direct", got.Upstream)
	}
}

// TestEgressDirectExceptions: the egress proxy sends upstream.direct's
// destinations direct and everything else through its parent.
func TestEgressDirectExceptions(t *testing.T) {
	o := startOrigin(t)
	up := startUpstream(t)
	cfg := testEgressConfig("site.test", "internal.test")
	cfg.Upstream = "http://u:p%40ss@127.0.0.1:" + portOf(t, up.ln)
	cfg.Direct = []string{"internal.test"}
	h := startEgress(t, cfg, allowAll, nil)

	resp, body := exchange(t, h.addr, "GET http://internal.test:"+o.port+"/ HTTP/1.1\r\nHost: internal.test\r\n\r\n")
	if resp.StatusCode != http.StatusOK || body != originBody {
		t.Errorf("direct exception: %d %q, want the origin's answer", resp.StatusCode, body)
	}
	c, br, cresp := connect(t, h.addr, "internal.test:"+o.port, "", "")
	if cresp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT to a direct exception: %d", cresp.StatusCode)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: internal.test\r\n\r\n")
	if r, err := http.ReadResponse(br, nil); err != nil || r.StatusCode != http.StatusOK {
		t.Errorf("through the direct tunnel: %v %v", r, err)
	}
	c.Close()
	if ev := h.audit.wait(t, "GET", "http://internal.test:"+o.port+"/"); ev["dest_ip"] != "127.0.0.1" {
		t.Errorf("a direct request's event has dest_ip %v", ev["dest_ip"])
	}

	resp, body = exchange(t, h.addr, "GET http://site.test:"+o.port+"/ HTTP/1.1\r\nHost: site.test\r\n\r\n")
	if resp.StatusCode != http.StatusOK || body != "via upstream" {
		t.Errorf("not an exception: %d %q, want the upstream's answer", resp.StatusCode, body)
	}
	if got := up.requests(); len(got) != 1 || !strings.HasPrefix(got[0], "CONNECT 127.0.0.1:"+o.port+" ") {
		t.Errorf("upstream saw %q, want only the site.test request", got)
	}
}
