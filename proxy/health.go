package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/glovebox/glovebox/proxy/audit"
)

// checkTimeout bounds each health check: a check that does not answer in
// time fails.
const checkTimeout = 3 * time.Second

// Health is Glovebox's health: named checks, each a function that returns
// why its part is failing, or nil. The proxy's own /healthz and the admin
// address's serve the same Health. A Health is safe for concurrent use.
type Health struct {
	timeout time.Duration // checkTimeout, shorter in tests

	mu     sync.Mutex
	checks []healthCheck
}

type healthCheck struct {
	name  string
	check func(ctx context.Context) error
}

// HealthResult is the outcome of one check.
type HealthResult struct {
	Name string
	Err  error // nil when the check passed
}

// NewHealth returns a Health with no checks: it reports healthy.
func NewHealth() *Health { return &Health{timeout: checkTimeout} }

// Add registers a check under name (such as "containerd"). check is called
// at each health request and scrape, with a deadline, so it must be cheap.
func (h *Health) Add(name string, check func(ctx context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks = append(h.checks, healthCheck{name, check})
}

// Check runs every check at once and returns their results in the order
// they were added.
func (h *Health) Check(ctx context.Context) []HealthResult {
	h.mu.Lock()
	checks := append([]healthCheck(nil), h.checks...)
	h.mu.Unlock()
	res := make([]HealthResult, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		res[i].Name = c.name
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, h.timeout)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- c.check(ctx) }()
			select {
			case res[i].Err = <-done:
			case <-ctx.Done():
				res[i].Err = fmt.Errorf("no answer within %v", h.timeout)
			}
		})
	}
	wg.Wait()
	return res
}

// ServeHTTP answers a health request: 200 and "ok" when every check
// passes, 503 and one line per failing check ("name: why") when one fails.
// A client that accepts application/json gets {"status": "ok" or
// "unhealthy", "checks": [{"name", "ok", "error"}]} instead. The reasons
// are the checks' errors with any DevTools (ws://) address taken out.
func (h *Health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res := h.Check(r.Context())
	healthy := true
	for _, c := range res {
		healthy = healthy && c.Err == nil
	}
	code := http.StatusOK
	if !healthy {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		type check struct {
			Name  string `json:"name"`
			OK    bool   `json:"ok"`
			Error string `json:"error,omitempty"`
		}
		body := struct {
			Status string  `json:"status"`
			Checks []check `json:"checks"`
		}{Status: "ok", Checks: []check{}}
		if !healthy {
			body.Status = "unhealthy"
		}
		for _, c := range res {
			body.Checks = append(body.Checks, check{Name: c.Name, OK: c.Err == nil, Error: healthReason(c)})
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(body)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	if healthy {
		fmt.Fprintln(w, "ok")
		return
	}
	var b strings.Builder
	b.WriteString("unhealthy\n")
	for _, c := range res {
		if c.Err != nil {
			fmt.Fprintf(&b, "%s: %s\n", c.Name, healthReason(c))
		}
	}
	w.Write([]byte(b.String()))
}

// HealthMetrics returns a collector (see Metrics.Collector) of
// glovebox_health{check}: 1 for each check of h that passes, 0 for each
// that fails.
func HealthMetrics(h *Health) func(emit audit.Emit) {
	return func(emit audit.Emit) {
		// A scrape hands collectors no context; each check has its deadline.
		for _, c := range h.Check(context.Background()) {
			v := 1.0
			if c.Err != nil {
				v = 0
			}
			emit("glovebox_health", "Health checks: 1 passing, 0 failing (see /healthz for why).", "gauge", v, "check", c.Name)
		}
	}
}

// devtoolsURL matches a DevTools address, which a browser's output in a
// start error may hold: whoever reaches it drives the browser.
var devtoolsURL = regexp.MustCompile(`wss?://[^\s"']+`)

// healthReason is the error of c as one line, without DevTools addresses
// and without the check's name as its prefix ("pool: pool: …"), cut to a
// length a monitoring system shows.
func healthReason(c HealthResult) string {
	if c.Err == nil {
		return ""
	}
	s := devtoolsURL.ReplaceAllString(c.Err.Error(), "ws://…")
	s = strings.Join(strings.Fields(s), " ")
	s = strings.TrimPrefix(s, c.Name+": ")
	if len(s) > 500 {
		s = strings.ToValidUTF8(s[:500], "") + "…"
	}
	return s
}
