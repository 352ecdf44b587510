package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Ring keeps the latest audit events, as their JSON lines, for the
// console: a bounded ring, the oldest forgotten first. Add is the audit
// log's tap (Audit.AddTap). It is in memory only: the audit log and its
// sinks are the record.
type Ring struct {
	size int // how many it keeps, fixed

	mu    sync.Mutex
	items []ringItem
	next  int // where the next one goes once the ring is full
}

// ringItem is one event with the fields the console filters on.
type ringItem struct {
	line json.RawMessage
	f    eventFields
}

type eventFields struct {
	Event  string `json:"event"`
	User   string `json:"user"`
	Admin  string `json:"admin"`
	Host   string `json:"host"`
	Action string `json:"action"`
	Tab    string `json:"tab"`
}

// NewRing returns a ring of the latest n events.
func NewRing(n int) *Ring {
	n = max(n, 1)
	return &Ring{size: n, items: make([]ringItem, 0, n)}
}

// Add keeps one event's JSON line (copied); a line that is no JSON
// object is dropped.
func (r *Ring) Add(line []byte) {
	line = bytes.TrimSpace(line)
	var f eventFields
	if json.Unmarshal(line, &f) != nil || f.Event == "" {
		return
	}
	it := ringItem{line: bytes.Clone(line), f: f}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.items) < r.size {
		r.items = append(r.items, it)
		return
	}
	r.items[r.next] = it
	r.next = (r.next + 1) % len(r.items)
}

// Filter picks events: every field set must match. User matches the
// event's user, or the administrator of an admin_action; User and Host
// match a part, case aside; Event, Action and Tab match whole.
type Filter struct {
	User, Host, Event, Action, Tab string
}

func (f Filter) match(e eventFields) bool {
	has := func(field, part string) bool {
		return strings.Contains(strings.ToLower(field), strings.ToLower(part))
	}
	switch {
	case f.User != "" && !has(e.User, f.User) && !has(e.Admin, f.User),
		f.Host != "" && !has(e.Host, f.Host),
		f.Event != "" && e.Event != f.Event,
		f.Action != "" && e.Action != f.Action,
		f.Tab != "" && e.Tab != f.Tab:
		return false
	}
	return true
}

// String is the filter as the admin_action event's target names it.
func (f Filter) String() string {
	var parts []string
	for _, kv := range [][2]string{{"user", f.User}, {"host", f.Host}, {"event", f.Event}, {"action", f.Action}, {"tab", f.Tab}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+strconv.Quote(kv[1]))
		}
	}
	return strings.Join(parts, " ")
}

// Recent returns the latest events that f matches, newest first, at most
// limit of them, and how many the ring holds.
func (r *Ring) Recent(f Filter, limit int) (events []json.RawMessage, held int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.items)
	for i := range n {
		// Newest first: the one before next, backwards.
		it := r.items[((r.next-1-i)%n+n)%n]
		if len(events) >= limit {
			break
		}
		if f.match(it.f) {
			events = append(events, it.line)
		}
	}
	return events, n
}

const maxEventsListed = 1000

func (c *Console) listEvents(w http.ResponseWriter, r *http.Request, a admin) {
	q := r.URL.Query()
	f := Filter{User: q.Get("user"), Host: q.Get("host"), Event: q.Get("event"), Action: q.Get("action"), Tab: q.Get("tab")}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 || limit > maxEventsListed {
		limit = 200
	}
	events, held := c.events.Recent(f, limit)
	if events == nil {
		events = []json.RawMessage{}
	}
	c.note(a, r, "list_events", f.Tab, f.String(), http.StatusOK, true)
	writeJSON(w, http.StatusOK, map[string]any{"events": events, "held": held, "capacity": c.events.size})
}
