package proxy

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// apiPrefix is the reserved path the proxy answers itself on every host. The
// landing page talks to Glovebox only through it, on its own origin.
const apiPrefix = "/.glovebox/"

var errBadRequest = errors.New("bad request")

const maxAPIBody = 64 << 10 // an SDP offer is a few kB

// apiError is the JSON body of every API error.
type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func (s *Server) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.glovebox/app.js", s.static("app.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /.glovebox/app.css", s.static("app.css", "text/css; charset=utf-8"))
	mux.HandleFunc("POST /.glovebox/api/tabs", s.apiCreate)
	mux.HandleFunc("POST /.glovebox/api/tabs/{token}/offer", s.apiOffer)
	mux.HandleFunc("POST /.glovebox/api/tabs/{token}/detach", s.apiDetach)
	mux.HandleFunc("POST /.glovebox/api/tabs/{token}/handoff", s.apiHandoff)
	mux.HandleFunc("POST /.glovebox/api/claim", s.apiClaim)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "not_found", "no such Glovebox endpoint")
	})
	return mux
}

func (s *Server) static(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := webFS.ReadFile("web/" + name)
		if err != nil {
			writeJSONError(w, http.StatusNotFound, "not_found", "no such file")
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Write(b)
	}
}

func (s *Server) apiCreate(w http.ResponseWriter, r *http.Request) {
	var req tabRequest
	if !readJSON(w, r, &req) {
		return
	}
	t, err := s.tabs.create(req, clientIP(r), reqInfoOf(r).user)
	if err != nil {
		s.writeTabError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": t.token, "tab": t.id,
		"width": t.width, "height": t.height, "dpr": t.scale})
}

func (s *Server) apiOffer(w http.ResponseWriter, r *http.Request) {
	t, err := s.tabs.lookup(r.PathValue("token"), tabOwnerOf(r))
	if err != nil {
		s.writeTabError(w, err)
		return
	}
	var req struct {
		SDP string `json:"sdp"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if req.SDP == "" {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "sdp is missing")
		return
	}
	answer, err := t.attach(r.Context(), req.SDP)
	if err != nil {
		s.writeTabError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sdp": answer, "tab": t.id})
}

func (s *Server) apiDetach(w http.ResponseWriter, r *http.Request) {
	t, err := s.tabs.lookup(r.PathValue("token"), tabOwnerOf(r))
	if err != nil {
		s.writeTabError(w, err)
		return
	}
	t.detach()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiHandoff(w http.ResponseWriter, r *http.Request) {
	t, err := s.tabs.lookup(r.PathValue("token"), tabOwnerOf(r))
	if err != nil {
		s.writeTabError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"code": s.tabs.handoff(t)})
}

func (s *Server) apiClaim(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Code string `json:"code"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	t, err := s.tabs.claim(req.Code, tabOwnerOf(r))
	if err != nil {
		s.writeTabError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": t.token, "tab": t.id,
		"width": t.width, "height": t.height, "dpr": t.scale})
}

// writeTabError turns a tab error into a status and a message a user can act on.
func (s *Server) writeTabError(w http.ResponseWriter, err error) {
	var ended *TabEndedError
	switch {
	case errors.As(err, &ended) && ended.StartErr != nil:
		writeJSONError(w, http.StatusBadGateway, "tab_failed", "The isolated browser could not be started: "+ended.StartErr.Error())
	case errors.As(err, &ended):
		writeJSONError(w, http.StatusGone, "ended", "This isolated tab has ended ("+ended.Reason+"). Reload the page to open it again.")
	case errors.Is(err, ErrNoTab):
		writeJSONError(w, http.StatusNotFound, "no_tab", "This isolated tab does not exist or has ended.")
	case errors.Is(err, ErrCapacity):
		writeJSONError(w, http.StatusServiceUnavailable, "capacity",
			"Glovebox is at capacity: every isolated tab is in use. Close another isolated tab or try again in a minute.")
	case errors.Is(err, ErrClosing):
		writeJSONError(w, http.StatusServiceUnavailable, "shutting_down", "Glovebox is restarting. Try again in a moment.")
	case errors.Is(err, errBadRequest):
		writeJSONError(w, http.StatusBadRequest, "bad_request", err.Error())
	case isBadOffer(err):
		writeJSONError(w, http.StatusBadRequest, "bad_offer", err.Error())
	default:
		s.log.Warn("tab error", "err", err)
		writeJSONError(w, http.StatusBadGateway, "tab_failed", "The isolated browser could not be started: "+err.Error())
	}
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "text/plain") {
		writeJSONError(w, http.StatusUnsupportedMediaType, "bad_request", "send JSON")
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
