package audit

import (
	"fmt"
	"io"
	"maps"
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
	collect  []func(emit Emit)
}

// Emit adds one series, name{labels} = v, to a scrape; labels come in key,
// value pairs. typ is "counter" or "gauge"; help and typ of a name's first
// series are the ones written.
type Emit func(name, help, typ string, v float64, labels ...string)

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

// Collector registers f, called at each scrape to emit series whose label
// values are known only then (one per open tab, say). A name it emits
// nothing for is left out of that scrape, HELP and TYPE included.
func (m *Metrics) Collector(f func(emit Emit)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.collect = append(m.collect, f)
}

// add adds v to the counter name{labels}; labels come in key, value pairs.
func (m *Metrics) add(name, help string, v float64, labels ...string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.help[name] = help
	m.counters[name+labelSet(labels)] += v
}

// labelSet formats key, value pairs as {k="v",…}, or "" for none. Values are
// escaped as Prometheus's text format wants: only backslash, double quote
// and newline; other UTF-8 goes as it is (%q would write \u and \x escapes,
// which Prometheus reads literally or rejects). Invalid UTF-8 becomes U+FFFD.
func labelSet(labels []string) string {
	if len(labels) < 2 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(labels[i])
		b.WriteString(`="`)
		labelEscaper.WriteString(&b, strings.ToValidUTF8(labels[i+1], "\uFFFD"))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// family is one metric name's series in a scrape.
type family struct {
	help, typ string
	series    map[string]float64 // label set → value
}

// ServeHTTP writes the metrics in Prometheus's text format: each name once
// with its HELP and TYPE, names and then series sorted.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	fams := map[string]*family{}
	add := func(name, help, typ string, v float64, labels string) {
		f := fams[name]
		if f == nil {
			f = &family{help: help, typ: typ, series: map[string]float64{}}
			fams[name] = f
		}
		if _, dup := f.series[labels]; !dup { // the first wins: a duplicate is invalid
			f.series[labels] = v
		}
	}
	m.mu.Lock()
	for s, v := range m.counters {
		name, labels, _ := strings.Cut(s, "{")
		if labels != "" {
			labels = "{" + labels
		}
		add(name, m.help[name], "counter", v, labels)
	}
	gauges := make(map[string]func() float64, len(m.gauges))
	for k, f := range m.gauges {
		gauges[k] = f
	}
	help := make(map[string]string, len(m.help))
	for k, v := range m.help {
		help[k] = v
	}
	collect := slices.Clone(m.collect)
	m.mu.Unlock()

	// Gauge funcs and collectors take their own locks: call them unlocked.
	for name, f := range gauges {
		add(name, help[name], "gauge", f(), "")
	}
	for _, c := range collect {
		c(func(name, help, typ string, v float64, labels ...string) {
			add(name, help, typ, v, labelSet(labels))
		})
	}

	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(fams)) {
		f := fams[name]
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, helpEscaper.Replace(f.help), name, f.typ)
		for _, labels := range slices.Sorted(maps.Keys(f.series)) {
			fmt.Fprintf(&b, "%s%s %g\n", name, labels, f.series[labels])
		}
	}
	io.WriteString(w, b.String())
}

// helpEscaper escapes HELP text: backslash and newline only.
var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

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
