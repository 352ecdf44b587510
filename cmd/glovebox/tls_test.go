package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/glovebox/glovebox/proxy"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/tlsca"
)

func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		missing(t, "needs %s (make test installs it): %v", name, err)
	}
}

// testCA is a certificate authority of a test's own, for its HTTPS sites.
type testCA struct {
	name    string
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	pem     []byte
	pemFile string
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{name: name, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pemFile: filepath.Join(t.TempDir(), "ca.pem")}
	ca.cert, _ = x509.ParseCertificate(der)
	if err := os.WriteFile(ca.pemFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

// leaf issues a server certificate; a nil ca makes it self-signed.
func (ca *testCA) leaf(t testing.TB, names []string, ips []net.IP, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "test site"},
		DNSNames: names, IPAddresses: ips, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	parent, signer := tmpl, any(key)
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

var loopbackIP = []net.IP{net.IPv4(127, 0, 0, 1)}

// goodLeaf is a certificate for 127.0.0.1 from ca, valid now.
func (ca *testCA) goodLeaf(t testing.TB) tls.Certificate {
	return ca.leaf(t, nil, loopbackIP, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
}

// spkiHash is what --ignore-certificate-errors-spki-list takes for cert.
func spkiHash(cert tls.Certificate) string {
	sum := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// newTLSTestSite is the test site (newTestSite) served over HTTPS with cert.
func newTLSTestSite(t testing.TB, cert tls.Certificate) *testSite {
	t.Helper()
	s := newTestSite(t)
	ts := httptest.NewUnstartedServer(s.Server.Config.Handler)
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ts.Config.ErrorLog = nil
	ts.StartTLS()
	t.Cleanup(ts.Close)
	s.Server = ts // the plain one newTestSite started stays unused
	return s
}

func portOfURL(t testing.TB, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// siteRule matches one loopback HTTPS site by its port, which is all that
// tells the test's sites apart: no name is resolved.
func siteRule(t testing.TB, name string, s *testSite, action policy.Action) policy.Rule {
	return policy.Rule{Name: name, URLRegex: `^https://127\.0\.0\.1:` + portOfURL(t, s.URL) + `(/|$)`, Action: action}
}

// gloveboxCA downloads the CA certificate from the proxy's own address.
func gloveboxCA(t testing.TB, g *glovebox) []byte {
	t.Helper()
	resp, err := http.Get("http://" + g.addr + proxy.CAPEMPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", proxy.CAPEMPath, resp.Status)
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
func curlVia(t *testing.T, proxyAddr, cacert, u string, headers ...string) curlResult {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "body")
	args := []string{"-sS", "-v", "--max-time", "20", "--noproxy", "", "--proxy", "http://" + proxyAddr,
		"--cacert", cacert, "-o", out, "-w", "%{http_code}"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	cmd := exec.Command("curl", append(args, u)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run() // a failed handshake is an exit status; the caller checks
	r := curlResult{stderr: stderr.String()}
	r.status, _ = strconv.Atoi(strings.TrimSpace(stdout.String()))
	b, _ := os.ReadFile(out)
	r.body = string(b)
	if m := regexp.MustCompile(`(?m)^\*\s+issuer: (.*)$`).FindStringSubmatch(r.stderr); m != nil {
		r.issuer = m[1]
	}
	t.Logf("curl %s %v: %d, certificate issuer %q", u, headers, r.status, r.issuer)
	return r
}

var navHeaders = []string{"Sec-Fetch-Mode: navigate", "Sec-Fetch-Dest: document"}

// TestHTTPSThroughGlovebox is curl through Glovebox to HTTPS sites on
// loopback, one per policy outcome, each its own port.
func TestHTTPSThroughGlovebox(t *testing.T) {
	needTool(t, "curl")
	originCA := newTestCA(t, "Glovebox Test Origin CA") // in tls.extra_ca_files
	corpCA := newTestCA(t, "Glovebox Test Corp CA")     // trusted by one rule's ca_file only
	now := time.Now()
	var (
		inspected  = newTLSTestSite(t, originCA.goodLeaf(t))
		tunnelled  = newTLSTestSite(t, originCA.goodLeaf(t))
		isolated   = newTLSTestSite(t, originCA.goodLeaf(t))
		blocked    = newTLSTestSite(t, originCA.goodLeaf(t))
		corp       = newTLSTestSite(t, corpCA.goodLeaf(t))
		corpNoCA   = newTLSTestSite(t, corpCA.goodLeaf(t))
		selfSigned = newTLSTestSite(t, (*testCA)(nil).leaf(t, nil, loopbackIP, now.Add(-time.Hour), now.Add(time.Hour)))
		wrongName  = newTLSTestSite(t, originCA.leaf(t, []string{"other.test"}, nil, now.Add(-time.Hour), now.Add(time.Hour)))
		expired    = newTLSTestSite(t, originCA.leaf(t, nil, loopbackIP, now.Add(-48*time.Hour), now.Add(-24*time.Hour)))
	)
	g := startGlovebox(t, func(c *Config) {
		c.Proxy.TLS.ExtraCAFiles = []string{originCA.pemFile}
		noInspect := siteRule(t, "private-site", tunnelled, policy.ActionAllow)
		noInspect.NoInspect = true
		corpRule := siteRule(t, "corp-app", corp, policy.ActionAllow)
		corpRule.CAFile = corpCA.pemFile
		c.Proxy.Policy.Rules = []policy.Rule{
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
	if err := os.WriteFile(bundle, append(gloveboxCA(t, g), originCA.pem...), 0o644); err != nil {
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
		get := waitAudit(t, g, "GET", inspected.URL+"/style.css", 1)[0]
		if get["action"] != "allow" || get["rule"] != "allowed-site" || get["status"] != 200.0 || get["bytes"] != float64(len(r.body)) {
			t.Errorf("audit of the inspected request: %v", get)
		}
		waitAudit(t, g, "CONNECT", strings.TrimPrefix(inspected.URL, "https://"), 1)
	})

	t.Run("no_inspect site is tunnelled", func(t *testing.T) {
		r := curlVia(t, g.addr, bundle, tunnelled.URL+"/style.css")
		if r.status != 200 || !strings.Contains(r.body, tunnelled.marker) {
			t.Fatalf("status %d, body %q\n%s", r.status, r.body, r.stderr)
		}
		if !strings.Contains(r.issuer, originCA.name) {
			t.Errorf("curl was shown a certificate from %q, want the site's own (%s)", r.issuer, originCA.name)
		}
		c := waitAudit(t, g, "CONNECT", strings.TrimPrefix(tunnelled.URL, "https://"), 1)[0]
		if c["action"] != "allow" || c["rule"] != "private-site" {
			t.Errorf("audit of the tunnel: %v", c)
		}
		if n := countAudit(g, "GET", tunnelled.URL+"/style.css"); n != 0 {
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
		waitAudit(t, g, "GET", isolated.URL+"/", 2)
	})

	t.Run("API on the intercepted origin", func(t *testing.T) {
		r := curlVia(t, g.addr, bundle, isolated.URL+"/.glovebox/api/claim",
			"Content-Type: application/json")
		// curl sends GET here: the API answers (not the site, not policy).
		if r.status != 404 || !strings.Contains(r.body, `"error"`) {
			t.Errorf("GET on a POST endpoint: %d %q", r.status, r.body)
		}
		out, err := exec.Command("curl", "-sS", "--max-time", "20", "--noproxy", "", "--proxy", "http://"+g.addr,
			"--cacert", bundle, "-H", "Content-Type: application/json", "--data-raw", `{"code":"nope"}`,
			isolated.URL+"/.glovebox/api/claim").Output()
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		if json.Unmarshal(out, &e) != nil || e.Error != "no_tab" {
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
		e := waitAudit(t, g, "GET", blocked.URL+"/", 1)[0]
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
		site   *testSite
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
			e := waitAudit(t, g, "GET", tt.site.URL+"/", 1)[0]
			if e["status"] != 502.0 || !strings.Contains(e["error"].(string), "certificate") {
				t.Errorf("audit: %v", e)
			}
		})
	}
}

func countAudit(g *glovebox, method, u string) int {
	n := 0
	for _, e := range g.audit.events() {
		if e["event"] == "proxy_request" && e["method"] == method && e["url"] == u {
			n++
		}
	}
	return n
}

// waitAudit waits for n proxy_request events for method and u, and fails
// if there are more.
func waitAudit(t *testing.T, g *glovebox, method, u string, n int) []map[string]any {
	t.Helper()
	var got []map[string]any
	waitFor(t, 5*time.Second, method+" "+u+" in the audit log", func() (bool, string) {
		got = nil
		for _, e := range g.audit.events() {
			if e["event"] == "proxy_request" && e["method"] == method && e["url"] == u {
				got = append(got, e)
			}
		}
		return len(got) >= n, strconv.Itoa(len(got)) + " events"
	})
	time.Sleep(100 * time.Millisecond)
	if c := countAudit(g, method, u); c != n {
		t.Errorf("%d audit events for %s %s, want %d", c, method, u, n)
	}
	return got
}

func TestCACommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	cfgFile := writeConfig(t, "tls:\n  dir: "+dir+"\n")
	var out1, out2, errOut strings.Builder
	if err := run(t.Context(), []string{"ca", "--config", cfgFile}, &out1, &errOut); err != nil {
		t.Fatalf("glovebox ca: %v\n%s", err, errOut.String())
	}
	block, _ := pem.Decode([]byte(out1.String()))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("glovebox ca printed %q", out1.String())
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || cert.Subject.CommonName != tlsca.CAName || !cert.IsCA {
		t.Fatalf("printed certificate: %v %v", cert, err)
	}
	st, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v %v", st, err)
	}
	if err := run(t.Context(), []string{"ca", "--config", cfgFile}, &out2, &errOut); err != nil {
		t.Fatal(err)
	}
	if out1.String() != out2.String() {
		t.Error("a second glovebox ca printed another CA")
	}

	// serve uses that same CA, and serves it for download.
	g := startGlovebox(t, func(c *Config) { c.Proxy.TLS.Dir = dir })
	if got := string(gloveboxCA(t, g)); got != out1.String() {
		t.Error("the proxy serves another CA than glovebox ca printed")
	}

	bad := writeConfig(t, "tls:\n  ca_cert: /nonexistent/ca.pem\n  ca_key: /nonexistent/ca.key\n")
	err = run(t.Context(), []string{"ca", "--config", bad}, &out1, &errOut)
	if err == nil || !strings.Contains(err.Error(), "tls.ca_cert") {
		t.Errorf("missing files: %v", err)
	}
}

func TestCADownload(t *testing.T) {
	g := startGlovebox(t, nil)
	for _, tt := range []struct {
		path, ctype string
		der         bool
	}{
		{proxy.CAPEMPath, "application/x-pem-file", false},
		{proxy.CADERPath, "application/x-x509-ca-cert", true},
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
	for _, p := range []string{proxy.CAPEMPath, proxy.CADERPath} {
		if !strings.Contains(string(body), `href="`+p+`"`) {
			t.Errorf("the proxy's home page does not link %s: %q", p, body)
		}
	}
}

// nssHome makes a HOME whose NSS database (what Chromium on Linux trusts
// besides its root store) trusts the CA in caPEM for websites.
func nssHome(t *testing.T, caPEM []byte) string {
	t.Helper()
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(home, "glovebox-ca.pem")
	os.WriteFile(caFile, caPEM, 0o644)
	for _, args := range [][]string{
		{"-d", "sql:" + db, "-N", "--empty-password"},
		{"-d", "sql:" + db, "-A", "-t", "C,,", "-n", "Glovebox", "-i", caFile},
	} {
		if out, err := exec.Command("certutil", args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", args, err, out)
		}
	}
	return home
}

// siteName is the HTTPS end-to-end site's name. Chromium never applies a
// PAC file to loopback addresses, so the site needs a name; both browsers
// map it to 127.0.0.1 themselves (no DNS).
const siteName = "isolated.test"

const siteResolve = "MAP " + siteName + " 127.0.0.1 , MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"

// userProxyOptions configures the user's browser only by Glovebox's PAC URL,
// as an enterprise would.
func userProxyOptions(g *glovebox) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.Flag("proxy-server", false),
		chromedp.Flag("proxy-bypass-list", false),
		chromedp.Flag("proxy-pac-url", "http://"+g.addr+"/proxy.pac"),
		chromedp.Flag("host-resolver-rules", siteResolve),
	}
}

// TestIsolatedTabEndToEndHTTPS is the first issue's user story over HTTPS:
// the user's Chromium, configured only by the PAC URL, trusts Glovebox's CA
// through its NSS database (no --ignore-certificate-errors), opens
// https://isolated.test:PORT/, sees it as video, clicks, follows a link,
// types, and never receives a byte of it.
func TestIsolatedTabEndToEndHTTPS(t *testing.T) {
	needChromium(t)
	needTool(t, "certutil")
	siteCA := newTestCA(t, "Glovebox Test Site CA")
	cert := siteCA.leaf(t, []string{siteName}, nil, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	site := newTLSTestSite(t, cert)
	site.URL = "https://" + siteName + ":" + portOfURL(t, site.URL)
	g := startGlovebox(t, func(c *Config) {
		c.Proxy.PAC.DirectPrivate = false
		// The remote browser fetches the site itself: it finds it by the
		// same mapping and trusts exactly that site's key (Chromium honours
		// this with --user-data-dir).
		c.Isolate.Process.Flags = []string{"--host-resolver-rules=" + siteResolve,
			"--ignore-certificate-errors-spki-list=" + spkiHash(cert)}
	})
	home := nssHome(t, gloveboxCA(t, g))
	opts := append(userProxyOptions(g), chromedp.Env("HOME="+home))
	runEndToEnd(t, g, site, browserPIDs, opts...)
	if n := countAuditAction(g, "CONNECT", "isolate"); n == 0 {
		t.Error("the user's browser made no CONNECT for the isolated site: the PAC file did not route it through Glovebox")
	}

	// The same browser without Glovebox's CA in its NSS database refuses
	// the intercepted site: the trust above is what made it work.
	bctx := userBrowser(t, g.addr, append(userProxyOptions(g), chromedp.Env("HOME="+t.TempDir()))...)
	err := chromedp.Do(bctx, chromedp.Navigate(site.URL+"/"))
	if err == nil || !strings.Contains(err.Error(), "ERR_CERT") {
		t.Errorf("a browser that does not trust Glovebox's CA opened the site: %v", err)
	}
}

func countAuditAction(g *glovebox, method, action string) int {
	n := 0
	for _, e := range g.audit.events() {
		if e["event"] == "proxy_request" && e["method"] == method && e["action"] == action {
			n++
		}
	}
	return n
}

// acceptCounter listens on a loopback port and counts the connections it gets.
func acceptCounter(t testing.TB) (addr string, accepted func() int) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), func() int { return int(n.Load()) }
}

// interceptIssuer opens a CONNECT tunnel to target through the proxy and
// returns the issuer of the certificate presented inside it.
func interceptIssuer(t testing.TB, proxyAddr, target string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s: %v %v", target, resp, err)
	}
	host, _, _ := net.SplitHostPort(target)
	// Only who issued it matters here, not whether it is trusted.
	tc := tls.Client(c, &tls.Config{ServerName: host, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS through the tunnel to %s: %v", target, err)
	}
	return tc.ConnectionState().PeerCertificates[0].Issuer.CommonName
}
