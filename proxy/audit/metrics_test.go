package audit

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	m.add("glovebox_b_total", "B.", 1, "reason", "a \"q\" \\ b\nc é\xff")
	m.add("glovebox_b_total", "B.", 2, "reason", "plain")
	m.add("glovebox_b_total", "B.", 1, "reason", "plain")
	m.add("glovebox_b", "Bare.", 3)
	m.Gauge("glovebox_a", "A gauge.", func() float64 { return 0.5 })
	m.Collector(func(emit Emit) {
		emit("glovebox_c_seconds", "C\\ help\nline.", "gauge", 2, "tab", "t2", "user", "bob")
		emit("glovebox_c_seconds", "C\\ help\nline.", "gauge", 1, "tab", "t1", "user", "ünï")
		emit("glovebox_b_total", "Other.", "counter", 9, "reason", "plain") // a duplicate: the first stays
	})
	m.Collector(func(Emit) {}) // emits nothing: no HELP, no TYPE
	want := `# HELP glovebox_a A gauge.
# TYPE glovebox_a gauge
glovebox_a 0.5
# HELP glovebox_b Bare.
# TYPE glovebox_b counter
glovebox_b 3
# HELP glovebox_b_total B.
# TYPE glovebox_b_total counter
glovebox_b_total{reason="a \"q\" \\ b\nc é` + "\uFFFD" + `"} 1
glovebox_b_total{reason="plain"} 3
# HELP glovebox_c_seconds C\\ help\nline.
# TYPE glovebox_c_seconds gauge
glovebox_c_seconds{tab="t1",user="ünï"} 1
glovebox_c_seconds{tab="t2",user="bob"} 2
`
	if got := scrape(t, m); got != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", got, want)
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type = %q", ct)
	}
	return rec.Body.String()
}
