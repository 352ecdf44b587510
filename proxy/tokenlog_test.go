package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/auth"
)

// TestAPITokenNotLogged: a request that carries a tab token in its API path
// or a hand-over code in its URL, refused with 407 before the API sees it
// (a browser whose proxy sign-in lapsed sends exactly that), is audited
// with the secret replaced, and no log line, audit or operational at debug
// level (goproxy's verbose messages included), has it. The same inside
// intercepted HTTPS.
func TestAPITokenNotLogged(t *testing.T) {
	tok, code := randomToken(), randomToken()
	pw := filepath.Join(t.TempDir(), "htpasswd")
	writeHtpasswd(t, pw, map[string]string{"alice": "pw"})
	h := startAuthProxy(t, func(c *Config) {
		c.Auth.Mode = auth.ModeBasic
		c.Auth.Htpasswd = pw
	}, func(s *Server) { s.gp.Verbose = true }) // goproxy prints every request's URL

	tests := []struct{ name, method, target, want string }{
		{"offer", "POST", "http://isolated.test/.glovebox/api/tabs/" + tok + "/offer", "http://isolated.test/.glovebox/api/tabs/REDACTED/offer"},
		{"detach", "POST", "http://isolated.test/.glovebox/api/tabs/" + tok + "/detach", "http://isolated.test/.glovebox/api/tabs/REDACTED/detach"},
		{"handoff, dot escaped", "POST", "http://isolated.test/%2Eglovebox/api/tabs/" + tok + "/handoff", "http://isolated.test/.glovebox/api/tabs/REDACTED/handoff"},
		{"code in the query", "GET", "http://isolated.test/page?glovebox-handoff=" + code, "http://isolated.test/page?glovebox-handoff=REDACTED"},
		{"code in the query, escaped", "GET", "http://isolated.test/page?%67lovebox-handoff=" + code, "http://isolated.test/page?%67lovebox-handoff=REDACTED"},
		{"code in a fragment sent anyway", "GET", "http://isolated.test/page#glovebox-handoff=" + code, "http://isolated.test/page%23glovebox-handoff=REDACTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := h.send(t, "127.0.0.1", tt.method+" "+tt.target+" HTTP/1.1\r\nHost: isolated.test\r\nContent-Length: 2\r\n\r\n{}")
			if resp.StatusCode != http.StatusProxyAuthRequired {
				t.Fatalf("status %d, want 407", resp.StatusCode)
			}
			h.request(t, tt.want, http.StatusProxyAuthRequired)
		})
	}
	// The claim carries its code in the body, which is never logged.
	body := `{"code":"` + code + `"}`
	resp, _ := h.send(t, "127.0.0.1", "POST http://isolated.test/.glovebox/api/claim HTTP/1.1\r\nHost: isolated.test\r\nContent-Type: application/json\r\n"+
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))+body)
	if resp.StatusCode != http.StatusProxyAuthRequired {
		t.Errorf("claim: status %d, want 407", resp.StatusCode)
	}
	h.request(t, "http://isolated.test/.glovebox/api/claim", http.StatusProxyAuthRequired)

	t.Run("intercepted HTTPS", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "CONNECT isolated.test:443 HTTP/1.1\r\nHost: isolated.test:443\r\n"+basicAuth("alice", "pw")+"\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(h.srv.mitm.ca.Certificate())
		tc := tls.Client(c, &tls.Config{ServerName: "isolated.test", RootCAs: roots})
		br := bufio.NewReader(tc)
		for _, u := range []string{"https://isolated.test/.glovebox/api/tabs/" + tok + "/detach", "https://isolated.test/page?glovebox-handoff=" + code} {
			req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader("{}"))
			if strings.Contains(u, "page") {
				req.Method = http.MethodGet
				req.Body = nil
				req.ContentLength = 0
			}
			if err := req.Write(tc); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				t.Fatalf("%s: %v", u, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		h.request(t, "https://isolated.test/page?glovebox-handoff=REDACTED", http.StatusForbidden)
	})

	for name, out := range map[string]string{"audit log": h.audit.String(), "log": h.log.String()} {
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("nothing redacted in the %s: did the requests reach it?", name)
		}
		for _, secret := range []string{tok, code} {
			if strings.Contains(out, secret) {
				t.Errorf("the %s has a secret:\n%s", name, out)
			}
		}
	}
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRedactedAPIPath: the audit log redacts tokens at the path where the
// API puts them.
func TestRedactedAPIPath(t *testing.T) {
	if apiPrefix+"api/tabs/" != audit.APITabsPrefix {
		t.Errorf("the API's tabs path %q is not the one the audit log redacts (%q)", apiPrefix+"api/tabs/", audit.APITabsPrefix)
	}
}
