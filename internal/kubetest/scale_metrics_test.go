package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sample is one metric line of a Prometheus text exposition.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the text exposition format, enough of it for the
// API server's and the scheduler's counters and histograms.
func parseMetrics(b []byte) []sample {
	var out []sample
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			s.name = line[:i]
			for _, kv := range splitLabels(line[i+1 : j]) {
				if k, v, ok := strings.Cut(kv, "="); ok {
					s.labels[k] = strings.Trim(v, `"`)
				}
			}
			rest = strings.TrimSpace(line[j+1:])
		} else {
			name, r, ok := strings.Cut(line, " ")
			if !ok {
				continue
			}
			s.name, rest = name, r
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

// splitLabels splits a="x",b="y" at the commas outside quotes.
func splitLabels(s string) []string {
	var out []string
	inQ, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			inQ = !inQ
		case ',':
			if !inQ {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// longRunning are the verbs whose duration is a connection's, not a
// request's (the API server's latency SLO leaves them out too).
var longRunning = map[string]bool{"WATCH": true, "WATCHLIST": true, "CONNECT": true}

// snapshot is what the benchmark keeps of one scrape of the API server.
type snapshot struct {
	at time.Time
	// requests by "VERB resource[/subresource]".
	requests map[string]float64
	// buckets of apiserver_request_duration_seconds summed over all but
	// long-running verbs, by upper bound; writes is the same for POST,
	// PUT, PATCH and DELETE only.
	buckets, writes map[float64]float64
}

func takeSnapshot(samples []sample) snapshot {
	s := snapshot{at: time.Now(), requests: map[string]float64{}, buckets: map[float64]float64{}, writes: map[float64]float64{}}
	for _, m := range samples {
		switch m.name {
		case "apiserver_request_total":
			key := m.labels["verb"] + " " + m.labels["resource"]
			if sub := m.labels["subresource"]; sub != "" {
				key += "/" + sub
			}
			s.requests[key] += m.value
		case "apiserver_request_duration_seconds_bucket":
			if longRunning[m.labels["verb"]] {
				continue
			}
			le, err := strconv.ParseFloat(m.labels["le"], 64)
			if err != nil {
				continue
			}
			s.buckets[le] += m.value
			switch m.labels["verb"] {
			case "POST", "PUT", "PATCH", "DELETE":
				s.writes[le] += m.value
			}
		}
	}
	return s
}

// requestDelta is the requests between two snapshots, by key.
func requestDelta(a, b snapshot) map[string]float64 {
	d := map[string]float64{}
	for k, v := range b.requests {
		if x := v - a.requests[k]; x > 0 {
			d[k] = x
		}
	}
	return d
}

func sum(m map[string]float64) float64 {
	var t float64
	for _, v := range m {
		t += v
	}
	return t
}

// quantile is histogram_quantile over the cumulative buckets' growth
// between two scrapes: linear within the bucket the rank falls in.
func quantile(q float64, a, b map[float64]float64) float64 {
	les := make([]float64, 0, len(b))
	for le := range b {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 {
		return math.NaN()
	}
	total := b[les[len(les)-1]] - a[les[len(les)-1]]
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	prevLe, prevCount := 0.0, 0.0
	for _, le := range les {
		c := b[le] - a[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return prevLe
			}
			if c == prevCount {
				return le
			}
			return prevLe + (le-prevLe)*(rank-prevCount)/(c-prevCount)
		}
		prevLe, prevCount = le, c
	}
	return prevLe
}

// scrape fetches a component's /metrics with the admin's token; its
// serving certificate is its own self-signed one, on loopback.
func scrape(ctx context.Context, url, token string) ([]byte, error) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s: %.200s", url, resp.Status, b)
	}
	return b, err
}

// counter sums a metric's samples whose labels include want.
func counter(samples []sample, name string, want map[string]string) float64 {
	var t float64
next:
	for _, m := range samples {
		if m.name != name {
			continue
		}
		for k, v := range want {
			if m.labels[k] != v {
				continue next
			}
		}
		t += m.value
	}
	return t
}

// procStat is a process's resident memory and CPU time so far.
type procStat struct {
	rssBytes float64
	cpu      time.Duration
}

// readProc reads /proc/pid/status (VmRSS) and /proc/pid/stat (utime and
// stime, in clock ticks: 100 a second on Linux).
func readProc(pid int) (procStat, error) {
	var ps procStat
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			ps.rssBytes = kb * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, err
	}
	// Fields after the command's closing parenthesis; utime and stime
	// are the 14th and 15th of the whole line.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) > 12 {
		u, _ := strconv.ParseFloat(f[11], 64)
		k, _ := strconv.ParseFloat(f[12], 64)
		ps.cpu = time.Duration((u + k) / 100 * float64(time.Second))
	}
	return ps, nil
}

// percentile of durations, nearest rank.
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
