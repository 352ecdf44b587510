package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/glovebox/glovebox/isolate"
	"github.com/glovebox/glovebox/proxy/tab"
	"github.com/glovebox/glovebox/render"

	"github.com/glovebox/glovebox/proxy/internal/httpx"
	"github.com/glovebox/glovebox/proxy/policy"
)

// apiPrefix is the reserved path the proxy answers itself on every host. The
// landing page talks to Glovebox only through it, on its own origin.
const apiPrefix = "/.glovebox/"

const maxAPIBody = 64 << 10 // an SDP offer is a few kB

// apiError is the JSON body of every API error.
type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func (s *Server) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.glovebox/app.js", static(appJS, "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /.glovebox/app.css", static(appCSS, "text/css; charset=utf-8"))
	mux.HandleFunc("POST /.glovebox/api/tabs", s.apiCreate)
	mux.HandleFunc("POST /.glovebox/api/tabs/{token}/offer", s.apiOffer)
	mux.HandleFunc("POST /.glovebox/api/tabs/{token}/detach", s.apiDetach)
	mux.HandleFunc("POST /.glovebox/api/tabs/{token}/handoff", s.apiHandoff)
	mux.HandleFunc("POST /.glovebox/api/tabs/{token}/popup", s.apiPopup)
	mux.HandleFunc("POST /.glovebox/api/claim", s.apiClaim)
	mux.HandleFunc("GET "+tab.FilesPrefix+"{key}", s.apiFile)
	mux.HandleFunc("POST /.glovebox/api/tabs/{token}/upload", s.apiUpload)
	mux.HandleFunc("POST /.glovebox/api/tabs/{token}/paste-image", s.apiPasteImage)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "not_found", "no such Glovebox endpoint")
	})
	return mux
}

func static(b []byte, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Write(b)
	}
}

func (s *Server) apiCreate(w http.ResponseWriter, r *http.Request) {
	var req tab.Request
	if !readJSON(w, r, &req) {
		return
	}
	// A tab is for the page that asks for it: on the host the request
	// came to, and isolated for this user. A page elsewhere cannot have
	// tabs opened in the user's name.
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "url must be an absolute http or https URL with a host")
		return
	}
	if originOf(u) != originOf(r.URL) {
		writeJSONError(w, http.StatusForbidden, "wrong_origin", "url must be on the origin the request is sent to ("+originOf(r.URL)+")")
		return
	}
	if !s.isolatable(u, reqInfoOf(r).user) {
		writeJSONError(w, http.StatusForbidden, "not_isolated", "policy does not isolate this URL")
		return
	}
	d, _ := s.effective(u, reqInfoOf(r).user)
	req.Audio, req.Controls = d.Audio, d.Controls
	// tab_start names the request that opened it only when that request
	// is this user's landing page, waiting for its tab.
	if id := requestIDOf(r); s.navs.holds(id, reqInfoOf(r).user, httpx.ClientIP(r)) {
		req.RequestID = id
	}
	t, err := s.tabs.Create(req, httpx.ClientIP(r), reqInfoOf(r).user)
	if err == nil {
		s.navs.release(requestIDOf(r), t, httpx.ClientIP(r))
	}
	s.writeTab(w, http.StatusCreated, t, err)
}

func (s *Server) apiOffer(w http.ResponseWriter, r *http.Request) {
	t, req, ok := tabWithJSON[offerRequest](s, w, r)
	if !ok {
		return
	}
	if req.SDP == "" {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "sdp is missing")
		return
	}
	// A reload's landing page reattaches with its token.
	s.navs.release(requestIDOf(r), t, httpx.ClientIP(r))
	answer, err := t.Attach(r.Context(), req.SDP)
	if err != nil {
		s.writeTabError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sdp": answer, "tab": t.ID()})
}

func (s *Server) apiDetach(w http.ResponseWriter, r *http.Request) {
	t, ok := s.tabOf(w, r)
	if !ok {
		return
	}
	t.Detach()
	w.WriteHeader(http.StatusNoContent)
}

// apiHandoff is the landing page asking to follow its remote page to
// another origin. A hand-over code goes only to an origin that policy
// isolates for the tab's user: anywhere else, the site's own scripts would
// read it from the URL and claim the tab. Leaving isolation ends the tab,
// and the user's browser goes there plainly, as a normal link would.
func (s *Server) apiHandoff(w http.ResponseWriter, r *http.Request) {
	t, req, ok := tabWithJSON[handoffRequest](s, w, r)
	if !ok {
		return
	}
	s.handOver(w, t, req.URL)
}

// handOver answers with a hand-over code for t at rawURL's origin, when
// policy isolates it for t's user, or else with the URL to navigate to
// plainly, ending t.
func (s *Server) handOver(w http.ResponseWriter, t *tab.Tab, rawURL string) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "url must be an absolute http or https URL")
		return
	}
	if !s.isolatable(u, t.User()) {
		writeJSON(w, http.StatusOK, map[string]any{"navigate": u.String()})
		t.End("left isolation for " + u.Hostname())
		return
	}
	// The tab now shows a site of its own rule: it is heard only if
	// that rule allows it, from this moment (its sound stops at once).
	d, _ := s.effective(u, t.User())
	t.SetAudio(d.Audio)
	t.SetControls(d.Controls)
	writeJSON(w, http.StatusOK, map[string]any{"code": s.tabs.Handoff(t, originOf(u)), "url": u.String()})
}

// apiPopup is the landing page asking for the window its remote page
// opened (the popup tab id of a popup message): as a hand-over, with the
// same checks, to the window it opens; or to end it (dismiss), when the
// user does not want it.
func (s *Server) apiPopup(w http.ResponseWriter, r *http.Request) {
	t, req, ok := tabWithJSON[popupRequest](s, w, r)
	if !ok {
		return
	}
	p, err := s.tabs.Popup(t, req.ID)
	if err != nil {
		s.writeTabError(w, err)
		return
	}
	if req.Dismiss {
		p.End("popup dismissed by user")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.handOver(w, p, req.URL)
}

func (s *Server) apiClaim(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Code string `json:"code"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	t, err := s.tabs.Claim(req.Code, tabOwnerOf(r), originOf(r.URL))
	if err == nil {
		s.navs.release(requestIDOf(r), t, httpx.ClientIP(r))
	}
	s.writeTab(w, http.StatusOK, t, err)
}

// apiFile delivers a file offered to the user (a download Glovebox
// allowed) at its one-time URL: to the tab's owner only, once. Any other
// request, a replay among them, is answered as for a key that never was.
// The file is sent as an attachment that the browser saves and never
// renders: no type sniffing, and a sandbox for anything that would.
func (s *Server) apiFile(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet { // HEAD would use the one time up
		w.Header().Set("Allow", "GET")
		writeJSONError(w, http.StatusMethodNotAllowed, "bad_method", "fetch the file with GET")
		return
	}
	o, err := s.tabs.TakeOffer(r.PathValue("key"), tabOwnerOf(r))
	if err != nil {
		writeJSONError(w, http.StatusNotFound, "no_file", "This download link has been used already, has expired, or is not yours.")
		return
	}
	f, err := o.Open()
	if err != nil {
		o.Done(false)
		s.log.Warn("offered file", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "file_failed", "The file could not be read.")
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", o.MIME)
	cd := mime.FormatMediaType("attachment", map[string]string{"filename": o.Name})
	if cd == "" {
		cd = "attachment"
	}
	h.Set("Content-Disposition", cd)
	h.Set("Content-Length", fmt.Sprint(o.Size))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, err = io.Copy(w, io.LimitReader(f, o.Size))
	o.Done(err == nil)
}

// apiUpload takes the files the user chose for the remote page's file
// chooser (?chooser=ID of a chooser message), or dropped on the video
// (?drop=X,Y: where, in CSS pixels of the remote viewport), as
// multipart/form-data "file" parts, and answers what became of each.
func (s *Server) apiUpload(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(w, r) {
		return
	}
	t, ok := s.tabOf(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	var chooser int
	var x, y float64
	var err error
	if d := q.Get("drop"); d != "" {
		xs, ys, _ := strings.Cut(d, ",")
		x, err = strconv.ParseFloat(xs, 64)
		if err == nil {
			y, err = strconv.ParseFloat(ys, 64)
		}
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "bad_request", "drop must be X,Y: where the files were dropped")
			return
		}
	} else if chooser, err = strconv.Atoi(q.Get("chooser")); err != nil || chooser < 1 {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "chooser must name the file chooser (its id)")
		return
	}
	c := t.Controls()
	r.Body = http.MaxBytesReader(w, r.Body, int64(c.UploadMaxMB+1)<<20*render.MaxChooserFiles)
	mr, err := r.MultipartReader()
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "send the files as multipart/form-data")
		return
	}
	var res []tab.UploadResult
	if chooser > 0 {
		res, err = t.Upload(r.Context(), chooser, mr)
	} else {
		res, err = t.Drop(r.Context(), x, y, mr)
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, tab.ErrUploadDenied):
		writeJSONError(w, http.StatusForbidden, "upload_denied", "Uploads are not allowed on this site.")
	case errors.As(err, &mbe):
		writeJSONError(w, http.StatusRequestEntityTooLarge, "too_large", "The upload is too large.")
	case errors.Is(err, tab.ErrBadRequest):
		writeJSONError(w, http.StatusBadRequest, "bad_request", err.Error())
	case err != nil:
		s.log.Warn("upload", "err", err)
		writeJSONError(w, http.StatusBadGateway, "upload_failed", "The files could not be given to the isolated page.")
	default:
		writeJSON(w, http.StatusOK, map[string]any{"files": res})
	}
}

// apiPasteImage takes the image the user pasted (the body, of its type:
// PNG, JPEG, GIF or WebP) and gives it to the remote page's paste.
func (s *Server) apiPasteImage(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(w, r) {
		return
	}
	t, ok := s.tabOf(w, r)
	if !ok {
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	r.Body = http.MaxBytesReader(w, r.Body, render.MaxPasteImage)
	data, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeJSONError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("The image is larger than %d MB, the most that can be pasted.", render.MaxPasteImage>>20))
		return
	}
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "the image could not be read")
		return
	}
	err = t.PasteImage(r.Context(), mt, data)
	switch {
	case errors.Is(err, tab.ErrPasteDenied):
		writeJSONError(w, http.StatusForbidden, "paste_denied", "Pasting this image into this site is not allowed.")
	case errors.Is(err, tab.ErrPasteUnscanned):
		writeJSONError(w, http.StatusServiceUnavailable, "not_scanned", "The image could not be checked for viruses (the scanner is unavailable), so it was not pasted.")
	case errors.Is(err, tab.ErrBadRequest):
		writeJSONError(w, http.StatusBadRequest, "bad_request", err.Error())
	case err != nil:
		s.log.Warn("paste image", "err", err)
		writeJSONError(w, http.StatusBadGateway, "paste_failed", "The image could not be given to the isolated page.")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// writeTab answers with the tab the landing page now holds (its token and
// the viewport in effect), or with why there is none.
func (s *Server) writeTab(w http.ResponseWriter, status int, t *tab.Tab, err error) {
	if err != nil {
		s.writeTabError(w, err)
		return
	}
	vw, vh, scale := t.Viewport()
	writeJSON(w, status, map[string]any{"token": t.Token(), "tab": t.ID(),
		"width": vw, "height": vh, "dpr": scale})
}

// tabOf is the tab whose token the request's path names, if the client
// owns it; else it has answered with the reason.
func (s *Server) tabOf(w http.ResponseWriter, r *http.Request) (*tab.Tab, bool) {
	t, err := s.tabs.Lookup(r.PathValue("token"), tabOwnerOf(r))
	if err != nil {
		s.writeTabError(w, err)
		return nil, false
	}
	return t, true
}

// The bodies of the requests about one tab.
type (
	offerRequest struct {
		SDP string `json:"sdp"`
	}
	handoffRequest struct {
		URL string `json:"url"`
	}
	popupRequest struct {
		ID      string `json:"id"`
		URL     string `json:"url"`
		Dismiss bool   `json:"dismiss"`
	}
)

// tabWithJSON is tabOf, and the request's JSON body.
func tabWithJSON[T any](s *Server, w http.ResponseWriter, r *http.Request) (*tab.Tab, T, bool) {
	var body T
	t, ok := s.tabOf(w, r)
	if !ok || !readJSON(w, r, &body) {
		return nil, body, false
	}
	return t, body, true
}

// writeTabError turns a tab error into a status and a message a user can act on.
func (s *Server) writeTabError(w http.ResponseWriter, err error) {
	var ended *tab.EndedError
	if errors.As(err, &ended) && ended.StartErr != nil && errors.Is(ended.StartErr, isolate.ErrCapacity) {
		err = ended.StartErr // the runtime had no room: capacity, not a failure
	}
	switch {
	case errors.Is(err, tab.ErrCapacity), errors.Is(err, isolate.ErrCapacity):
		writeJSONError(w, http.StatusServiceUnavailable, "capacity",
			"Glovebox is at capacity: every isolated tab is in use. Close another isolated tab or try again in a minute.")
	case errors.As(err, &ended) && ended.StartErr != nil:
		writeJSONError(w, http.StatusBadGateway, "tab_failed", "The isolated browser could not be started: "+ended.StartErr.Error())
	case errors.As(err, &ended):
		writeJSONError(w, http.StatusGone, "ended", "This isolated tab has ended ("+ended.Reason+"). Reload the page to open it again.")
	case errors.Is(err, tab.ErrNoTab):
		writeJSONError(w, http.StatusNotFound, "no_tab", "This isolated tab does not exist or has ended.")
	case errors.Is(err, tab.ErrUserLimit):
		writeJSONError(w, http.StatusTooManyRequests, "too_many_tabs",
			fmt.Sprintf("You have %d isolated tabs open, the most one person may have. Close one of them and reload this page.", s.cfg.Tabs.MaxPerUser))
	case errors.Is(err, tab.ErrRateLimited):
		w.Header().Set("Retry-After", "10")
		writeJSONError(w, http.StatusTooManyRequests, "rate_limited", "Isolated tabs are being opened too fast. Wait a few seconds and reload this page.")
	case errors.Is(err, tab.ErrClosing):
		writeJSONError(w, http.StatusServiceUnavailable, "shutting_down", "Glovebox is restarting. Try again in a moment.")
	case errors.Is(err, tab.ErrBadRequest):
		writeJSONError(w, http.StatusBadRequest, "bad_request", err.Error())
	case isBadOffer(err):
		writeJSONError(w, http.StatusBadRequest, "bad_offer", err.Error())
	default:
		s.log.Warn("tab error", "err", err)
		writeJSONError(w, http.StatusBadGateway, "tab_failed", "The isolated browser could not be started: "+err.Error())
	}
}

// originOf is u's origin, scheme://host:port, the port always written.
func originOf(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = urlPort(u)
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(policy.CanonIPHost(policy.NormHost(u.Host)), port)
}

// sameOrigin refuses a request that a browser says comes from another
// site: its Origin is not the request's own, or Sec-Fetch-Site is not
// same-origin. A JSON body already takes a CORS preflight from another
// origin, which the API never answers; this says no even when it would be
// sent without one. Clients other than browsers send neither header.
func sameOrigin(w http.ResponseWriter, r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		ou, err := url.Parse(o)
		if err != nil || ou.Host == "" || originOf(ou) != originOf(r.URL) {
			writeJSONError(w, http.StatusForbidden, "cross_origin", "Glovebox's API answers only its own page, on "+originOf(r.URL))
			return false
		}
	}
	if sfs := r.Header.Get("Sec-Fetch-Site"); sfs != "" && sfs != "same-origin" {
		writeJSONError(w, http.StatusForbidden, "cross_origin", "Glovebox's API answers only its own page, on "+originOf(r.URL))
		return false
	}
	return true
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if !sameOrigin(w, r) {
		return false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeJSONError(w, http.StatusUnsupportedMediaType, "bad_request", "send JSON, with Content-Type: application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAPIBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSONError(w, http.StatusRequestEntityTooLarge, "too_large", "request body too large")
		} else {
			writeJSONError(w, http.StatusBadRequest, "bad_request", "invalid JSON: "+err.Error())
		}
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "invalid JSON: trailing data")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: code, Message: msg})
}
