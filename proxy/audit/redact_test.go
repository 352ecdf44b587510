package audit

import (
	"bytes"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

func TestLogURL(t *testing.T) {
	const tok, code = "T0KEN-abc_XYZ", "C0DE-abc_XYZ"
	tests := []struct{ in, want string }{
		{"http://a.test/page?q=1", "http://a.test/page?q=1"},
		{"http://u:p@a.test/x", "http://a.test/x"},
		{"http://a.test/%2Fodd%2Fpath", "http://a.test/%2Fodd%2Fpath"}, // kept as sent
		{"/.glovebox/api/tabs", "/.glovebox/api/tabs"},
		{"http://a.test/.glovebox/files/" + tok, "http://a.test/.glovebox/files/REDACTED"},
		{"/.glovebox/%66iles/" + tok + "?x", "/.glovebox/files/REDACTED?x"},
		{"/.glovebox/files", "/.glovebox/files"},
		{"http://a.test/.glovebox/api/tabs/" + tok + "/offer", "http://a.test/.glovebox/api/tabs/REDACTED/offer"},
		{"http://a.test/.glovebox/api/tabs/" + tok, "http://a.test/.glovebox/api/tabs/REDACTED"},
		{"/.glovebox/api/tabs/" + tok + "/handoff?x=1", "/.glovebox/api/tabs/REDACTED/handoff?x=1"},
		{"/%2Eglovebox/api/tabs/%54" + tok + "/detach", "/.glovebox/api/tabs/REDACTED/detach"},
		{"/.glovebox/api/../api/tabs/" + tok + "/offer", "/.glovebox/api/tabs/REDACTED/offer"},
		{"/.GLOVEBOX/API/TABS/" + tok + "/offer", "/.GLOVEBOX/API/TABS/REDACTED/offer"},
		{"/.glovebox//api/tabs/" + tok + "/offer", "/.glovebox/api/tabs/REDACTED/offer"},
		{"/%2E%67LOVEBOX%2fapi/tabs/" + tok + "/offer", "/.gLOVEBOX/api/tabs/REDACTED/offer"},
		{"http://a.test/page?glovebox-handoff=" + code + "&h=%23x", "http://a.test/page?glovebox-handoff=REDACTED&h=%23x"},
		{"http://a.test/page?%67lovebox-handoff=" + code, "http://a.test/page?%67lovebox-handoff=REDACTED"},
		{"http://a.test/page?glovebox%2Dhandoff=" + code, "http://a.test/page?glovebox%2Dhandoff=REDACTED"},
		{"http://a.test/page?glovebox-handoff%3D" + code, "http://a.test/page?glovebox-handoff%3DREDACTED"},
		{"http://a.test/page?x=1#glovebox-handoff=" + code, "http://a.test/page?x=1#glovebox-handoff=REDACTED"}, // the query, as a server reads it
		{"/page#glovebox-handoff=" + code, "/page%23glovebox-handoff=REDACTED"},                                 // the path, as a server reads it
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := url.ParseRequestURI(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got := LogURL(u)
			if got != tt.want {
				t.Errorf("logURL = %q, want %q", got, tt.want)
			}
			if strings.Contains(got, tok) || strings.Contains(got, code) {
				t.Errorf("a secret is in %q", got)
			}
		})
	}
	// Free text, as goproxy prints a URL: escaped characters and all.
	for _, s := range []string{
		"/%2E%67LOVEBOX%2fapi/tabs/" + tok + "/offer",
		"x /.glovebox/api%2F%2ftabs/" + tok + "%2Foffer y",
		"?%67lovebox-handoff%3d" + code,
		`Get "http://a.test/.glovebox/api/tabs/` + tok + `/detach": boom`,
	} {
		if got := RedactText(s); strings.Contains(got, tok) || strings.Contains(got, code) || !strings.Contains(got, "REDACTED") {
			t.Errorf("redactText(%q) = %q", s, got)
		}
	}
	// A fragment is never logged (url.Parse keeps one; a server never has one).
	u, _ := url.Parse("https://b.test/p#glovebox-handoff=" + code + "&h=x")
	if got := LogURL(u); got != "https://b.test/p" {
		t.Errorf("with a fragment: %q", got)
	}
}

func TestRedactHandler(t *testing.T) {
	const tok = "T0KEN-abc_XYZ"
	var buf bytes.Buffer
	l := slog.New(NewRedactHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	p := "/.glovebox/api/tabs/" + tok + "/offer"
	u, _ := url.Parse("http://a.test" + p)
	l.With("url", p).WithGroup("g").Debug("Got request "+p, "err", &url.Error{Op: "Get", URL: u.String(), Err: errors.New("boom")},
		"u", u, "nested", slog.GroupValue(slog.String("url", "x?glovebox-handoff="+tok)), "n", 3)
	out := buf.String()
	if strings.Contains(out, tok) {
		t.Errorf("the token is in %s", out)
	}
	if got := RedactText("GET /.glovebox//files/" + tok + " 404"); got != "GET /.glovebox//files/REDACTED 404" {
		t.Errorf("a file key in text: %s", got)
	}
	if n := strings.Count(out, "REDACTED"); n != 5 {
		t.Errorf("%d REDACTED, want 5 (message, With, error, Stringer, group): %s", n, out)
	}
	if !strings.Contains(out, "n=3") || !strings.Contains(out, "boom") {
		t.Errorf("other attributes lost: %s", out)
	}
}
