package audit

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// Secrets that travel in URLs are kept out of every log line: a tab's token
// is a path segment of the /.glovebox/ API (/.glovebox/api/tabs/TOKEN/offer),
// which the audit log saw whenever such a request was refused before the API
// answered it (a 407, a loop), and a hand-over code rides in the fragment of
// the landing page's URL (#glovebox-handoff=CODE), which browsers do not send
// but any client may write into a request. Either one lets whoever reads the
// log take over the user's tab.

// redacted replaces a secret in what is logged.
const redacted = "REDACTED"

// handoffParam is the landing page's fragment parameter (web/app.js HANDOFF).
const handoffParam = "glovebox-handoff"

// APITabsPrefix is the API path whose next segment is a tab's token.
// APITabsPrefix is where the landing page's API puts a tab's token in a
// path: /.glovebox/api/tabs/TOKEN/… (the proxy's API, which a test holds to
// this).
const APITabsPrefix = "/.glovebox/api/tabs/"

// FilesPrefix is where a file offered to a user is fetched from, once:
// /.glovebox/files/KEY, its next segment a secret too.
const FilesPrefix = "/.glovebox/files/"

var (
	// tokenInText is the API path with its token in free text, its
	// characters as they are or %-escaped, with a doubled slash or two.
	tokenInText = regexp.MustCompile(`(?i)(` + escapable("/.glovebox") + `(?:` + escapable("/") + `)+(?:` + escapable("api") +
		`(?:` + escapable("/") + `)+` + escapable("tabs") + `|` + escapable("files") + `)(?:` + escapable("/") + `)+)[^/?#&\s"'\\]+`)
	// handoffInText is the hand-over parameter with its value.
	handoffInText = regexp.MustCompile(`(?i)(` + escapable(handoffParam+"=") + `)[^&#\s"'\\]+`)
)

// escapable is a regexp for word with any of its characters %-escaped (in
// either case): what a client writes, Go prints a URL's RawPath as.
func escapable(word string) string {
	var b strings.Builder
	for _, c := range []byte(word) {
		if l := c | 0x20; l >= 'a' && l <= 'z' { // (?i) matches the letter in either case
			fmt.Fprintf(&b, "(?:%c|%%%02x|%%%02x)", l, l, l&^0x20)
		} else {
			fmt.Fprintf(&b, "(?:%s|%%%02x)", regexp.QuoteMeta(string(c)), c)
		}
	}
	return b.String()
}

// redactText replaces the tab tokens and hand-over codes written in s.
func RedactText(s string) string {
	if !containsFold(s, "glovebox") && !strings.Contains(s, "%") { // the common case, without a regexp
		return s
	}
	s = tokenInText.ReplaceAllString(s, "${1}"+redacted)
	return handoffInText.ReplaceAllString(s, "${1}"+redacted)
}

// containsFold is strings.Contains ignoring ASCII case, without allocating.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// logURL is u as it may be logged: without credentials or fragment (a
// browser never sends one; it is where hand-over codes live), with the
// token of an API path and any hand-over code replaced by REDACTED. An API
// path is judged decoded and cleaned, as the API's router sees it, so that
// neither escapes nor a "/../" carry a token past.
func LogURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.Fragment, c.RawFragment = "", ""
	if p, ok := redactAPIPath(c.Path); ok {
		c.Path, c.RawPath = p, ""
	}
	return RedactText(c.String())
}

// redactAPIPath replaces the token segment of a decoded API path.
func redactAPIPath(p string) (string, bool) {
	clean := path.Clean(p)
	for _, prefix := range []string{APITabsPrefix, FilesPrefix} {
		if len(clean) <= len(prefix) || !strings.EqualFold(clean[:len(prefix)], prefix) {
			continue
		}
		_, rest, more := strings.Cut(clean[len(prefix):], "/")
		p = clean[:len(prefix)] + redacted
		if more {
			p += "/" + rest
		}
		return p, true
	}
	return p, false
}

// redactHandler is a slog.Handler that runs every message and string (and
// error or Stringer) attribute through redactText before the next handler
// sees it. It sits under the proxy's logger and the audit log, so that a URL
// anyone logs (goproxy's own messages among them) cannot carry a token or a
// hand-over code into a log line.
type redactHandler struct{ next slog.Handler }

func NewRedactHandler(next slog.Handler) slog.Handler {
	if _, ok := next.(redactHandler); ok {
		return next
	}
	return redactHandler{next: next}
}

func (h redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, RedactText(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redactAttr(a)
	}
	return redactHandler{next: h.next.WithAttrs(red)}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{next: h.next.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); RedactText(s) != s {
			a.Value = slog.StringValue(RedactText(s))
		}
	case slog.KindGroup:
		g := v.Group()
		red := make([]slog.Attr, len(g))
		for i, ga := range g {
			red[i] = redactAttr(ga)
		}
		a.Value = slog.GroupValue(red...)
	case slog.KindAny:
		// Errors (a url.Error names its URL) and Stringers are written as
		// their text by every handler: redact that text.
		switch x := v.Any().(type) {
		case error:
			if s := x.Error(); RedactText(s) != s {
				a.Value = slog.StringValue(RedactText(s))
			}
		case fmt.Stringer:
			if s := x.String(); RedactText(s) != s {
				a.Value = slog.StringValue(RedactText(s))
			}
		}
	}
	return a
}

// RequestURL is the request's URL as it may be logged: without credentials,
// tab tokens or hand-over codes (see LogURL).
func RequestURL(r *http.Request) string {
	if r.Method == http.MethodConnect {
		return RedactText(r.URL.Host)
	}
	return LogURL(r.URL)
}
