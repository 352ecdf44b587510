package proxy

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/internal/httpx"
	"github.com/glovebox/glovebox/proxy/policy"
)

//go:embed web
var webFS embed.FS

var pageTmpl = template.Must(template.ParseFS(webFS, "web/page.html"))

// landing is the landing page with its script and style inlined, so that
// it makes no request of its own before it asks for its tab. Its policy
// runs exactly that script and style, by hash, and lets it talk only to its
// own origin. (/.glovebox/app.js and app.css are still served.)
var landing = buildLanding()

type landingDoc struct {
	html []byte
	csp  string
}

// appJS and appCSS are the landing page's script and style: the files of
// web/app/ in name order. The script's files share one strict-mode closure,
// so a feature file sees the core's names and nothing leaks to window.
var appJS, appCSS = bundle(".js"), bundle(".css")

func bundle(ext string) []byte {
	entries, err := fs.ReadDir(webFS, "web/app")
	if err != nil {
		panic(err)
	}
	var b bytes.Buffer
	if ext == ".js" {
		b.WriteString("'use strict';\n(() => {\n")
	}
	for _, e := range entries { // ReadDir sorts by name
		if path.Ext(e.Name()) != ext {
			continue
		}
		f, err := webFS.ReadFile("web/app/" + e.Name())
		if err != nil {
			panic(err)
		}
		b.Write(f)
		if !bytes.HasSuffix(f, []byte("\n")) {
			b.WriteByte('\n')
		}
	}
	if ext == ".js" {
		b.WriteString("})();\n")
	}
	return b.Bytes()
}

func buildLanding() landingDoc {
	js, css := appJS, appCSS
	var b bytes.Buffer
	tmpl := template.Must(template.ParseFS(webFS, "web/landing.html"))
	if err := tmpl.Execute(&b, struct {
		Style  template.CSS
		Script template.JS
	}{template.CSS(css), template.JS(js)}); err != nil {
		panic(err)
	}
	csp := "default-src 'none'; script-src " + hashSource(js) + "; style-src " + hashSource(css) +
		"; connect-src 'self'; media-src 'self' blob:; img-src 'self' data:; base-uri 'none'; form-action 'none'"
	return landingDoc{html: b.Bytes(), csp: csp}
}

// hashSource is the CSP source expression that allows the inline script or
// style b.
func hashSource(b []byte) string {
	sum := sha256.Sum256(b)
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// landingPage is what an isolated site's navigation gets instead of the site:
// the same page for every URL, which reads its URL from location.
// The page learns its request's id (navlog.go) from a meta element.
func landingPage(r *http.Request, requestID string) *http.Response {
	meta := `<meta name="glovebox-request" content="` + template.HTMLEscapeString(requestID) + `">`
	html := bytes.Replace(landing.html, []byte("<head>\n"), []byte("<head>\n"+meta+"\n"), 1)
	resp := httpx.Response(r, http.StatusOK, "text/html; charset=utf-8", html)
	resp.Header.Set("Content-Security-Policy", landing.csp)
	resp.Header.Set("Referrer-Policy", "no-referrer")
	resp.Header.Set("X-Glovebox", "isolated")
	return resp
}

// blockPage says what was blocked and by which rule.
func blockPage(r *http.Request, d policy.Decision) *http.Response {
	if !policy.IsNavigation(r) {
		return httpx.Response(r, http.StatusForbidden, "text/plain; charset=utf-8",
			[]byte("Blocked by Glovebox policy rule "+d.Rule+": "+audit.RequestURL(r)+"\n"))
	}
	return renderPage(r, http.StatusForbidden, pageData{
		Title:   "This site is blocked",
		Message: "Your organisation's policy does not allow this site.",
		URL:     audit.RequestURL(r),
		Rule:    d.Rule,
	})
}

// isolatedResource refuses a subresource of an isolated site: its bytes must
// never reach the user's browser.
func isolatedResource(r *http.Request) *http.Response {
	return httpx.Response(r, http.StatusForbidden, "text/plain; charset=utf-8",
		[]byte("Glovebox: "+r.URL.Hostname()+" is isolated; only its pixels are delivered, in an isolated tab.\n"))
}

// errorPage is a short explanation for the user.
func errorPage(r *http.Request, status int, title, msg string) *http.Response {
	return renderPage(r, status, pageData{Title: title, Message: msg, URL: audit.RequestURL(r)})
}

type pageData struct {
	Title   string
	Message string
	URL     string
	Rule    string
}

func renderPage(r *http.Request, status int, d pageData) *http.Response {
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, d); err != nil {
		buf.Reset()
		buf.WriteString(d.Title)
	}
	resp := httpx.Response(r, status, "text/html; charset=utf-8", buf.Bytes())
	resp.Header.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	return resp
}

// recordResponse runs h and returns what it wrote as a response goproxy can send.
func recordResponse(r *http.Request, h http.Handler) *http.Response {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r
	return resp
}
