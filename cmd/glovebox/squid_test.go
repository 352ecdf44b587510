package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Squid, Debian's package, chained with Glovebox both ways: as its parent
// (allowed traffic and the isolated browsers' egress go through Squid) and
// as its child (a client configured for Squid reaches Glovebox's landing
// page and API through it). Each test starts its own Squid on a loopback
// port with a configuration of its own in a temporary directory, and stops it.

const squidBinary = "/usr/sbin/squid"

func needSquid(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(squidBinary); err != nil {
		missing(t, "needs Debian's squid at %s (make test installs it): %v", squidBinary, err)
	}
}

// squidOpts shape a test's Squid.
type squidOpts struct {
	// user and pass, when set, make Squid require Basic proxy
	// authentication against an htpasswd file with that one user.
	user, pass string
	// parent, when set, makes Squid send everything to that proxy
	// (host:port) and nothing direct.
	parent string
	// cpus, when set, pins Squid to those CPUs (a taskset list: "1").
	cpus string
	// noAccessLog turns the access log off, as a benchmark wants it.
	noAccessLog bool
}

// squid is one Squid run by a test.
type squid struct {
	addr string
	dir  string
	pid  int
}

// squidConf keeps Squid on loopback: it listens on 127.0.0.1, serves only
// loopback clients, refuses every destination outside 127.0.0.0/8 before
// resolving anything (tests use IP-literal URLs only), has no DNS server but
// 127.0.0.1 and a hosts file of its own, no ICP/HTCP/SNMP, no pinger, no
// cache.
const squidConf = `http_port 127.0.0.1:{{PORT}}
visible_hostname squid-test
pid_filename {{DIR}}/squid.pid
coredump_dir {{DIR}}
cache_log {{DIR}}/cache.log
access_log stdio:{{DIR}}/access.log squid
cache deny all
cache_mem 8 MB
netdb_filename none
pinger_enable off
icp_port 0
htcp_port 0
snmp_port 0
dns_nameservers 127.0.0.1
hosts_file {{DIR}}/hosts
shutdown_lifetime 0 seconds
max_filedescriptors 1024
acl gb_clients src 127.0.0.0/8
acl gb_loopback dst 127.0.0.0/8
http_access deny !gb_clients
http_access deny !gb_loopback
`

func startSquid(t testing.TB, o squidOpts) *squid {
	t.Helper()
	needSquid(t)
	dir, err := os.MkdirTemp("", "gb-squid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	port := freePort(t)
	conf := strings.NewReplacer("{{PORT}}", strconv.Itoa(port), "{{DIR}}", dir).Replace(squidConf)
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("hosts", "127.0.0.1 localhost\n")
	if o.user != "" {
		hash, err := exec.Command("openssl", "passwd", "-apr1", o.pass).Output()
		if err != nil {
			t.Fatalf("hash the Squid test password with openssl: %v", err)
		}
		write("passwd", o.user+":"+strings.TrimSpace(string(hash))+"\n")
		conf += "auth_param basic program /usr/lib/squid/basic_ncsa_auth " + dir + "/passwd\n" +
			"auth_param basic realm squid-test\n" +
			"acl gb_auth proxy_auth REQUIRED\n" +
			"http_access deny !gb_auth\n"
	}
	if o.noAccessLog {
		conf = strings.Replace(conf, "access_log stdio:"+dir+"/access.log squid", "access_log none", 1)
	}
	conf += "http_access allow all\n"
	if o.parent != "" {
		host, pport, _ := net.SplitHostPort(o.parent)
		conf += fmt.Sprintf("cache_peer %s parent %s 0 no-query no-digest default name=glovebox\nnever_direct allow all\n", host, pport)
	}
	write("squid.conf", conf)
	if os.Geteuid() == 0 {
		// Squid started as root runs as Debian's proxy user; its logs are
		// written as that user.
		if u, err := user.Lookup("proxy"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Chown(p, uid, gid) })
		}
	}
	if out, err := exec.Command(squidBinary, "-k", "parse", "-f", filepath.Join(dir, "squid.conf")).CombinedOutput(); err != nil {
		t.Fatalf("squid -k parse: %v\n%s", err, out)
	}

	args := []string{squidBinary, "-N", "-f", filepath.Join(dir, "squid.conf")}
	if o.cpus != "" {
		args = append([]string{"taskset", "-c", o.cpus}, args...) // taskset execs: the pid is Squid's
	}
	s := &squid{addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir}
	s.pid = startListening(t, "squid", exec.Command(args[0], args[1:]...), s.addr, s.cacheLog)
	return s
}

// startListening starts the server cmd as the test's own process, stops
// it (SIGTERM, then SIGKILL) when the test ends, and waits up to 30 s for
// it to listen on addr; if it exits or does not listen, the test fails
// with its output and logs(). It returns the process's id.
func startListening(t testing.TB, what string, cmd *exec.Cmd, addr string, logs func() string) int {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return cmd.Process.Pid
		}
		select {
		case err := <-exited:
			t.Fatalf("%s exited: %v\n%s\n%s", what, err, out.String(), logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s in 30 s\n%s\n%s", what, addr, out.String(), logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *squid) accessLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "access.log"))
	return string(b)
}

func (s *squid) cacheLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "cache.log"))
	return string(b)
}

// waitLogged waits until Squid's access log has a line with all of parts.
func (s *squid) waitLogged(t testing.TB, parts ...string) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("Squid to log %q", parts), func() (bool, string) {
		log := s.accessLog()
		for _, line := range strings.Split(log, "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok && line != "" {
				return true, ""
			}
		}
		return false, log
	})
}

// (Glovebox's own hygiene and parent-proxy tests, with a Go parent, are
// proxy's hygiene_e2e_test.go; these stay here with the Squid harness,
// which the egress's test needs the binary for.)

func needCurl(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		missing(t, "needs curl (make test installs it): %v", err)
	}
}

// curl runs curl with args and returns its standard output; it fails the
// test if curl fails. An empty environment keeps any proxy settings of the
// machine out of it.
func curl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := curlErr(args...)
	if err != nil {
		t.Fatalf("curl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// curlErr is curl for a transfer that may fail: its output and why it failed.
func curlErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", append([]string{"-sS", "--max-time", "30"}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), err
}

// viaOrigin is a loopback origin that answers "ok <path>" and keeps the
// Via header each path last arrived with.
type viaOrigin struct {
	*httptest.Server
	mu  sync.Mutex
	via map[string]string
}

func newViaOrigin(t testing.TB) *viaOrigin {
	t.Helper()
	o := &viaOrigin{via: map[string]string{}}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.via[r.URL.Path] = r.Header.Get("Via")
		o.mu.Unlock()
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *viaOrigin) viaOf(path string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.via[path]
}

// tlsOrigin is an HTTPS origin on loopback and the PEM file of its
// certificate, for tls.extra_ca_files.
func tlsOrigin(t testing.TB) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	f := filepath.Join(t.TempDir(), "origin.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, f
}

// interceptingClient is a client that uses g as its proxy and trusts g's
// CA, downloaded from it as a user does.
func interceptingClient(t testing.TB, g *glovebox) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if b := gloveboxCA(t, g); !pool.AppendCertsFromPEM(b) {
		t.Fatalf("no CA certificate at /glovebox-ca.pem: %q", b)
	}
	pu, _ := url.Parse("http://" + g.addr)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// TestSquidAsParent: with Squid as upstream.proxy, allowed plain HTTP and
// CONNECT tunnels go through it, authenticated with Glovebox's credentials;
// wrong credentials give the user a 502 that names the parent.
func TestSquidAsParent(t *testing.T) {
	needSquid(t)
	needCurl(t)
	o := newViaOrigin(t)
	const user, pass = "gbuser", "s3cr:et@x"
	sq := startSquid(t, squidOpts{user: user, pass: pass})
	g := startGlovebox(t, func(c *Config) {
		tunnelRule(c)
		c.Proxy.Upstream.Proxy = "http://" + url.UserPassword(user, pass).String() + "@" + sq.addr
	})
	px := "http://" + g.addr
	host := strings.TrimPrefix(o.URL, "http://")

	if out := curl(t, "-x", px, o.URL+"/plain"); out != "ok /plain" {
		t.Errorf("plain HTTP through Glovebox and Squid: %q", out)
	}
	sq.waitLogged(t, "TCP_MISS/200", "GET "+o.URL+"/plain", " "+user+" ", "HIER_DIRECT/127.0.0.1")
	if via := o.viaOf("/plain"); !strings.HasPrefix(via, "1.1 glovebox, ") || !strings.Contains(via, "squid") {
		t.Errorf("origin saw Via %q, want Glovebox's then Squid's", via)
	}

	// curl -p: a CONNECT tunnel, then HTTP inside it.
	if out := curl(t, "-p", "-x", px, o.URL+"/tunnelled"); out != "ok /tunnelled" {
		t.Errorf("CONNECT through Glovebox and Squid: %q", out)
	}
	sq.waitLogged(t, "TCP_TUNNEL/200", "CONNECT "+host, " "+user+" ")

	// HTTPS that Glovebox intercepts: forwarded in a tunnel through Squid.
	tlsSrv, caFile := tlsOrigin(t)
	gi := startGlovebox(t, func(c *Config) {
		allowLoopback(c)
		c.Proxy.TLS.ExtraCAFiles = []string{caFile}
		c.Proxy.Upstream.Proxy = "http://" + url.UserPassword(user, pass).String() + "@" + sq.addr
		// Squid logs a tunnel when it closes; an idle one closes soon.
		c.Proxy.Upstream.IdleTimeout = 500 * time.Millisecond
	})
	resp, err := interceptingClient(t, gi).Get(tlsSrv.URL + "/secure")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "secure /secure" {
		t.Errorf("intercepted HTTPS through Squid: %d %q", resp.StatusCode, body)
	}
	sq.waitLogged(t, "TCP_TUNNEL/200", "CONNECT "+strings.TrimPrefix(tlsSrv.URL, "https://"), " "+user+" ")

	// Wrong credentials: Squid's 407 is Glovebox's problem, not the user's.
	gw := startGlovebox(t, func(c *Config) {
		tunnelRule(c)
		c.Proxy.Upstream.Proxy = "http://" + url.UserPassword(user, "wrong").String() + "@" + sq.addr
	})
	out := curl(t, "-x", "http://"+gw.addr, "-w", "\n%{http_code}", o.URL+"/denied")
	if !strings.HasSuffix(out, "\n502") || !strings.Contains(out, "parent proxy "+sq.addr) {
		t.Errorf("with wrong parent credentials:\n%s", out)
	}
	out, err = curlErr("-p", "-x", "http://"+gw.addr, "-w", "%{http_connect}", "-o", "/dev/null", o.URL+"/denied-tunnel")
	if out != "502" || err == nil {
		t.Errorf("CONNECT with wrong parent credentials: %q (%v), want 502", out, err)
	}
	sq.waitLogged(t, "TCP_DENIED/407", "CONNECT "+host)
}

// TestSquidAsChild: a client configured for Squid, whose parent is
// Glovebox, gets an isolated site's landing page for a navigation, 403 for
// anything else, and reaches the /.glovebox/ API through the chain.
func TestSquidAsChild(t *testing.T) {
	needSquid(t)
	needCurl(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil) // everything isolated
	sq := startSquid(t, squidOpts{parent: g.addr})
	px := "http://" + sq.addr

	out := curl(t, "-x", px, "-H", "Sec-Fetch-Mode: navigate", "-H", "Sec-Fetch-Dest: document", "-D", "-", site.URL+"/")
	if !strings.Contains(out, " 200 ") || !strings.Contains(out, `id="glovebox-screen"`) || strings.Contains(out, site.marker) {
		t.Errorf("navigation through Squid: want the landing page, got:\n%s", out)
	}
	if !strings.Contains(strings.ToLower(out), "x-glovebox: isolated") {
		t.Errorf("the landing page lost its headers on the way:\n%s", out)
	}
	out = curl(t, "-x", px, "-w", "\n%{http_code}", site.URL+"/app.js")
	if !strings.HasSuffix(out, "\n403") || strings.Contains(out, site.marker) {
		t.Errorf("subresource through Squid: want 403 and none of the site, got:\n%s", out)
	}
	if n := site.servedCount("/") + site.servedCount("/app.js"); n != 0 {
		t.Errorf("the site served %d requests to the chain", n)
	}

	// The landing page's own files and API, through the chain.
	out = curl(t, "-x", px, "-w", "\n%{http_code} %{content_type}", site.URL+"/.glovebox/app.js")
	if !strings.HasSuffix(out, "\n200 text/javascript; charset=utf-8") && !strings.Contains(out, "\n200 text/javascript") {
		t.Errorf("/.glovebox/app.js through Squid: %q", out[max(0, len(out)-80):])
	}
	api := site.URL + "/.glovebox/api"
	out = curl(t, "-x", px, "-w", "\n%{http_code}", "-H", "Content-Type: application/json", "--data", `{"sdp":"v=0"}`, api+"/tabs/not-a-token/offer")
	if !strings.HasSuffix(out, "\n404") || !strings.Contains(out, `"no_tab"`) {
		t.Errorf("API through Squid: %q, want 404 no_tab", out)
	}
	sq.waitLogged(t, "GET "+site.URL+"/ ", "FIRSTUP_PARENT/127.0.0.1")
	sq.waitLogged(t, "POST "+api+"/tabs/not-a-token/offer", "FIRSTUP_PARENT/127.0.0.1")

	// With a browser to start, a whole signalling exchange: the tab is
	// bound to the client's address, which through a child is Squid's.
	if _, err := os.Stat(chromiumPath); err == nil && os.Geteuid() == 0 {
		out = curl(t, "-x", px, "-H", "Content-Type: application/json",
			"--data", fmt.Sprintf(`{"url":%q,"width":800,"height":600}`, site.URL+"/"), api+"/tabs")
		token := jsonField(t, out, "token")
		if token == "" {
			t.Fatalf("create a tab through Squid: %s", out)
		}
		body := fmt.Sprintf(`{"sdp":%s}`, strconv.Quote(offerSDP(t)))
		out = curl(t, "-x", px, "-H", "Content-Type: application/json", "--data", body, api+"/tabs/"+token+"/offer")
		if sdp := jsonField(t, out, "sdp"); !strings.HasPrefix(sdp, "v=0") {
			t.Errorf("offer through Squid: %.200s", out)
		}
	}
	for _, e := range g.audit.events() {
		if e["event"] == "proxy_request" && e["url"] == site.URL+"/" && (e["action"] != "isolate" || e["status"] != 200.0) {
			t.Errorf("audit event of the navigation: %v", e)
		}
	}
}

func jsonField(t testing.TB, body, key string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return ""
	}
	s, _ := m[key].(string)
	return s
}

// TestSquidParentForEgress: the isolated browsers' egress proxy sends
// every request of a containerd tab through Squid (egress.upstream), with
// credentials, as a tunnel to the address it checked (plain HTTP too, so
// that Squid never resolves a name again); Squid's access log shows the
// tunnel once it is closed.
func TestSquidParentForEgress(t *testing.T) {
	needSquid(t)
	site := newTestSite(t)
	const user, pass = "egress", "e-pass"
	sq := startSquid(t, squidOpts{user: user, pass: pass})
	g := startContainerdGlovebox(t, site, 0, func(c *Config) {
		c.Egress.Upstream = "http://" + url.UserPassword(user, pass).String() + "@" + sq.addr
	})
	api := site.URL + "/.glovebox/api"
	status, out := apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/", "width": 800, "height": 600})
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	newPionClient(t, g, api, out["token"].(string))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, p := range []string{"/", "/app.js", "/style.css"} {
		for ctx.Err() == nil && site.servedCount(p) == 0 {
			time.Sleep(100 * time.Millisecond)
		}
		if site.servedCount(p) == 0 {
			t.Fatalf("the site never served %s", p)
		}
	}
	// The egress audit events: the tab, and no destination address of
	// Glovebox's own (Squid dialled the site).
	// It is written once the response is relayed, after the site served it.
	waitFor(t, 10*time.Second, "the egress_request for the script", func() (bool, string) {
		for _, e := range g.audit.events() {
			if e["event"] == "egress_request" && e["url"] == site.URL+"/app.js" {
				if tab, _ := e["tab"].(string); tab == "" || e["status"] != 200.0 || e["dest_ip"] != "" {
					t.Errorf("egress event %v, want a tab, 200 and no dest_ip", e)
				}
				return true, ""
			}
		}
		return false, g.audit.String()
	})
	// Stopping Glovebox closes the egress's kept-alive tunnels, which Squid
	// logs as they end.
	g.stop(t)
	siteURL, _ := url.Parse(site.URL)
	sq.waitLogged(t, "TCP_TUNNEL/200", " CONNECT "+siteURL.Host+" "+user+" ")
}
