package console

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/glovebox/glovebox/proxy/internal/httpx"
	"github.com/glovebox/glovebox/proxy/tab"
)

// Shadowing: an administrator's view-only viewer of a live tab, fed the
// stream its user gets (no second encode, see stream.Peer.Watch). The
// user's landing page says so when Options.ShadowNotice is on.

// maxShadows bounds the console's viewers at once.
const maxShadows = 32

// shadowing is one administrator's viewer of a tab.
type shadowing struct {
	admin, tab, target string
	stop               func()
}

// shadowTab answers a viewer's offer: {"sdp"} → {"sdp", "shadow"}.
func (c *Console) shadowTab(w http.ResponseWriter, r *http.Request, a admin) {
	id := r.PathValue("id")
	var req struct {
		SDP string `json:"sdp"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil || req.SDP == "" {
		writeError(w, http.StatusBadRequest, "Send the viewer's offer as {\"sdp\": …}.")
		return
	}
	target := c.tabUser(id)
	// A place is taken before the viewer is made: at most maxShadows.
	sid := randomToken()
	c.mu.Lock()
	if len(c.shadows) >= maxShadows {
		c.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "Too many tabs are being viewed from the console now.")
		return
	}
	c.shadows[sid] = &shadowing{admin: a.name, tab: id, target: target, stop: func() {}}
	c.mu.Unlock()
	drop := func() {
		c.mu.Lock()
		delete(c.shadows, sid)
		c.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	answer, stop, done, err := c.tabs.ShadowTab(ctx, id, req.SDP, c.shadowNotice)
	switch {
	case errors.Is(err, tab.ErrNoTab) || (err == nil && target == ""):
		drop()
		if stop != nil {
			stop()
		}
		c.note(a, r, "shadow", id, "", http.StatusNotFound, false)
		writeError(w, http.StatusNotFound, "No such tab: it has ended already.")
		return
	case errors.Is(err, tab.ErrNotViewed):
		drop()
		c.note(a, r, "shadow", id, target, http.StatusConflict, false)
		writeError(w, http.StatusConflict, "Its user is not viewing this tab now: there is nothing to watch.")
		return
	case err != nil:
		drop()
		c.note(a, r, "shadow", id, target, http.StatusBadRequest, false)
		writeError(w, http.StatusBadRequest, "The viewer could not be connected: "+err.Error())
		return
	}
	c.mu.Lock()
	if sh, ok := c.shadows[sid]; ok {
		sh.stop = stop
	}
	c.mu.Unlock()
	// However it ends (stopped, the tab or its user's viewer gone, the
	// console's page closed), its place is given back.
	// An end the administrator did not ask for is audited too.
	go func() {
		<-done
		c.mu.Lock()
		_, open := c.shadows[sid]
		delete(c.shadows, sid)
		c.mu.Unlock()
		if open {
			c.noteFrom(a, httpx.ClientIP(r), "shadow_end", id, target, http.StatusOK, false)
		}
	}()
	c.log.Info("tab shadowed from the console", "admin", a.name, "tab", id)
	c.note(a, r, "shadow", id, target, http.StatusOK, false)
	writeJSON(w, http.StatusOK, map[string]string{"sdp": answer, "shadow": sid})
}

// stopShadow ends the administrator's viewer sid.
func (c *Console) stopShadow(w http.ResponseWriter, r *http.Request, a admin) {
	sid := r.PathValue("sid")
	c.mu.Lock()
	s, ok := c.shadows[sid]
	if ok && s.admin == a.name {
		delete(c.shadows, sid)
	}
	c.mu.Unlock()
	if !ok || s.admin != a.name {
		writeError(w, http.StatusNotFound, "No such viewer.")
		return
	}
	s.stop()
	c.note(a, r, "shadow_end", s.tab, s.target, http.StatusOK, false)
	w.WriteHeader(http.StatusNoContent)
}
