//go:build linux

package isolate

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"
)

// testCert issues a certificate for 127.0.0.1 (or a CA when isCA), signed by
// parent, or self-signed when parent is nil.
func testCert(t *testing.T, cn string, isCA bool, parent *tls.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	signer, signKey := tmpl, any(key)
	if parent != nil {
		signer, signKey = parent.Leaf, parent.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// tlsSite serves a page titled title over HTTPS on loopback with cert.
func tlsSite(t *testing.T, cert tls.Certificate, title string) string {
	t.Helper()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "<title>%s</title><p>%s", title, title)
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// tunnelProxy stands in for the egress proxy: it tunnels CONNECT to the
// addresses in allow, refuses every other request, and records them all.
type tunnelProxy struct {
	allow map[string]bool
	mu    sync.Mutex
	seen  []string // "METHOD host" of every request
}

func (p *tunnelProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.seen = append(p.seen, r.Method+" "+r.Host)
	p.mu.Unlock()
	if r.Method != http.MethodConnect || !p.allow[r.Host] {
		http.Error(w, "refused by the test's egress proxy", http.StatusForbidden)
		return
	}
	up, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return
	}
	io.WriteString(conn, "HTTP/1.1 200 Connection Established\r\n\r\n")
	go func() {
		io.Copy(up, buf)
		up.Close()
	}()
	io.Copy(conn, up)
	conn.Close()
}

func (p *tunnelProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

// errorPage is what the page of a failed navigation shows.
type errorPage struct {
	Href        string `json:"href"`
	Text        string `json:"text"`
	Overridable bool   `json:"overridable"`
	Proceed     bool   `json:"proceed"`
}

// readErrorPage waits for Chromium's certificate interstitial and reads it.
func readErrorPage(ctx context.Context, t *testing.T) errorPage {
	t.Helper()
	const js = `(() => {
		if (location.href !== 'chrome-error://chromewebdata/' || document.readyState !== 'complete' ||
			typeof loadTimeData === 'undefined') return null;
		return {href: location.href, text: document.body.innerText,
			overridable: loadTimeData.getBoolean('overridable'),
			proceed: document.getElementById('proceed-link') !== null};
	})()`
	var last error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		p, err := chromedp.Run(ctx, chromedp.Evaluate[*errorPage](js))
		if err == nil && p != nil {
			return *p
		}
		last = err
	}
	t.Fatalf("no certificate error page: %v", last)
	return errorPage{}
}

// appliedPolicies reads chrome://policy: the source and status of each policy
// that is set.
func appliedPolicies(ctx context.Context, t *testing.T) map[string][2]string {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate("chrome://policy")); err != nil {
		t.Fatalf("navigate chrome://policy: %v", err)
	}
	// The page draws its table in shadow roots, row by row.
	const js = `(() => {
		const rows = {};
		(function walk(n) {
			if (n.tagName === 'POLICY-ROW' && n.shadowRoot) {
				const r = n.shadowRoot.querySelector('.policy.row');
				const text = c => ((r && r.querySelector(c)) || {}).textContent || '';
				const source = text('.source').trim();
				if (source) rows[text('.name').trim()] = [source, text('.messages').trim()];
			}
			if (n.shadowRoot) walk(n.shadowRoot);
			for (const c of n.children || []) walk(c);
		})(document.body);
		return rows;
	})()`
	var last map[string][2]string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[map[string][2]string](js))
		if err != nil {
			t.Fatalf("read chrome://policy: %v", err)
		}
		if _, ok := rows["SSLErrorOverrideAllowed"]; ok && len(rows) >= len(browserPolicies) {
			return rows
		}
		last = rows
	}
	t.Fatalf("chrome://policy shows %v, want Glovebox's policies", last)
	return nil
}

// TestContainerdPolicies: a browser in a container reads Glovebox's managed
// policy. A site with a bad certificate gets an error page with no way
// through, a site signed by a trusted CA loads, chrome://policy shows every
// policy applied, and the browser sends the egress proxy nothing the test did
// not ask for.
func TestContainerdPolicies(t *testing.T) {
	needContainerd(t)
	needNetwork(t)

	ca := testCert(t, "Glovebox Test CA", true, nil)
	badSite := tlsSite(t, testCert(t, "self-signed", false, nil), "untrusted")
	goodSite := tlsSite(t, testCert(t, "internal", false, &ca), "trusted")

	// The stand-in egress proxy listens before the browser starts, so that
	// it sees whatever the browser sends at start; the firewall lets each
	// container reach its port on the container's own host end only.
	px := &tunnelProxy{allow: map[string]bool{badSite: true, goodSite: true}}
	pl, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	psrv := &http.Server{Handler: px}
	go psrv.Serve(pl)
	defer psrv.Close()

	n := newTestNetwork(t, pl.Addr().(*net.TCPAddr).Port, nil)
	c := newTestContainerd(t, func(c *ContainerdConfig) { c.TrustedCAs = [][]byte{ca.Leaf.Raw} }, n)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	b, err := c.Start(ctx, Spec{TabID: "tab-policy"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer b.Close()
	actx, acancel := remote.NewAllocator(ctx, devtoolsBridge(t, b), remote.NoModifyURL)
	defer acancel()
	cctx, ccancel := chromedp.NewContext(actx)
	defer ccancel()

	// A bad certificate: the interstitial, and no way through it.
	err = chromedp.Do(cctx, chromedp.Navigate("https://"+badSite+"/"))
	if err == nil || !strings.Contains(err.Error(), "ERR_CERT_AUTHORITY_INVALID") {
		t.Errorf("navigate to a self-signed site: %v, want ERR_CERT_AUTHORITY_INVALID", err)
	}
	page := readErrorPage(cctx, t)
	if page.Overridable || page.Proceed {
		t.Errorf("the certificate error page can be clicked through (overridable %v, proceed link %v): SSLErrorOverrideAllowed is not applied", page.Overridable, page.Proceed)
	}
	if !strings.Contains(page.Text, "ERR_CERT_AUTHORITY_INVALID") {
		t.Errorf("error page text %q does not name the error", page.Text)
	}

	// A certificate of the trusted CA: the page.
	if err := chromedp.Do(cctx, chromedp.Navigate("https://"+goodSite+"/")); err != nil {
		t.Errorf("navigate to a site of the trusted CA: %v", err)
	} else if title, err := chromedp.Run(cctx, chromedp.Title()); err != nil || title != "trusted" {
		t.Errorf("title = %q, %v, want the site's page", title, err)
	}

	// Every policy is known to this Chromium and applied from the file.
	rows := appliedPolicies(cctx, t)
	want := append(slices.Sorted(maps.Keys(browserPolicies)), "CACertificates")
	// Chromium 156 lists these two as deprecated; a deprecated policy still
	// applies. Any other status, or another policy deprecated, is news.
	deprecated := map[string]bool{"AutofillAddressEnabled": true, "AutofillCreditCardEnabled": true}
	for _, name := range want {
		row, ok := rows[name]
		status := "OK"
		if deprecated[name] {
			status = "Deprecated"
		}
		switch {
		case !ok:
			t.Errorf("chrome://policy does not list %s", name)
		case row[0] != "Platform" || row[1] != status:
			t.Errorf("chrome://policy: %s from %q has status %q, want Platform and %s", name, row[0], row[1], status)
		}
	}
	for name := range rows {
		if !slices.Contains(want, name) {
			t.Errorf("chrome://policy lists %s, which Glovebox does not set", name)
		}
	}

	// Nothing reached the egress proxy but the test's own two sites.
	for _, r := range px.requests() {
		if r != "CONNECT "+badSite && r != "CONNECT "+goodSite {
			t.Errorf("the browser sent %q to the egress proxy on its own", r)
		}
	}
}
