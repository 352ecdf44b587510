package policy

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// isNavigation reports whether r is a top-level (or frame) navigation, the
// only kind of request to an isolated site that gets the landing page.
// Browsers say so with Fetch Metadata; for clients that send none, a GET
// whose Accept prefers text/html counts.
func IsNavigation(r *http.Request) bool {
	mode, dest := r.Header.Get("Sec-Fetch-Mode"), r.Header.Get("Sec-Fetch-Dest")
	if mode != "" || dest != "" {
		return mode == "navigate" && (dest == "document" || dest == "iframe" || dest == "frame")
	}
	return r.Method == http.MethodGet && acceptPrefersHTML(r.Header.Get("Accept"))
}

// acceptPrefersHTML reports whether an Accept header names text/html with a
// quality no lower than any other media range's. A bare "*/*" does not count:
// that is what scripts and command-line clients send.
func acceptPrefersHTML(accept string) bool {
	htmlQ, maxQ := -1.0, 0.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(s, 64); err == nil {
				q = v
			}
		}
		if mt == "text/html" && q > htmlQ {
			htmlQ = q
		}
		if q > maxQ {
			maxQ = q
		}
	}
	return htmlQ > 0 && htmlQ >= maxQ
}
