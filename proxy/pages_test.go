package proxy

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestLandingPageInline: the landing page carries its script and style
// inline, byte for byte, and its policy allows exactly those two by hash.
func TestLandingPageInline(t *testing.T) {
	resp := landingPage(httptest.NewRequest("GET", "http://isolated.test/some/page", nil), "0123abcd")
	raw, _ := io.ReadAll(resp.Body)
	body := string(raw)
	if !strings.Contains(body, "<head>\n<meta name=\"glovebox-request\" content=\"0123abcd\">\n") {
		t.Errorf("the landing page does not carry its request's id: %.300s", body)
	}
	js, css := appJS, appCSS
	if !strings.Contains(string(js), "function onServerMessage") || !strings.Contains(string(js), "start().catch") {
		t.Fatal("the bundled script lacks the core or the start")
	}
	if !strings.Contains(body, "<script>"+string(js)+"</script>") {
		t.Error("app.js is not inlined verbatim")
	}
	if !strings.Contains(body, "<style>"+string(css)+"</style>") {
		t.Error("app.css is not inlined verbatim")
	}
	if strings.Contains(body, " src=") || strings.Contains(body, "<link") {
		t.Errorf("the landing page still loads a file: %s", body)
	}
	hash := func(b []byte) string {
		sum := sha256.Sum256(b)
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{
		"default-src 'none'", "script-src " + hash(js) + ";", "style-src " + hash(css) + ";",
		"connect-src 'self'", "base-uri 'none'", "form-action 'none'",
	} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q allows any inline code", csp)
	}
	if resp.Header.Get("X-Glovebox") != "isolated" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", resp.Header)
	}
}
