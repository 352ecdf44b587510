package egress

import (
	"net/http"
	"strings"
	"testing"

	"github.com/glovebox/glovebox/proxy/policy"
)

// TestEgressDecidesForTheTabsUser: the isolated browser's requests are
// decided with the user of its tab, so a rule for a user or group holds
// inside the isolated tab too.
func TestEgressDecidesForTheTabsUser(t *testing.T) {
	o := startOrigin(t)
	pc := policy.Config{Default: policy.ActionIsolate, Groups: map[string][]string{"contractors": {"alice"}},
		Rules: []policy.Rule{{Name: "contractors-no-site", Host: "site.test", Groups: []string{"contractors"}, Action: policy.ActionBlock}}}
	u := "http://site.test:" + o.port + "/"
	req := "GET " + u + " HTTP/1.1\r\nHost: site.test\r\n\r\n"

	// testLookup says 127.0.0.1 is tab t1 of alice, a contractor.
	h := startEgress(t, testEgressConfig("site.test"), pc, nil)
	resp, body := exchange(t, h.addr, req)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "contractors-no-site") {
		t.Errorf("alice's tab: %d %q, want 403 naming the rule", resp.StatusCode, body)
	}
	if ev := h.audit.wait(t, "GET", u); ev["user"] != "alice" || ev["tab"] != "t1" || ev["rule"] != "contractors-no-site" {
		t.Errorf("audit %v", ev)
	}

	bob := func(ip string) (string, string, bool) { return "t2", "bob", ip == "127.0.0.1" }
	h = startEgress(t, testEgressConfig("site.test"), pc, bob)
	resp, body = exchange(t, h.addr, req)
	if resp.StatusCode != http.StatusOK || body != originBody {
		t.Errorf("bob's tab: %d %q", resp.StatusCode, body)
	}
	if ev := h.audit.wait(t, "GET", u); ev["user"] != "bob" || ev["action"] != "isolate" {
		t.Errorf("audit %v", ev)
	}
}
