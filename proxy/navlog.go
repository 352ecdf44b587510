package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/tab"
)

// One id through a tab's story. Every proxy_request has a request_id. The
// navigation answered with a landing page is the request that opens (or,
// on a reload, reattaches) a tab, but which tab is known only when the
// landing page asks for it: the page is given its request's id (a meta
// element) and sends it with its first calls (X-Glovebox-Request). Its
// proxy_request waits until then, to carry the tab's id, or for
// navHold at most (a client that runs no script), and is written with its
// own time.

// navHold is how long a landing page's proxy_request waits for its tab.
const navHold = 5 * time.Second

// maxHeldNavs bounds the requests waiting: past it the oldest are written
// without their tab.
const maxHeldNavs = 10000

// requestHeader carries the landing page's request id in its API calls.
const requestHeader = "X-Glovebox-Request"

// requestIDOf is the landing page's request id an API call carries, if it
// looks like one.
func requestIDOf(r *http.Request) string {
	id := r.Header.Get(requestHeader)
	if len(id) != 32 {
		return ""
	}
	if _, err := hex.DecodeString(id); err != nil {
		return ""
	}
	return id
}

// newRequestID is a proxy_request's id: 16 random bytes, hex.
func newRequestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// heldNavs are the landing pages' proxy_request events waiting for their
// tab.
type heldNavs struct {
	audit *audit.Audit

	mu     sync.Mutex
	held   map[string]*heldNav
	order  []string // ids in the order held, for the bound
	closed bool
}

type heldNav struct {
	ev    audit.RequestEvent
	timer *time.Timer
}

// hold keeps e until its landing page names its tab, or navHold.
func (h *heldNavs) hold(e audit.RequestEvent) {
	h.mu.Lock()
	if h.closed || e.RequestID == "" {
		h.mu.Unlock()
		h.audit.Request(e)
		return
	}
	if h.held == nil {
		h.held = map[string]*heldNav{}
	}
	var spill []audit.RequestEvent
	for len(h.held) >= maxHeldNavs && len(h.order) > 0 {
		id := h.order[0]
		h.order = h.order[1:]
		if n, ok := h.held[id]; ok {
			n.timer.Stop()
			delete(h.held, id)
			spill = append(spill, n.ev)
		}
	}
	id := e.RequestID
	h.held[id] = &heldNav{ev: e, timer: time.AfterFunc(navHold, func() { h.release(id, nil, "") })}
	h.order = append(h.order, id)
	if len(h.order) > 2*maxHeldNavs {
		h.compactLocked()
	}
	h.mu.Unlock()
	for _, e := range spill {
		h.audit.Request(e)
	}
}

func (h *heldNavs) compactLocked() {
	kept := h.order[:0]
	for _, id := range h.order {
		if _, ok := h.held[id]; ok {
			kept = append(kept, id)
		}
	}
	h.order = kept
}

// holds says whether request id's event waits for a tab of user at
// clientIP.
func (h *heldNavs) holds(id, user, clientIP string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, ok := h.held[id]
	return ok && n.ev.User == user && n.ev.ClientIP == clientIP
}

// release writes the event of request id, with t's id when t is the
// tab its landing page got: the same user, from the same address.
func (h *heldNavs) release(id string, t *tab.Tab, clientIP string) {
	if id == "" {
		return
	}
	h.mu.Lock()
	n, ok := h.held[id]
	if ok && t != nil && (n.ev.User != t.User() || clientIP != n.ev.ClientIP) {
		ok = false // not this page's: it waits for its own, or navHold
	}
	if ok {
		delete(h.held, id)
		n.timer.Stop()
	}
	h.mu.Unlock()
	if !ok {
		return
	}
	if t != nil {
		n.ev.Tab = t.ID()
	}
	h.audit.Request(n.ev)
}

// close writes every held event; later ones are written at once.
func (h *heldNavs) close() {
	h.mu.Lock()
	h.closed = true
	held := h.held
	h.held, h.order = nil, nil
	h.mu.Unlock()
	evs := make([]audit.RequestEvent, 0, len(held))
	for _, n := range held {
		n.timer.Stop()
		evs = append(evs, n.ev)
	}
	// In the order they came.
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && evs[j].Time.Before(evs[j-1].Time); j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
	for _, e := range evs {
		h.audit.Request(e)
	}
}
