package proxy

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Metrics counts what the audit log records, for Prometheus: every audit
// event also moves a counter, so the two never disagree. Gauges (tabs open,
// warm browsers ready) are read when scraped.
type Metrics struct {
	mu       sync.Mutex
	counters map[string]float64 // full series name with labels → value
	help     map[string]string  // metric name → HELP text
	gauges   map[string]func() float64
}

// NewMetrics returns an empty set of metrics.
func NewMetrics() *Metrics {
	return &Metrics{counters: map[string]float64{}, help: map[string]string{}, gauges: map[string]func() float64{}}
}

// Gauge registers a value read at each scrape.
func (m *Metrics) Gauge(name, help string, f func() float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.help[name] = help
	m.gauges[name] = f
}

// add adds v to the counter name{labels}; labels come in key, value pairs.
func (m *Metrics) add(name, help string, v float64, labels ...string) {
	if m == nil {
		return
	}
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=%q", labels[i], labels[i+1])
		}
		b.WriteByte('}')
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.help[name] = help
	m.counters[b.String()] += v
}

// ServeHTTP writes the metrics in Prometheus's text format.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	series := make([]string, 0, len(m.counters))
	for s := range m.counters {
		series = append(series, s)
	}
	slices.Sort(series)
	values := make(map[string]float64, len(series))
	for _, s := range series {
		values[s] = m.counters[s]
	}
	gauges := make(map[string]func() float64, len(m.gauges))
	for k, f := range m.gauges {
		gauges[k] = f
	}
	help := make(map[string]string, len(m.help))
	for k, v := range m.help {
		help[k] = v
	}
	m.mu.Unlock()

	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	seen := map[string]bool{}
	for _, s := range series {
		name, _, _ := strings.Cut(s, "{")
		if !seen[name] {
			seen[name] = true
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help[name], name)
		}
		fmt.Fprintf(w, "%s %g\n", s, values[s])
	}
	names := make([]string, 0, len(gauges))
	for k := range gauges {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help[name], name, name, gauges[name]())
	}
}

// reasonClass turns a free-text end reason ("start failed: …") into a
// label value with few distinct values.
func reasonClass(reason string) string {
	r, _, _ := strings.Cut(reason, ":")
	return r
}

func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return fmt.Sprintf("%dxx", status/100)
}
