package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkSquidSideBySide is Glovebox beside Squid (Debian's package), in
// one run, on the same requests to the same loopback origin: each proxy is
// its own process pinned to proxyCPU, this process (the clients and the
// origin) to loadCPU, and each proxy's cost is its own process's CPU time
// (/proc/PID/stat). Glovebox is the built binary running `glovebox serve`
// with policy and audit on as deployed (a few rules, the origin allowed by
// a no_inspect rule so that CONNECTs are tunnels, audit events to a file,
// log level info); Squid has caching and its access log off. Each figure
// is reported for both and as the ratio glovebox/squid (above 1 is Glovebox
// cheaper, for latency above 1 is Glovebox slower); each iteration is one
// measurement of both, the figures medians over iterations.
func BenchmarkSquidSideBySide(b *testing.B) {
	needSquid(b)
	if runtime.NumCPU() < 2 {
		missing(b, "needs two CPUs: one for the proxy under test, one for the load")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		missing(b, "needs taskset (util-linux) to pin the proxies: %v", err)
	}
	o := newBenchOrigin(b)
	bin := buildGlovebox(b)
	sq := startSquid(b, squidOpts{cpus: strconv.Itoa(proxyCPU), noAccessLog: true})
	g := startGloveboxProcess(b, bin)
	sides := []benchSide{{"glovebox", g.addr, g.pid}, {"squid", sq.addr, sq.pid}}
	pinProcess(b, loadCPU)

	const workers = 8
	type client func(proxyAddr string) func() error // "": direct
	plain := func(path string) client {
		return func(p string) func() error {
			c := benchClient(p, o, false, workers)
			return func() error { return httpGet(c, o.url+path) }
		}
	}
	tunnelled := func(keepAlive bool) client {
		return func(p string) func() error {
			c := benchClient(p, o, !keepAlive, workers)
			return func() error { return httpGet(c, o.tlsURL+"/small") }
		}
	}
	for _, sc := range []struct {
		name  string
		c     client
		total int
	}{
		{"http-keepalive", plain("/small"), 20000},
		{"tls-tunnel-per-request", tunnelled(false), 3000},
		{"tls-keepalive-tunnels", tunnelled(true), 30000},
		{"http-keepalive-100KiB", plain("/bytes?n=102400"), 5000},
	} {
		b.Run(sc.name, func(b *testing.B) {
			perCPU := map[string][]float64{}
			var ratio []float64
			dos := make([]func() error, len(sides))
			for i, s := range sides {
				dos[i] = sc.c(s.addr)
				load(b, dos[i], workers, workers*20) // connections up, caches warm
			}
			i := 0
			for b.Loop() {
				got := map[string]float64{}
				// Alternate which side goes first, so neither always
				// has the machine's quieter half.
				for k := range sides {
					s := sides[(k+i)%len(sides)]
					c0 := pidCPU(s.pid)
					load(b, dos[(k+i)%len(sides)], workers, sc.total)
					cpu := max(pidCPU(s.pid)-c0, 10*time.Millisecond) // one tick
					got[s.name] = float64(sc.total) / cpu.Seconds()
					perCPU[s.name] = append(perCPU[s.name], got[s.name])
				}
				ratio = append(ratio, got["glovebox"]/got["squid"])
				i++
			}
			for _, s := range sides {
				b.ReportMetric(median(perCPU[s.name]), "req/cpu-s-"+s.name)
			}
			b.ReportMetric(median(ratio), "glovebox/squid")
			b.ReportMetric(0, "ns/op")
		})
	}

	// Added latency on one connection: the same request direct, through
	// Glovebox and through Squid in turn, each on its own kept-alive
	// connection (a tunnel for HTTPS).
	for _, sc := range []struct {
		name string
		c    client
	}{
		{"one-connection-http", plain("/small")},
		{"one-connection-tls-tunnel", tunnelled(true)},
	} {
		b.Run(sc.name, func(b *testing.B) {
			const n = 2000
			dos := []func() error{sc.c("")}
			for _, s := range sides {
				dos = append(dos, sc.c(s.addr))
			}
			p50, p99 := map[string][]float64{}, map[string][]float64{}
			var ratio50, ratio99 []float64
			for b.Loop() {
				lat := interleaved(b, n, dos...)
				got := map[string]float64{}
				for i, s := range sides {
					a50 := us(quantile(lat[i+1], 0.50) - quantile(lat[0], 0.50))
					a99 := us(quantile(lat[i+1], 0.99) - quantile(lat[0], 0.99))
					p50[s.name] = append(p50[s.name], a50)
					p99[s.name] = append(p99[s.name], a99)
					got[s.name+"50"], got[s.name+"99"] = a50, a99
				}
				ratio50 = append(ratio50, got["glovebox50"]/max(got["squid50"], 1))
				ratio99 = append(ratio99, got["glovebox99"]/max(got["squid99"], 1))
			}
			for _, s := range sides {
				b.ReportMetric(median(p50[s.name]), "added-µs-p50-"+s.name)
				b.ReportMetric(median(p99[s.name]), "added-µs-p99-"+s.name)
			}
			b.ReportMetric(median(ratio50), "p50-glovebox/squid")
			b.ReportMetric(median(ratio99), "p99-glovebox/squid")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// The proxy under test runs on proxyCPU; the load (this process: clients
// and origin) on loadCPU.
const (
	proxyCPU = 1
	loadCPU  = 0
)

// benchSide is one proxy of a side-by-side benchmark.
type benchSide struct {
	name string
	addr string
	pid  int
}

// benchClient is a client of o through the proxy at proxyAddr ("" for
// direct), with up to workers kept-alive connections, or a new connection
// (a new tunnel for HTTPS) per request when oneShot. HTTPS through a proxy
// is a CONNECT tunnel, as a browser makes it.
func benchClient(proxyAddr string, o *benchOrigin, oneShot bool, workers int) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true, DisableKeepAlives: oneShot,
		TLSClientConfig: &tls.Config{RootCAs: o.roots}}
	if proxyAddr != "" {
		tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr})
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// gloveboxProcess is `glovebox serve` run by a test as its own process.
type gloveboxProcess struct {
	addr string
	pid  int
	dir  string
}

// startGloveboxProcess runs bin as `glovebox serve`, pinned to proxyCPU,
// configured as a deployment would be for allowed traffic: clients on
// loopback, a policy of a few rules whose last allows the origin
// (127.0.0.1) with no_inspect, audit events appended to a file, the
// operational log at info in JSON, no warm pool (no browser is started).
func startGloveboxProcess(b testing.TB, bin string) *gloveboxProcess {
	b.Helper()
	dir := b.TempDir()
	port := freePort(b)
	conf := fmt.Sprintf(`listen: "127.0.0.1:%d"
clients: [127.0.0.0/8]
admin:
  listen: "127.0.0.1:0"
policy:
  default: isolate
  rules:
    - {name: ads, domain: ads.example, action: block}
    - {name: intranet, domain: corp.example, action: allow}
    - {name: news, glob: "*.news.example", action: isolate}
    - {name: origin, host: 127.0.0.1, action: allow, no_inspect: true}
upstream:
  allow_local: [127.0.0.0/8]
isolate:
  runtime: process
  pool:
    size: 0
  process:
    temp_dir: %[2]s
egress:
  port: %[3]d
stream:
  udp_port: 0
  tcp_port: 0
  loopback: true
  addresses: ["127.0.0.1"]
tls:
  dir: %[2]s/tls
log:
  level: info
  format: json
audit:
  output: %[2]s/audit.log
`, port, dir, freePort(b))
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	g := &gloveboxProcess{addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir}
	cmd := exec.Command("taskset", "-c", strconv.Itoa(proxyCPU), bin, "serve", "--config", cfgPath)
	g.pid = startListening(b, "glovebox", cmd, g.addr, func() string { return "" })
	return g
}

// pinProcess pins every thread of this process to cpu until the benchmark
// ends (threads made later inherit it from the thread that makes them).
func pinProcess(b testing.TB, cpu int) {
	var one, before unix.CPUSet
	one.Set(cpu)
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		b.Fatalf("sched_getaffinity: %v", err)
	}
	set := func(s *unix.CPUSet) {
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, t := range tasks {
			if tid, err := strconv.Atoi(t.Name()); err == nil {
				unix.SchedSetaffinity(tid, s)
			}
		}
	}
	set(&one)
	b.Cleanup(func() { set(&before) })
}
