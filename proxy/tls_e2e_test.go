package proxy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/tlsca"
)

// HTTPS through a real Server on loopback, with curl as the client: what
// it intercepts, tunnels, isolates and blocks, and what it says of an
// origin's bad certificate.

// testCert issues a certificate from tmpl, signed by parent, or by itself
// when parent is nil (a test CA, or a self-signed site).
func testCert(t testing.TB, tmpl *x509.Certificate, parent *tls.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	issuer, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		issuer, signer = parent.Leaf, parent.PrivateKey.(crypto.Signer)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// testCA is a certificate authority of a test's own, for its HTTPS sites.
func testCA(t testing.TB, name string) *tls.Certificate {
	ca := testCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil)
	return &ca
}

// siteCert is a server certificate for names and ips, valid from notBefore
// to notAfter, from ca (nil: self-signed).
func siteCert(t testing.TB, ca *tls.Certificate, names []string, ips []net.IP, notBefore, notAfter time.Time) tls.Certificate {
	return testCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "test site"},
		DNSNames: names, IPAddresses: ips, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca)
}

// goodCert is a certificate for 127.0.0.1 from ca, valid now.
func goodCert(t testing.TB, ca *tls.Certificate) tls.Certificate {
	return siteCert(t, ca, nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
}

// markedSite is an HTTPS site on loopback whose every page carries a
// marker of its own (so that a test sees whether its bytes reached the
// client) and that counts the requests it served by path.
type markedSite struct {
	*httptest.Server
	marker string
	mu     sync.Mutex
	served map[string]int
}

func newMarkedSite(t testing.TB, cert tls.Certificate) *markedSite {
	t.Helper()
	s := &markedSite{marker: "GBMARK" + randomToken(), served: map[string]int{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.served[r.URL.Path]++
		s.mu.Unlock()
		io.WriteString(w, "<p>"+s.marker+"</p>")
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *markedSite) servedCount(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[path]
}

// siteRule matches one loopback HTTPS site by its port, which is all that
// tells the test's sites apart: no name is resolved.
func siteRule(t testing.TB, name string, s *markedSite, action policy.Action) policy.Rule {
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return policy.Rule{Name: name, URLRegex: `^https://127\.0\.0\.1:` + u.Port() + `(/|$)`, Action: action}
}

// gloveboxCA downloads the CA certificate from the proxy's own address, as
// a user does.
func gloveboxCA(t testing.TB, h *mitmHarness) []byte {
	t.Helper()
	resp, err := http.Get("http://" + h.addr + CAPEMPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", CAPEMPath, resp.Status)
	}
	return b
}

type curlResult struct {
	status int
	body   string
	issuer string // of the certificate curl was shown
	stderr string
}

// curlVia fetches u with curl through the proxy, trusting only cacert.
// A failed handshake is a curl failure: the caller checks the result.
func curlVia(t *testing.T, proxyAddr, cacert, u string, headers ...string) curlResult {
	t.Helper()
	out := filepath.Join(t.TempDir(), "body")
	args := []string{"-v", "--proxy", "http://" + proxyAddr, "--cacert", cacert, "-o", out, "-w", "%{http_code}"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	stdout, stderr, _ := runCurl(t, append(args, u)...)
	r := curlResult{stderr: stderr}
	r.status, _ = strconv.Atoi(strings.TrimSpace(stdout))
	b, _ := os.ReadFile(out)
	r.body = string(b)
	if m := regexp.MustCompile(`(?m)^\*\s+issuer: (.*)$`).FindStringSubmatch(r.stderr); m != nil {
		r.issuer = m[1]
	}
	t.Logf("curl %s %v: %d, certificate issuer %q", u, headers, r.status, r.issuer)
	return r
}

var navHeaders = []string{"Sec-Fetch-Mode: navigate", "Sec-Fetch-Dest: document"}

// isRequest matches the proxy_request events for method and u.
func isRequest(method, u string) func(map[string]any) bool {
	return func(e map[string]any) bool {
		return e["event"] == audit.EventRequest && e["method"] == method && e["url"] == u
	}
}

func (h *mitmHarness) countAudit(t *testing.T, method, u string) int {
	n := 0
	for _, e := range h.audit.events(t) {
		if isRequest(method, u)(e) {
			n++
		}
	}
	return n
}

// waitAudit waits for n proxy_request events for method and u, and fails
// if there are more.
func (h *mitmHarness) waitAudit(t *testing.T, method, u string, n int) []map[string]any {
	t.Helper()
	got := h.audit.waitEvents(t, method+" "+u+" in the audit log", n, isRequest(method, u))
	// Extra events would come as soon as the expected ones; nothing marks
	// their absence but a moment of waiting.
	time.Sleep(100 * time.Millisecond)
	if c := h.countAudit(t, method, u); c != n {
		t.Errorf("%d audit events for %s %s, want %d", c, method, u, n)
	}
	return got
}

// TestHTTPSThroughGlovebox is curl through Glovebox to HTTPS sites on
// loopback, one per policy outcome, each its own port.
func TestHTTPSThroughGlovebox(t *testing.T) {
	needCurl(t)
	originCA := testCA(t, "Glovebox Test Origin CA") // in tls.extra_ca_files
	corpCA := testCA(t, "Glovebox Test Corp CA")     // trusted by one rule's ca_file only
	originCAFile, corpCAFile := writeCertPEM(t, originCA.Leaf), writeCertPEM(t, corpCA.Leaf)
	now := time.Now()
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
	var (
		inspected  = newMarkedSite(t, goodCert(t, originCA))
		tunnelled  = newMarkedSite(t, goodCert(t, originCA))
		isolated   = newMarkedSite(t, goodCert(t, originCA))
		blocked    = newMarkedSite(t, goodCert(t, originCA))
		corp       = newMarkedSite(t, goodCert(t, corpCA))
		corpNoCA   = newMarkedSite(t, goodCert(t, corpCA))
		selfSigned = newMarkedSite(t, siteCert(t, nil, nil, loopback, now.Add(-time.Hour), now.Add(time.Hour)))
		wrongName  = newMarkedSite(t, siteCert(t, originCA, []string{"other.test"}, nil, now.Add(-time.Hour), now.Add(time.Hour)))
		expired    = newMarkedSite(t, siteCert(t, originCA, nil, loopback, now.Add(-48*time.Hour), now.Add(-24*time.Hour)))
	)
	g := startMITMProxy(t, func(c *Config) {
		c.TLS.ExtraCAFiles = []string{originCAFile}
		noInspect := siteRule(t, "private-site", tunnelled, policy.ActionAllow)
		noInspect.NoInspect = true
		corpRule := siteRule(t, "corp-app", corp, policy.ActionAllow)
		corpRule.CAFile = corpCAFile
		c.Policy.Rules = []policy.Rule{
			siteRule(t, "allowed-site", inspected, policy.ActionAllow),
			noInspect,
			siteRule(t, "isolated-site", isolated, policy.ActionIsolate),
			siteRule(t, "no-such-site", blocked, policy.ActionBlock),
			corpRule,
			siteRule(t, "corp-without-ca", corpNoCA, policy.ActionAllow),
			siteRule(t, "self-signed", selfSigned, policy.ActionAllow),
			siteRule(t, "wrong-name", wrongName, policy.ActionAllow),
			siteRule(t, "expired", expired, policy.ActionAllow),
		}
	})
	// What a user installs: Glovebox's CA (and, for the one site Glovebox
	// does not inspect, the CA that site's certificate comes from).
	bundle := filepath.Join(t.TempDir(), "trust.pem")
	originPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: originCA.Leaf.Raw})
	if err := os.WriteFile(bundle, append(gloveboxCA(t, g), originPEM...), 0o644); err != nil {
		t.Fatal(err)
	}
	const gloveboxIssuer = tlsca.CAName

	t.Run("allowed site is inspected", func(t *testing.T) {
		r := curlVia(t, g.addr, bundle, inspected.URL+"/style.css")
		if r.status != 200 || !strings.Contains(r.body, inspected.marker) {
			t.Fatalf("status %d, body %q\n%s", r.status, r.body, r.stderr)
		}
		if !strings.Contains(r.issuer, gloveboxIssuer) {
			t.Errorf("curl was shown a certificate from %q, want Glovebox's CA", r.issuer)
		}
		// One event for the CONNECT and one for the request inside it.
		get := g.waitAudit(t, "GET", inspected.URL+"/style.css", 1)[0]
		if get["action"] != "allow" || get["rule"] != "allowed-site" || get["status"] != 200.0 || get["bytes"] != float64(len(r.body)) {
			t.Errorf("audit of the inspected request: %v", get)
		}
		g.waitAudit(t, "CONNECT", strings.TrimPrefix(inspected.URL, "https://"), 1)
	})

	t.Run("no_inspect site is tunnelled", func(t *testing.T) {
		r := curlVia(t, g.addr, bundle, tunnelled.URL+"/style.css")
		if r.status != 200 || !strings.Contains(r.body, tunnelled.marker) {
			t.Fatalf("status %d, body %q\n%s", r.status, r.body, r.stderr)
		}
		if name := originCA.Leaf.Subject.CommonName; !strings.Contains(r.issuer, name) {
			t.Errorf("curl was shown a certificate from %q, want the site's own (%s)", r.issuer, name)
		}
		c := g.waitAudit(t, "CONNECT", strings.TrimPrefix(tunnelled.URL, "https://"), 1)[0]
		if c["action"] != "allow" || c["rule"] != "private-site" {
			t.Errorf("audit of the tunnel: %v", c)
		}
		if n := g.countAudit(t, "GET", tunnelled.URL+"/style.css"); n != 0 {
			t.Errorf("Glovebox saw inside a no_inspect tunnel: %d events", n)
		}
	})

	t.Run("isolated site", func(t *testing.T) {
		nav := curlVia(t, g.addr, bundle, isolated.URL+"/", navHeaders...)
		if nav.status != 200 || !strings.Contains(nav.body, `id="glovebox-screen"`) {
			t.Errorf("navigation: status %d, body %q\n%s", nav.status, nav.body, nav.stderr)
		}
		if !strings.Contains(nav.issuer, gloveboxIssuer) {
			t.Errorf("issuer %q", nav.issuer)
		}
		sub := curlVia(t, g.addr, bundle, isolated.URL+"/")
		if sub.status != 403 {
			t.Errorf("without navigation headers: status %d, want 403", sub.status)
		}
		js := curlVia(t, g.addr, bundle, isolated.URL+"/.glovebox/app.js")
		if js.status != 200 || len(js.body) < 100 {
			t.Errorf("the landing page's script on the intercepted origin: %d", js.status)
		}
		for _, r := range []curlResult{nav, sub, js} {
			if strings.Contains(r.body, isolated.marker) {
				t.Errorf("the isolated site's bytes reached curl")
			}
		}
		if n := isolated.servedCount("/"); n != 0 {
			t.Errorf("Glovebox fetched the isolated site itself %d times", n)
		}
		g.waitAudit(t, "GET", isolated.URL+"/", 2)
	})

	t.Run("API on the intercepted origin", func(t *testing.T) {
		r := curlVia(t, g.addr, bundle, isolated.URL+"/.glovebox/api/claim",
			"Content-Type: application/json")
		// curl sends GET here: the API answers (not the site, not policy).
		if r.status != 404 || !strings.Contains(r.body, `"error"`) {
			t.Errorf("GET on a POST endpoint: %d %q", r.status, r.body)
		}
		out := curl(t, "--proxy", "http://"+g.addr, "--cacert", bundle, "-H", "Content-Type: application/json",
			"--data-raw", `{"code":"nope"}`, isolated.URL+"/.glovebox/api/claim")
		var e struct{ Error string }
		if json.Unmarshal([]byte(out), &e) != nil || e.Error != "no_tab" {
			t.Errorf("claim with a bad code: %q, want the API's no_tab", out)
		}
	})

	t.Run("blocked site", func(t *testing.T) {
		r := curlVia(t, g.addr, bundle, blocked.URL+"/", navHeaders...)
		if r.status != 403 || !strings.Contains(r.body, "This site is blocked") || !strings.Contains(r.body, "no-such-site") {
			t.Errorf("status %d, body %q", r.status, r.body)
		}
		if !strings.Contains(r.issuer, gloveboxIssuer) {
			t.Errorf("issuer %q", r.issuer)
		}
		if strings.Contains(r.body, blocked.marker) || blocked.servedCount("/") != 0 {
			t.Error("the blocked site was fetched")
		}
		e := g.waitAudit(t, "GET", blocked.URL+"/", 1)[0]
		if e["action"] != "block" || e["status"] != 403.0 {
			t.Errorf("audit: %v", e)
		}
	})

	t.Run("rule ca_file", func(t *testing.T) {
		r := curlVia(t, g.addr, bundle, corp.URL+"/style.css")
		if r.status != 200 || !strings.Contains(r.body, corp.marker) {
			t.Errorf("site trusted by its rule's ca_file: %d %q", r.status, r.body)
		}
		r = curlVia(t, g.addr, bundle, corpNoCA.URL+"/style.css")
		if r.status != 502 || !strings.Contains(r.body, "certificate could not be verified") {
			t.Errorf("same CA without the rule's ca_file: %d %q", r.status, r.body)
		}
	})

	for _, tt := range []struct {
		name   string
		site   *markedSite
		reason string
	}{
		{"self-signed", selfSigned, "self-signed"},
		{"wrong name", wrongName, "it is for other.test, not for 127.0.0.1"},
		{"expired", expired, "expired"},
	} {
		t.Run("bad certificate "+tt.name, func(t *testing.T) {
			r := curlVia(t, g.addr, bundle, tt.site.URL+"/", navHeaders...)
			if r.status != 502 {
				t.Errorf("status %d, want 502\n%s", r.status, r.stderr)
			}
			for _, w := range []string{"certificate could not be verified", tt.reason} {
				if !strings.Contains(r.body, w) {
					t.Errorf("error page %q does not say %q", r.body, w)
				}
			}
			if strings.Contains(r.body, tt.site.marker) || tt.site.servedCount("/") != 0 {
				t.Error("the site was fetched despite its certificate")
			}
			e := g.waitAudit(t, "GET", tt.site.URL+"/", 1)[0]
			if e["status"] != 502.0 || !strings.Contains(e["error"].(string), "certificate") {
				t.Errorf("audit: %v", e)
			}
		})
	}
}

// TestCADownload: the proxy's own address serves its CA certificate, as
// PEM and as DER, and its home page links both.
func TestCADownload(t *testing.T) {
	g := startMITMProxy(t, nil)
	for _, tt := range []struct {
		path, ctype string
		der         bool
	}{
		{CAPEMPath, "application/x-pem-file", false},
		{CADERPath, "application/x-x509-ca-cert", true},
	} {
		resp, err := http.Get("http://" + g.addr + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tt.ctype {
			t.Errorf("%s: %s %q", tt.path, resp.Status, resp.Header.Get("Content-Type"))
		}
		der := body
		if !tt.der {
			block, _ := pem.Decode(body)
			if block == nil {
				t.Fatalf("%s: not PEM: %q", tt.path, body)
			}
			der = block.Bytes
		}
		if c, err := x509.ParseCertificate(der); err != nil || c.Subject.CommonName != tlsca.CAName {
			t.Errorf("%s: %v %v", tt.path, c, err)
		}
	}
	resp, err := http.Get("http://" + g.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, p := range []string{CAPEMPath, CADERPath} {
		if !strings.Contains(string(body), `href="`+p+`"`) {
			t.Errorf("the proxy's home page does not link %s: %q", p, body)
		}
	}
}
