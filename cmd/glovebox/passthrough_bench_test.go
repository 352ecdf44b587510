package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkPassThrough is what Glovebox costs allowed traffic, against a
// loopback origin, measured beside the same requests sent direct in the
// same run: requests per second, requests per CPU-second of Glovebox, and
// the latency Glovebox adds (p50, p99). Glovebox, the origin and the clients
// share this process, so Glovebox's CPU is the process's CPU for the
// proxied requests minus its CPU for as many direct ones. Each iteration is
// one complete measurement; the figures are medians over iterations
// (make bench runs 5).
func BenchmarkPassThrough(b *testing.B) {
	o := newBenchOrigin(b)
	g := startGlovebox(b, func(c *Config) {
		tunnelRule(c) // CONNECTs to 127.0.0.1 are tunnels, not interception
		c.Log.Level = "info"
	})
	pu, _ := url.Parse("http://" + g.addr)
	const workers = 8

	b.Run("http-keepalive", func(b *testing.B) {
		proxied := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), MaxIdleConnsPerHost: workers, DisableCompression: true}}
		direct := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}}
		get := func(c *http.Client) func() error {
			return func() error { return httpGet(c, o.url+"/small") }
		}
		runPassThrough(b, get(proxied), get(direct), workers, 2000, 8000)
	})
	b.Run("connect-per-request", func(b *testing.B) {
		runPassThrough(b,
			func() error { return tunnelGet(g.addr, o.host, "/small", true) },
			func() error { return tunnelGet("", o.host, "/small", false) },
			workers, 300, 1200)
	})
	b.Run("connect-bytes", func(b *testing.B) {
		const size = 256 << 20
		path := "/bytes?n=" + strconv.Itoa(size)
		var viaMBs, directMBs, cpuPerGiB []float64
		for b.Loop() {
			c0 := selfCPU()
			t0 := time.Now()
			if err := tunnelGet(g.addr, o.host, path, true); err != nil {
				b.Fatal(err)
			}
			tp, c1 := time.Since(t0), selfCPU()
			t1 := time.Now()
			if err := tunnelGet("", o.host, path, false); err != nil {
				b.Fatal(err)
			}
			td, c2 := time.Since(t1), selfCPU()
			viaMBs = append(viaMBs, size/1e6/tp.Seconds())
			directMBs = append(directMBs, size/1e6/td.Seconds())
			cpuPerGiB = append(cpuPerGiB, max(0, ((c1-c0)-(c2-c1)).Seconds())*(1<<30)/size)
		}
		b.ReportMetric(median(viaMBs), "MB/s")
		b.ReportMetric(median(directMBs), "MB/s-direct")
		b.ReportMetric(median(cpuPerGiB), "glovebox-cpu-s/GiB")
		b.ReportMetric(0, "ns/op")
	})
}

// runPassThrough measures one kind of request, proxied and direct: the
// added latency from n interleaved pairs on one client, then throughput and
// CPU from total requests spread over workers.
func runPassThrough(b *testing.B, proxied, direct func() error, workers, n, total int) {
	var p50, p99, rps, rpsDirect, perCPU, cpuUS []float64
	for b.Loop() {
		lat := interleaved(b, n, direct, proxied)
		ld, lp := lat[0], lat[1]
		p50 = append(p50, us(quantile(lp, 0.50)-quantile(ld, 0.50)))
		p99 = append(p99, us(quantile(lp, 0.99)-quantile(ld, 0.99)))

		c0 := selfCPU()
		tp := load(b, proxied, workers, total)
		c1 := selfCPU()
		td := load(b, direct, workers, total)
		c2 := selfCPU()
		gb := max((c1-c0)-(c2-c1), time.Microsecond) // Glovebox's share
		rps = append(rps, float64(total)/tp.Seconds())
		rpsDirect = append(rpsDirect, float64(total)/td.Seconds())
		perCPU = append(perCPU, float64(total)/gb.Seconds())
		cpuUS = append(cpuUS, us(gb)/float64(total))
	}
	b.ReportMetric(median(rps), "req/s")
	b.ReportMetric(median(rpsDirect), "req/s-direct")
	b.ReportMetric(median(perCPU), "req/glovebox-cpu-s")
	b.ReportMetric(median(cpuUS), "glovebox-cpu-µs/req")
	b.ReportMetric(median(p50), "added-µs-p50")
	b.ReportMetric(median(p99), "added-µs-p99")
	b.ReportMetric(0, "ns/op")
}

// interleaved runs each of do in turn, n rounds, and returns the latencies
// of each.
func interleaved(b *testing.B, n int, do ...func() error) [][]time.Duration {
	lat := make([][]time.Duration, len(do))
	for range n {
		for i, f := range do {
			t0 := time.Now()
			if err := f(); err != nil {
				b.Fatal(err)
			}
			lat[i] = append(lat[i], time.Since(t0))
		}
	}
	return lat
}

// load runs total requests over workers goroutines and returns how long they took.
func load(b *testing.B, do func() error, workers, total int) time.Duration {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += workers {
				if err := do(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	return took
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func quantile(v []time.Duration, q float64) time.Duration {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func httpGet(c *http.Client, u string) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return err
}

// tunnelGet makes one GET on a new connection: through a new CONNECT
// tunnel of proxy (viaProxy), or straight to host.
func tunnelGet(proxy, host, path string, viaProxy bool) error {
	addr := host
	if viaProxy {
		addr = proxy
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(c)
	if viaProxy {
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", host, host)
		line, err := br.ReadString('\n')
		if err != nil || !strings.Contains(line, " 200 ") {
			return fmt.Errorf("CONNECT %s: %q %v", host, line, err)
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			if l == "\r\n" {
				break
			}
		}
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return err
}

// benchOrigin is a lean loopback origin: /small is 1 KiB, /bytes?n=N
// streams N bytes; over plain HTTP at url (host), and over HTTPS (HTTP/1.1,
// an ECDSA certificate from roots) at tlsURL.
type benchOrigin struct {
	url, host string
	tlsURL    string
	roots     *x509.CertPool
}

func newBenchOrigin(b testing.TB) *benchOrigin {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	small := []byte(strings.Repeat("x", 1024))
	chunk := make([]byte, 256<<10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			w.Header().Set("Content-Type", "text/plain")
			w.Write(small)
		case "/bytes":
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			w.Header().Set("Content-Length", strconv.Itoa(n))
			for n > 0 {
				k, err := w.Write(chunk[:min(n, len(chunk))])
				if err != nil {
					return
				}
				n -= k
			}
		default:
			http.NotFound(w, r)
		}
	})}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ca := newTestCA(b, "bench origin")
	go srv.Serve(ln)
	go srv.Serve(tls.NewListener(tln, &tls.Config{Certificates: []tls.Certificate{ca.goodLeaf(b)}}))
	b.Cleanup(func() { srv.Close() })
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	return &benchOrigin{url: "http://" + ln.Addr().String(), host: ln.Addr().String(),
		tlsURL: "https://" + tln.Addr().String(), roots: roots}
}
