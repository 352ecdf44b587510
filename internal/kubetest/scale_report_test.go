package kubetest

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// cpuTimes is CPU time so far, by component.
type cpuTimes map[string]time.Duration

func (a cpuTimes) minus(b cpuTimes) cpuTimes {
	d := cpuTimes{}
	for k, v := range a {
		d[k] = v - b[k]
	}
	return d
}

// sampler reads the components' RSS and CPU time from /proc every second.
type sampler struct {
	mu   sync.Mutex
	pids map[string]int
	peak map[string]float64
	last cpuTimes
	done chan struct{}
	wg   sync.WaitGroup
}

func startSampler(pids map[string]int) *sampler {
	s := &sampler{pids: pids, peak: map[string]float64{}, last: cpuTimes{}, done: make(chan struct{})}
	s.read()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				s.read()
			}
		}
	}()
	return s
}

func (s *sampler) read() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, pid := range s.pids {
		ps, err := readProc(pid)
		if err != nil {
			continue
		}
		s.peak[name] = max(s.peak[name], ps.rssBytes)
		s.last[name] = ps.cpu
	}
}

// cpu reads the CPU times now.
func (s *sampler) cpu() cpuTimes {
	s.read()
	s.mu.Lock()
	defer s.mu.Unlock()
	c := cpuTimes{}
	for k, v := range s.last {
		c[k] = v
	}
	return c
}

// peaks is the highest RSS seen so far, by component, in bytes.
func (s *sampler) peaks() map[string]float64 {
	s.read()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := map[string]float64{}
	for k, v := range s.peak {
		p[k] = v
	}
	return p
}

func (s *sampler) stop() {
	close(s.done)
	s.wg.Wait()
}

// report is what BenchmarkScale measured.
type report struct {
	params     scaleParams
	nodesReady time.Duration

	background map[string]float64 // requests in the idle window
	idleWindow time.Duration
	idleCPU    cpuTimes

	openWindow, churnWindow time.Duration
	churnRequests           map[string]float64
	p50, p99                float64 // seconds, all but long-running requests
	writeP50, writeP99      float64
	churnCPU                cpuTimes
	failed, peakLive        int
	churnPeak               map[string]float64
	podCreate, toRunning    []time.Duration
	toBound                 []time.Duration // Secret create to the pod bound (the scheduler's part)
	closeTab                []time.Duration

	burstCreate, burstBind, burstDelete time.Duration
	schedPerSec, schedAttempts          float64

	claimWindow                    time.Duration
	claims, conflicts, claimErrors int

	peak map[string]float64
}

// perTab is the churn's requests by kind per tab, less what the idle
// nodes send in as long (their leases and status).
func (r *report) perTab() map[string]float64 {
	scale := r.churnWindow.Seconds() / r.idleWindow.Seconds()
	out := map[string]float64{}
	for k, v := range r.churnRequests {
		out[k] = (v - r.background[k]*scale) / float64(r.params.tabs)
	}
	return out
}

// tabRequests is perTab summed over what a tab itself makes: pods (and
// their binding and status), Secrets and events. The nodes' leases and
// status are left out: under load their rate falls below the idle one
// (kwok renews late), which would read as negative requests per tab.
func (r *report) tabRequests() float64 {
	var t float64
	for k, v := range r.perTab() {
		if tabResource(k) {
			t += v
		}
	}
	return t
}

func tabResource(key string) bool {
	_, res, _ := strings.Cut(key, " ")
	res, _, _ = strings.Cut(res, "/")
	return res == "pods" || res == "secrets" || res == "events"
}

// cpuPerTab is a component's CPU time in the churn per tab, less its idle
// rate over the same time.
func (r *report) cpuPerTab(name string) time.Duration {
	idle := float64(r.idleCPU[name]) / r.idleWindow.Seconds() * r.churnWindow.Seconds()
	return time.Duration((float64(r.churnCPU[name]) - idle) / float64(r.params.tabs))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(b float64) float64      { return b / (1 << 20) }

var components = []string{"kube-apiserver", "etcd", "kube-scheduler", "kube-controller-manager", "kwok"}

func (r *report) print(b *testing.B) {
	p := r.params
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format+"\n", args...) }
	w("")
	w("BenchmarkScale: %d kwok nodes, %d tabs at %.0f/s (achieved %.1f/s), each Running for %v; burst %d pods; pool %d pods, %d claimers",
		p.nodes, p.tabs, p.rate, float64(p.tabs)/r.openWindow.Seconds(), p.lifetime, p.burst, p.pool, p.claimers)
	w("%-44s %s", "nodes created and Ready", r.nodesReady.Round(time.Millisecond))
	bg := sum(r.background) / r.idleWindow.Seconds()
	w("%-44s %.1f req/s (%.3f per node per second)", "idle nodes' own traffic", bg, bg/float64(p.nodes))
	w("%-44s %d (failed or not Running in 2 min: %d)", "peak live tab pods", r.peakLive, r.failed)
	w("%-44s %.2f (pods, their subresources, Secrets, events; by kind, less the idle rate:)", "API requests per tab", r.tabRequests())
	pt := r.perTab()
	keys := make([]string, 0, len(pt))
	for k, v := range pt {
		if math.Abs(v) >= 0.005 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return pt[keys[i]] > pt[keys[j]] })
	for _, k := range keys {
		w("    %-40s %.3f", k, pt[k])
	}
	w("%-44s p50 %.1f ms, p99 %.1f ms", "API server latency, non-watch (histogram)", r.p50*1000, r.p99*1000)
	w("%-44s p50 %.1f ms, p99 %.1f ms", "API server latency, writes (histogram)", r.writeP50*1000, r.writeP99*1000)
	w("%-44s p50 %.1f ms, p99 %.1f ms", "pod create, client side", ms(percentile(r.podCreate, .5)), ms(percentile(r.podCreate, .99)))
	w("%-44s p50 %.1f ms, p99 %.1f ms", "tab open: Secret create to pod bound", ms(percentile(r.toBound, .5)), ms(percentile(r.toBound, .99)))
	w("%-44s p50 %.1f ms, p99 %.1f ms", "tab open: Secret create to pod Running", ms(percentile(r.toRunning, .5)), ms(percentile(r.toRunning, .99)))
	w("%-44s p50 %.1f ms, p99 %.1f ms", "tab close: pod and Secret deletes", ms(percentile(r.closeTab, .5)), ms(percentile(r.closeTab, .99)))
	w("%-44s %s", "CPU per tab (less idle), RSS peak in churn / whole run", "")
	for _, c := range components {
		w("    %-40s %6.1f ms   %6.0f MiB / %6.0f MiB", c, ms(r.cpuPerTab(c)), mib(r.churnPeak[c]), mib(r.peak[c]))
	}
	if p.burst > 0 {
		w("%-44s %.0f pods/s (%d pods: created in %v, all bound %v after the first create; scheduler counted %.0f scheduled)",
			"scheduling throughput (burst)", r.schedPerSec, p.burst, r.burstCreate.Round(time.Millisecond), r.burstBind.Round(time.Millisecond), r.schedAttempts)
		w("%-44s %v", "burst deleted (a DELETE each, WORKERS at once)", r.burstDelete.Round(time.Millisecond))
	}
	if p.pool > 0 {
		w("%-44s %.0f claims/s (%d claims in %v, %d conflicts = %.2f per claim, %d other errors); no pod claimed twice",
			"warm-pool claims", float64(r.claims)/r.claimWindow.Seconds(), r.claims, r.claimWindow.Round(time.Millisecond),
			r.conflicts, float64(r.conflicts)/float64(max(1, r.claims)), r.claimErrors)
	}
	// go test keeps only a benchmark log's first lines: the whole table
	// goes to GLOVEBOX_SCALE_TABLE as well (make bench-scale prints it).
	if f := os.Getenv("GLOVEBOX_SCALE_TABLE"); f != "" {
		if err := appendFile(f, sb.String()); err != nil {
			b.Logf("write the table: %v", err)
		}
	}
	b.Log(sb.String())
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (r *report) metrics(b *testing.B) {
	p := r.params
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(p.nodes), "nodes")
	b.ReportMetric(float64(p.tabs), "tabs")
	b.ReportMetric(float64(p.tabs)/r.openWindow.Seconds(), "tabs/s")
	b.ReportMetric(float64(r.peakLive), "peak-live-pods")
	b.ReportMetric(float64(r.failed), "tabs-failed")
	b.ReportMetric(r.tabRequests(), "api-req/tab")
	b.ReportMetric(sum(r.background)/r.idleWindow.Seconds()/float64(p.nodes), "idle-req/node/s")
	b.ReportMetric(r.p50*1000, "api-p50-ms")
	b.ReportMetric(r.p99*1000, "api-p99-ms")
	b.ReportMetric(r.writeP99*1000, "api-write-p99-ms")
	b.ReportMetric(ms(percentile(r.toBound, .5)), "to-bound-p50-ms")
	b.ReportMetric(ms(percentile(r.toBound, .99)), "to-bound-p99-ms")
	b.ReportMetric(ms(percentile(r.toRunning, .5)), "to-running-p50-ms")
	b.ReportMetric(ms(percentile(r.toRunning, .99)), "to-running-p99-ms")
	b.ReportMetric(ms(r.cpuPerTab("kube-apiserver")), "apiserver-cpu-ms/tab")
	b.ReportMetric(ms(r.cpuPerTab("etcd")), "etcd-cpu-ms/tab")
	b.ReportMetric(ms(r.cpuPerTab("kube-scheduler")), "scheduler-cpu-ms/tab")
	b.ReportMetric(ms(r.cpuPerTab("kube-controller-manager")), "cm-cpu-ms/tab")
	b.ReportMetric(mib(r.peak["kube-apiserver"]), "apiserver-MiB")
	b.ReportMetric(mib(r.peak["etcd"]), "etcd-MiB")
	if p.burst > 0 {
		b.ReportMetric(r.schedPerSec, "sched-pods/s")
	}
	if p.pool > 0 {
		b.ReportMetric(float64(r.claims)/r.claimWindow.Seconds(), "claims/s")
		b.ReportMetric(float64(r.conflicts)/float64(max(1, r.claims)), "conflicts/claim")
	}
}
