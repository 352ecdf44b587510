package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/policy"
)

// tlsCORSListener serves a secret over HTTPS with cert and CORS allowed, so an
// isolated page can tell a page it could read from a certificate error.
func tlsCORSListener(t *testing.T, cert tls.Certificate) (addr, secret string) {
	t.Helper()
	secret = fmt.Sprintf("tls-secret-%d", time.Now().UnixNano())
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		io.WriteString(w, secret)
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.Config.ErrorLog = nil
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String(), secret
}

// idleWindow is how long the warm and claimed browsers are watched for
// requests they make on their own. Chromium sends them within a second or
// two of its start (then backs off), so the window covers several of them;
// seeing nothing is the property, which only a bounded window can show.
const idleWindow = 10 * time.Second

// TestContainerdBrowserSettings is the isolated browser's own settings, with
// the real egress proxy: the CAs of tls.extra_ca_files and of a rule's
// ca_file are trusted inside the containers; the warm and the claimed
// browser call nobody on their own; and the media candidates offered to the
// user leave out the containers' links.
func TestContainerdBrowserSettings(t *testing.T) {
	site := newTestSite(t)
	extraCA, ruleCA := newTestCA(t, "extra CA"), newTestCA(t, "rule CA")
	extraAddr, extraSecret := tlsCORSListener(t, extraCA.goodLeaf(t))
	ruleAddr, ruleSecret := tlsCORSListener(t, ruleCA.goodLeaf(t))
	subnet := netip.MustParsePrefix(defaultConfig().Isolate.Network.Subnet)
	g := startContainerdGlovebox(t, site, 1, func(c *Config) {
		c.Proxy.TLS.ExtraCAFiles = []string{extraCA.pemFile}
		c.Proxy.Policy.Rules = append(c.Proxy.Policy.Rules,
			policy.Rule{Name: "internal-pki", Domain: "internal.test", Action: policy.ActionAllow, CAFile: ruleCA.pemFile})
		c.Egress.AllowInternal = append(c.Egress.AllowInternal, extraAddr, ruleAddr)
		// Media on every address of the host but the containers'. The
		// only offer below has no candidates: nothing is sent anywhere.
		c.Stream.Addresses = nil
	})
	waitFor(t, 60*time.Second, "a warm container", func() (bool, string) {
		return g.pool.Stats().Ready == 1, fmt.Sprintf("%+v", g.pool.Stats())
	})
	watchUntil := time.Now().Add(idleWindow)

	// The warm container's veth is on the host, numbered from the subnet:
	// without the filters its address would be a candidate.
	var vethAddrs []string
	for _, name := range ourVeths() {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && subnet.Contains(p.Addr()) {
				vethAddrs = append(vethAddrs, p.Addr().String())
			}
		}
	}
	if len(vethAddrs) == 0 {
		t.Fatalf("no veth with an address in %s while a container runs: the test proves nothing", subnet)
	}

	q := url.Values{}
	q.Add("u", "https://"+extraAddr+"/")
	q.Add("u", "https://"+ruleAddr+"/")
	api := site.URL + "/.glovebox/api"
	status, out := apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/nettest?" + q.Encode(), "width": 800, "height": 600})
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	status, out = apiCall(t, g, "127.0.0.1", api+"/tabs/"+out["token"].(string)+"/offer", map[string]string{"sdp": offerSDP(t)})
	if status != 200 {
		t.Fatalf("offer: %d %v", status, out)
	}
	var candidates []string
	for line := range strings.Lines(out["sdp"].(string)) {
		if !strings.HasPrefix(line, "a=candidate:") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("candidate line %q", line)
		}
		candidates = append(candidates, f[2]+" "+f[4])
		if a, err := netip.ParseAddr(f[4]); err == nil && subnet.Contains(a) {
			t.Errorf("the answer offers %s, a container link's address (veths: %v)", strings.TrimSpace(line), vethAddrs)
		}
	}
	if len(candidates) == 0 {
		t.Fatal("the answer has no candidates at all")
	}
	t.Logf("candidates: %v", candidates)

	// Both CAs are trusted in the container: the page reads both sites.
	waitFor(t, 60*time.Second, "the page's network report", func() (bool, string) { return site.lastReport("nettest") != "", "" })
	var results map[string]string
	if err := json.Unmarshal([]byte(site.lastReport("nettest")), &results); err != nil {
		t.Fatal(err)
	}
	for u, secret := range map[string]string{"https://" + extraAddr + "/": extraSecret, "https://" + ruleAddr + "/": ruleSecret} {
		if !strings.Contains(results[u], secret) {
			t.Errorf("%s from the isolated page: %q, want the page (its certificate's CA is trusted)", u, results[u])
		}
	}

	// The observation window: every request the browsers made, the warm
	// ones included, is one of the test's own.
	time.Sleep(time.Until(watchUntil))
	for _, e := range g.audit.events() {
		if e["event"] == "egress_request" && e["host"] != "127.0.0.1" {
			t.Errorf("a browser sent %v %v on its own (tab %q, %v)", e["method"], e["url"], e["tab"], e["rule"])
		}
	}
	// A warm browser's requests are not audited (no user caused them):
	// the egress proxy's debug log says each.
	for l := range strings.Lines(g.logs.String()) {
		if strings.Contains(l, "refused a request of no tab") && !strings.Contains(l, " host=127.0.0.1 ") {
			t.Errorf("a warm browser sent a request on its own: %s", strings.TrimSpace(l))
		}
	}
}
