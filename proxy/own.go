package proxy

import (
	"html/template"
	"net/http"
)

// Paths of the interception CA's certificate on the proxy's own address.
const (
	CAPEMPath = "/glovebox-ca.pem"
	CADERPath = "/glovebox-ca.crt"
)

var indexTmpl = template.Must(template.New("index").Parse(`<!doctype html>
<meta charset="utf-8">
<title>Glovebox</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em;color:#222}code{background:#eee;padding:0 .2em}</style>
<h1>Glovebox</h1>
<p>This is Glovebox, a browser isolation proxy. Set it as your browser's HTTP proxy: <code>{{.Host}}</code>,
or its automatic proxy configuration URL: <a href="/proxy.pac">http://{{.Host}}/proxy.pac</a>.</p>
<h2>HTTPS</h2>
<p>Glovebox inspects HTTPS with certificates of its own. Install its CA certificate in your browser or your system's trust store:</p>
<ul>
<li><a href="` + CAPEMPath + `" download>glovebox-ca.pem</a> (PEM: Linux, Firefox, <code>certutil</code>)</li>
<li><a href="` + CADERPath + `" download>glovebox-ca.crt</a> (DER: Windows, macOS, Android)</li>
</ul>
`))

// serveIndex is the proxy's own home page.
func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	indexTmpl.Execute(w, struct{ Host string }{r.Host})
}

// serveCACert sends the interception CA's certificate for download, in PEM
// or (der) in DER, the form browsers offer to install.
func (s *Server) serveCACert(w http.ResponseWriter, r *http.Request, der bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	body, ctype, name := s.mitm.ca.CertPEM(), "application/x-pem-file", "glovebox-ca.pem"
	if der {
		body, ctype, name = s.mitm.ca.Certificate().Raw, "application/x-x509-ca-cert", "glovebox-ca.crt"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(body)
}
