package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/vishvananda/netns"
)

// needContainerd skips, saying why, where the containerd runtime cannot run.
// CI runs as root with containerd, runc and nftables installed by make.
func needContainerd(t testing.TB) {
	t.Helper()
	needChromium(t)
	for _, bin := range []string{"containerd", "runc", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing(t, "needs %s (make test installs it): %v", bin, err)
		}
	}
}

// startContainerdGlovebox runs Glovebox with the containerd runtime, a managed
// containerd of its own, and a policy under which nothing but the test site
// is reachable: the default is block, so neither browser resolves or reaches
// any other name.
func startContainerdGlovebox(t testing.TB, site *testSite, pool int, mutate func(*Config)) *glovebox {
	t.Helper()
	needContainerd(t)
	dataDir, err := os.MkdirTemp("/tmp", "gbx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	siteURL, _ := url.Parse(site.URL)
	return startGlovebox(t, func(c *Config) {
		c.Isolate.Runtime = "containerd"
		c.Isolate.Pool.Size = pool
		c.Isolate.Containerd.DataDir = dataDir
		c.Isolate.Containerd.Namespace = "glovebox-test"
		c.Egress.Port = freePort(t)
		c.Egress.AllowInternal = []string{siteURL.Host}
		c.Proxy.Policy.Default = policy.ActionBlock
		c.Proxy.Policy.Rules = []policy.Rule{{Name: "test-site", Host: "127.0.0.1", Action: policy.ActionIsolate}}
		if mutate != nil {
			mutate(c)
		}
	})
}

// containerPIDs lists the processes in Glovebox's containers: those whose
// cgroup is under /glovebox/.
func containerPIDs() []int { return containerPIDsOf("") }

// containerPIDsOf lists the processes of one container (all with id "").
func containerPIDsOf(id string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cg, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err == nil && bytes.Contains(cg, []byte(":/glovebox/"+id)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStatus reads the fields of /proc/<pid>/status.
func procStatus(pid int) map[string]string {
	out := map[string]string{}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		out[k] = strings.TrimSpace(v)
	}
	return out
}

// browserProc finds the browser process among pids: Chromium's main
// process, the one that opens DevTools (its children inherit the flag but
// have a --type).
func browserProc(pids []int) int {
	for _, pid := range pids {
		cl := cmdline(pid)
		if strings.Contains(cl, "--remote-debugging-port") && !strings.Contains(cl, "--type=") {
			return pid
		}
	}
	return 0
}

func nsOf(pid int, ns string) string {
	l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	return l
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
}

// TestContainerdEndToEnd is the first issue's story with each tab in its own
// container, claimed from a warm pool that then refills; the site's files
// reach the remote browser through the egress proxy, audited with the tab.
func TestContainerdEndToEnd(t *testing.T) {
	site := newTestSite(t)
	g := startContainerdGlovebox(t, site, 1, nil)
	waitFor(t, 60*time.Second, "a warm container", func() (bool, string) {
		return g.pool.Stats().Ready == 1, fmt.Sprintf("%+v", g.pool.Stats())
	})
	tab := runEndToEnd(t, g, site, containerPIDsOf)

	var start map[string]any
	for _, e := range g.audit.events() {
		if e["event"] == "tab_start" && e["tab"] == tab {
			start = e
		}
	}
	if start == nil || start["warm"] != true || start["runtime"] != "containerd" {
		t.Errorf("tab_start = %v, want a warm containerd browser", start)
	}
	waitFor(t, 60*time.Second, "the pool to refill", func() (bool, string) {
		s := g.pool.Stats()
		return s.Ready == 1 && s.Claims == 1, fmt.Sprintf("%+v", s)
	})

	// Every file of the site the remote browser loaded went through the
	// egress proxy and is in the audit log with the tab's id.
	seen := map[string]bool{}
	for _, e := range g.audit.events() {
		if e["event"] == "egress_request" && e["tab"] == tab && e["status"] == float64(200) {
			u, _ := url.Parse(e["url"].(string))
			seen[u.Path] = true
		}
	}
	for _, p := range []string{"/", "/app.js", "/style.css", "/next"} {
		if !seen[p] {
			t.Errorf("no egress_request with tab %s for %s; saw %v", tab, p, seen)
		}
	}
}

// openTab opens a tab on the site's page through the API, with a pion
// client as its viewer, and waits until the remote browser has loaded the
// page's script.
func openTab(t *testing.T, g *glovebox, site *testSite) {
	t.Helper()
	api := site.URL + "/.glovebox/api"
	status, out := apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/", "width": 800, "height": 600})
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	newPionClient(t, g, api, out["token"].(string))
	waitFor(t, 60*time.Second, "the page to load in the container", func() (bool, string) {
		return site.servedCount("/app.js") > 0, ""
	})
}

// TestContainerIsolation checks the remote browser's container: its own PID,
// mount and network namespaces, uid 1000 with no capabilities, and Chromium's
// own sandbox on.
func TestContainerIsolation(t *testing.T) {
	site := newTestSite(t)
	g := startContainerdGlovebox(t, site, 0, nil)
	openTab(t, g, site)

	pids := containerPIDs()
	browser := browserProc(pids)
	sandboxed := false
	for _, pid := range pids {
		if cl := cmdline(pid); strings.Contains(cl, "--no-sandbox") {
			t.Errorf("pid %d runs with --no-sandbox: %s", pid, cl)
		}
	}
	if browser == 0 {
		t.Fatalf("no browser process among the container's %d processes", len(pids))
	}
	self := os.Getpid()
	for _, ns := range []string{"pid", "mnt", "net", "ipc", "uts"} {
		if nsOf(browser, ns) == nsOf(self, ns) {
			t.Errorf("the browser shares the host's %s namespace", ns)
		}
	}
	st := procStatus(browser)
	if !strings.HasPrefix(st["Uid"], "1000\t") {
		t.Errorf("browser Uid = %q, want 1000", st["Uid"])
	}
	if st["CapEff"] != "0000000000000000" || st["CapBnd"] != "0000000000000000" {
		t.Errorf("browser CapEff %s CapBnd %s, want none", st["CapEff"], st["CapBnd"])
	}
	if st["NoNewPrivs"] != "1" {
		t.Errorf("browser NoNewPrivs = %q", st["NoNewPrivs"])
	}
	for _, pid := range pids {
		s := procStatus(pid)
		// Chromium's sandbox: renderers in their own user namespace under a
		// seccomp-BPF filter of Chromium's own.
		if strings.Contains(cmdline(pid), "--type=renderer") && s["Seccomp"] == "2" && nsOf(pid, "user") != nsOf(browser, "user") {
			sandboxed = true
		}
	}
	if !sandboxed {
		t.Error("no renderer runs in Chromium's namespace + seccomp sandbox")
	}
}

// corsListener answers every request with CORS allowed and a secret, so a
// page can tell a real answer from a refusal.
func corsListener(t *testing.T, addr string) (string, string) {
	t.Helper()
	secret := fmt.Sprintf("secret-%d", time.Now().UnixNano())
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		io.WriteString(w, secret)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), secret
}

// dialFromNetns tries a TCP connection from inside the network namespace of pid.
func dialFromNetns(pid int, addr string) error {
	errc := make(chan error, 1)
	go func() {
		// This goroutine's thread switches namespace and never switches back:
		// exiting without UnlockOSThread ends the thread.
		runtime.LockOSThread()
		ns, err := netns.GetFromPid(pid)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
		if err == nil {
			c.Close()
		}
		errc <- err
	}()
	return <-errc
}

// containerAddr reads the address of eth0 inside pid's network namespace.
func containerAddr(t *testing.T, pid int) net.IP {
	t.Helper()
	out, err := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-n", "ip", "-4", "-o", "addr", "show", "dev", "eth0").Output()
	if err != nil {
		t.Fatalf("read the container's address: %v", err)
	}
	f := strings.Fields(string(out))
	for i, w := range f {
		if w == "inet" && i+1 < len(f) {
			ip, _, _ := net.ParseCIDR(f[i+1])
			return ip
		}
	}
	t.Fatalf("no address in %q", out)
	return nil
}

// TestContainerNetwork: an isolated page reaches the allowed site through
// the egress proxy and nothing else — not the host's loopback, not a host
// service on 0.0.0.0, not another tab's veth, not a private address — and
// the firewall holds even for connections that bypass the proxy.
func TestContainerNetwork(t *testing.T) {
	site := newTestSite(t)
	allowedAddr, allowedSecret := corsListener(t, "127.0.0.1:0")
	loopAddr, loopSecret := corsListener(t, "127.0.0.1:0")
	anyAddr, anySecret := corsListener(t, "0.0.0.0:0")
	_, anyPort, _ := net.SplitHostPort(anyAddr)
	g := startContainerdGlovebox(t, site, 0, func(c *Config) {
		c.Egress.AllowInternal = append(c.Egress.AllowInternal, allowedAddr)
	})
	api := site.URL + "/.glovebox/api"
	// Another user's tab, whose veth the tab under test must not reach.
	status, out := apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/", "width": 800, "height": 600})
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	newPionClient(t, g, api, out["token"].(string))
	waitFor(t, 60*time.Second, "the other tab's page", func() (bool, string) { return site.servedCount("/app.js") > 0, "" })
	before := map[int]bool{}
	for _, pid := range containerPIDs() {
		before[pid] = true
	}
	other := browserProc(containerPIDs())
	if other == 0 {
		t.Fatal("the other tab's browser not found")
	}
	otherIP := containerAddr(t, other)
	otherHost := net.IPv4(otherIP.To4()[0], otherIP.To4()[1], otherIP.To4()[2], otherIP.To4()[3]-1)

	targets := map[string]string{
		"allowed":                          "http://" + allowedAddr + "/",
		"host loopback":                    "http://" + loopAddr + "/",
		"host 0.0.0.0 via a veth host end": "http://" + otherHost.String() + ":" + anyPort + "/",
		"other tab veth":                   "http://" + otherIP.String() + ":" + anyPort + "/",
		"private":                          "http://10.255.255.1:" + anyPort + "/",
		"metadata":                         "http://169.254.169.254/latest/meta-data/",
	}
	q := url.Values{}
	for _, u := range targets {
		q.Add("u", u)
	}
	status, out = apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/nettest?" + q.Encode(), "width": 800, "height": 600})
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	tab := out["tab"].(string)
	newPionClient(t, g, api, out["token"].(string))
	waitFor(t, 90*time.Second, "the page's network report", func() (bool, string) { return site.lastReport("nettest") != "", "" })
	var results map[string]string
	if err := json.Unmarshal([]byte(site.lastReport("nettest")), &results); err != nil {
		t.Fatal(err)
	}
	t.Logf("what the isolated page could read: %v", results)
	secrets := []string{allowedSecret, loopSecret, anySecret}
	for name, u := range targets {
		got := results[u]
		reached := false
		for _, s := range secrets {
			reached = reached || strings.Contains(got, s)
		}
		if name == "allowed" {
			if !strings.Contains(got, allowedSecret) {
				t.Errorf("%s (%s): %q, want it reached", name, u, got)
			}
			continue
		}
		if reached {
			t.Errorf("%s (%s) was reached from an isolated page: %q", name, u, got)
		}
	}
	var audited bool
	for _, e := range g.audit.events() {
		if e["event"] == "egress_request" && e["tab"] == tab && strings.Contains(fmt.Sprint(e["url"]), allowedAddr) && e["status"] == float64(200) {
			audited = true
		}
	}
	if !audited {
		t.Errorf("the allowed fetch is not in the audit log with tab %s", tab)
	}

	// Below the proxy: the firewall, seen from inside the tab's container.
	var fresh []int
	for _, pid := range containerPIDs() {
		if !before[pid] {
			fresh = append(fresh, pid)
		}
	}
	mine := browserProc(fresh)
	if mine == 0 {
		t.Fatal("the tab's browser process not found")
	}
	myIP := containerAddr(t, mine)
	myHost := net.IPv4(myIP.To4()[0], myIP.To4()[1], myIP.To4()[2], myIP.To4()[3]-1).String()
	egressPort := strconv.Itoa(g.egressPort)
	if err := dialFromNetns(mine, net.JoinHostPort(myHost, egressPort)); err != nil {
		t.Errorf("the egress port on the container's host end: %v, want reachable", err)
	}
	for name, addr := range map[string]string{
		"host service on 0.0.0.0 via the host end": net.JoinHostPort(myHost, anyPort),
		"another tab's host end, egress port":      net.JoinHostPort(otherHost.String(), egressPort),
		"another tab's container":                  net.JoinHostPort(otherIP.String(), "9222"),
		"the host's loopback service":              loopAddr,
	} {
		if err := dialFromNetns(mine, addr); err == nil {
			t.Errorf("%s (%s) is reachable from the container", name, addr)
		}
	}
}

// TestContainerdTeardown: after the tabs close and Glovebox stops, nothing
// of Glovebox's is left: no container process, veth, nftables table,
// cgroup, managed containerd, or per-container directory.
func TestContainerdTeardown(t *testing.T) {
	site := newTestSite(t)
	g := startContainerdGlovebox(t, site, 1, nil)
	waitFor(t, 60*time.Second, "a warm container", func() (bool, string) { return g.pool.Stats().Ready == 1, "" })
	api := site.URL + "/.glovebox/api"
	status, out := apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/", "width": 800, "height": 600})
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	c := newPionClient(t, g, api, out["token"].(string))
	waitFor(t, 60*time.Second, "the page", func() (bool, string) { return site.servedCount("/app.js") > 0, "" })
	if len(containerPIDs()) == 0 {
		t.Fatal("no container processes while a tab is open")
	}
	c.pc.Close()
	waitFor(t, 30*time.Second, "the tab to end", func() (bool, string) { return g.srv.Tabs() == 0, "" })
	g.stop(t)

	if pids := containerPIDs(); len(pids) > 0 {
		t.Errorf("container processes left: %v", pids)
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, "gbh") {
			t.Errorf("veth left: %s", i.Name)
		}
	}
	if out, err := exec.Command("nft", "list", "tables").Output(); err != nil || strings.Contains(string(out), "glovebox") {
		t.Errorf("nftables after stop: %q %v", out, err)
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/glovebox/*")
	for _, cg := range cgs {
		if fi, err := os.Stat(cg); err == nil && fi.IsDir() {
			t.Errorf("cgroup left: %s", cg)
		}
	}
	for _, pid := range allPIDs() {
		cl := cmdline(pid)
		if strings.Contains(cl, g.dataDir) && (strings.Contains(cl, "containerd") || strings.Contains(cl, "runc")) {
			t.Errorf("process left: %d %s", pid, cl)
		}
	}
	entries, _ := filepath.Glob(filepath.Join(g.dataDir, "containers", "*"))
	if len(entries) > 0 {
		t.Errorf("per-container directories left: %v", entries)
	}
}

func allPIDs() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestContainerFailures: a browser that dies mid-session ends its tab with
// a reason the landing page shows and the audit log keeps; when containerd
// itself is gone, a new tab gets a clear error; the proxy serves throughout.
func TestContainerFailures(t *testing.T) {
	site := newTestSite(t)
	g := startContainerdGlovebox(t, site, 0, nil)
	api := site.URL + "/.glovebox/api"
	status, out := apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/", "width": 800, "height": 600})
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	tab := out["tab"].(string)
	c := newPionClient(t, g, api, out["token"].(string))
	waitFor(t, 60*time.Second, "the page", func() (bool, string) { return site.servedCount("/app.js") > 0, "" })

	// The browser crashes (killed from outside, as the OOM killer would).
	browser := browserProc(containerPIDs())
	if browser == 0 {
		t.Fatal("no browser process")
	}
	if err := syscallKill(browser); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the landing page to be told the tab ended", func() (bool, string) {
		return c.count("ended") == 1, ""
	})
	waitFor(t, 30*time.Second, "the tab's end in the audit log", func() (bool, string) {
		for _, e := range g.audit.events() {
			if e["event"] == "tab_end" && e["tab"] == tab {
				// Either is right: the kill ends the container's task and
				// drops the DevTools connection at once, and the tab ends
				// on whichever of the two it hears of first.
				return e["reason"] == "browser exited" || e["reason"] == "browser disconnected", fmt.Sprint(e["reason"])
			}
		}
		return false, "no tab_end"
	})

	// containerd goes away: a new tab fails with a message for the user.
	killed := false
	for _, pid := range allPIDs() {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if filepath.Base(exe) == "containerd" && strings.Contains(cmdline(pid), g.dataDir) {
			if err := syscallKill(pid); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	if !killed {
		t.Fatal("the managed containerd was not found")
	}
	status, out = apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/", "width": 800, "height": 600})
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	status, out = apiCall(t, g, "127.0.0.1", api+"/tabs/"+out["token"].(string)+"/offer", map[string]string{"sdp": offerSDP(t)})
	if status != http.StatusBadGateway || out["error"] != "tab_failed" || !strings.Contains(fmt.Sprint(out["message"]), "could not be started") {
		t.Errorf("offer with containerd gone: %d %v, want 502 tab_failed", status, out)
	}
	waitFor(t, 30*time.Second, "the failed start in the audit log", func() (bool, string) {
		for _, e := range g.audit.events() {
			if e["event"] == "tab_end" && strings.HasPrefix(fmt.Sprint(e["reason"]), "start failed") {
				return true, ""
			}
		}
		return false, ""
	})
	// The proxy kept serving; the supervisor restarts containerd, and
	// health, which named it while it was gone, is ok again.
	waitFor(t, 60*time.Second, "healthz ok once containerd is back", func() (bool, string) {
		resp, err := http.Get("http://" + g.addr + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status + " " + string(body)
	})
}

// TestCrashRecovery: a Glovebox killed with SIGKILL leaves its containers,
// managed containerd, veths and firewall behind; the next start on the same
// data directory removes all of it before serving.
func TestCrashRecovery(t *testing.T) {
	needContainerd(t)
	bin := buildGlovebox(t)
	dataDir, err := os.MkdirTemp("/tmp", "gbx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`listen: "127.0.0.1:%d"
admin:
  listen: "127.0.0.1:0"
policy:
  default: block
isolate:
  runtime: containerd
  pool:
    size: 1
  containerd:
    data_dir: %s
    namespace: glovebox-test
egress:
  port: %d
stream:
  udp_port: 0
  tcp_port: 0
  addresses: ["127.0.0.1"]
tls:
  dir: %s
`, freePort(t), dataDir, freePort(t), t.TempDir())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	waitFor(t, 60*time.Second, "the first Glovebox's warm container", func() (bool, string) {
		return browserProc(containerPIDs()) != 0 && len(ourVeths()) == 1, ""
	})
	oldIDs := containerIDs()
	oldVeths := ourVeths()

	// The crash: nothing of Glovebox's own shutdown runs.
	cmd.Process.Kill()
	cmd.Wait()
	killed = true
	time.Sleep(time.Second)
	if len(containerPIDs()) == 0 || len(ourVeths()) == 0 {
		t.Fatal("the crash left nothing behind; the test would prove nothing")
	}

	site := newTestSite(t)
	g := startContainerdGlovebox(t, site, 0, func(c *Config) { c.Isolate.Containerd.DataDir = dataDir })
	for _, id := range oldIDs {
		if pids := containerPIDsOf(id); len(pids) > 0 {
			t.Errorf("container %s of the crashed Glovebox still runs: %v", id, pids)
		}
	}
	for _, v := range ourVeths() {
		for _, old := range oldVeths {
			if v == old {
				t.Errorf("veth %s of the crashed Glovebox is still there", v)
			}
		}
	}
	daemons := 0
	for _, pid := range allPIDs() {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if filepath.Base(exe) == "containerd" && strings.Contains(cmdline(pid), dataDir) {
			daemons++
		}
	}
	if daemons != 1 {
		t.Errorf("%d managed containerd daemons for the data directory, want the new one only", daemons)
	}
	// And it serves: a tab opens in a new container.
	api := site.URL + "/.glovebox/api"
	status, out := apiCall(t, g, "127.0.0.1", api+"/tabs", map[string]any{"url": site.URL + "/", "width": 800, "height": 600})
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	newPionClient(t, g, api, out["token"].(string))
	waitFor(t, 60*time.Second, "the page after recovery", func() (bool, string) { return site.servedCount("/app.js") > 0, "" })
}

// ourVeths lists the host ends of Glovebox's veths.
func ourVeths() []string {
	var names []string
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, "gbh") {
			names = append(names, i.Name)
		}
	}
	return names
}
