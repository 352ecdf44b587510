package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
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
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/glovebox/glovebox/proxy"
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
