package proxy

import (
	"bufio"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glovebox/glovebox/proxy/auth"
	"github.com/glovebox/glovebox/proxy/policy"
)

// TestTunnelHeaderLimits: inside intercepted HTTPS the header limits hold
// as they do for plain requests: headers a little over the limit get 431,
// an 8 MiB one ends the connection after about the limit has been read,
// and too many fields get 431; a normal request still works.
func TestTunnelHeaderLimits(t *testing.T) {
	var served int
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++ }))
	defer origin.Close()
	h := startMITMProxy(t, func(c *Config) {
		c.Policy = policy.Config{Default: policy.ActionAllow}
		c.TLS.ExtraCAFiles = []string{writeCertPEM(t, origin.Certificate())}
	})
	target := origin.Listener.Addr().String()
	u := "https://" + target + "/"

	tc := h.tlsConnect(t, target)
	if resp, _ := get(t, tc, bufio.NewReader(tc), u, nil); resp.StatusCode != http.StatusOK || served != 1 {
		t.Fatalf("a normal request in the tunnel: %d (served %d)", resp.StatusCode, served)
	}

	tc = h.tlsConnect(t, target)
	resp, body := get(t, tc, bufio.NewReader(tc), u, map[string]string{"X-Big": strings.Repeat("a", 70<<10)})
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(body, "bytes") {
		t.Errorf("70 KiB of headers in the tunnel: %d %q, want 431", resp.StatusCode, body)
	}

	fields := map[string]string{}
	for i := range 150 {
		fields[fmt.Sprint("X-F", i)] = "v"
	}
	tc = h.tlsConnect(t, target)
	resp, body = get(t, tc, bufio.NewReader(tc), u, fields)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(body, "header fields") {
		t.Errorf("150 header fields in the tunnel: %d %q, want 431", resp.StatusCode, body)
	}

	// 8 MiB: the proxy stops reading and closes; it never answers.
	tc = h.tlsConnect(t, target)
	go func() {
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\nX-Huge: ", target)
		chunk := []byte(strings.Repeat("b", 64<<10))
		for range 128 {
			if _, err := tc.Write(chunk); err != nil {
				return
			}
		}
		io.WriteString(tc, "\r\n\r\n")
	}()
	tc.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	var ne net.Error
	if err == nil {
		t.Errorf("an 8 MiB header in the tunnel was answered %s, want the connection closed", resp.Status)
	} else if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("an 8 MiB header in the tunnel: the proxy still reads it after 20 s")
	}
	if served != 1 {
		t.Errorf("the site served %d requests, want only the normal one", served)
	}
}

// TestTunnelSilentClient: a client that says nothing after CONNECT's 200
// is disconnected after client_header_timeout, as a plain one is.
func TestTunnelSilentClient(t *testing.T) {
	h := startMITMProxy(t, func(c *Config) {
		c.Policy = policy.Config{Default: policy.ActionAllow}
		c.ClientHeaderTimeout = 300 * time.Millisecond
	})
	c := h.connect(t, "example.test:443")
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("a silent client after CONNECT is still connected after 15 s")
	}
	if n != 0 || err == nil {
		t.Errorf("read %d bytes, %v: want the connection closed", n, err)
	}
}

// TestConnsPerClient: one client address holds at most
// limits.max_conns_per_client connections; the next gets 429, others are
// unaffected, and a closed connection gives its place back.
func TestConnsPerClient(t *testing.T) {
	h := startAuthProxy(t, func(c *Config) { c.Limits.MaxConnsPerClient = 3 })
	dial := func(from string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// served reports whether c gets an answer from the proxy itself.
	served := func(c net.Conn) (int, error) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(c, "GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	held := []net.Conn{dial("127.0.0.1"), dial("127.0.0.1"), dial("127.0.0.1")}
	for _, c := range held {
		if s, err := served(c); err != nil || s == http.StatusTooManyRequests {
			t.Fatalf("a connection within the limit: %d, %v", s, err)
		}
	}
	if s, err := served(dial("127.0.0.1")); s != http.StatusTooManyRequests {
		t.Errorf("the fourth connection: %d, %v, want 429", s, err)
	}
	if s, err := served(dial("127.0.0.2")); err != nil || s == http.StatusTooManyRequests {
		t.Errorf("another client's connection: %d, %v", s, err)
	}
	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := served(dial("127.0.0.1"))
		if err == nil && s != http.StatusTooManyRequests {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no place after a connection closed: %d, %v", s, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeCertPEM writes a certificate as a PEM file for tls.extra_ca_files.
func writeCertPEM(t *testing.T, cert *x509.Certificate) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "origin.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestClientsACL: only the clients networks may use the proxy; anyone else
// gets 403 and is disconnected. A list wider than the private networks
// with no authentication is an open proxy, and the log says so.
func TestClientsACL(t *testing.T) {
	h := startAuthProxy(t, func(c *Config) { c.Clients = []string{"127.0.0.1/32", "::1"} })
	if resp, _ := h.send(t, "127.0.0.1", "GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode == http.StatusForbidden {
		t.Errorf("a listed client: %d", resp.StatusCode)
	}
	resp, body := h.send(t, "127.0.0.2", "GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "clients") {
		t.Errorf("an unlisted client: %d %q, want 403", resp.StatusCode, body)
	}
	if strings.Contains(h.log.String(), "OPEN PROXY") {
		t.Errorf("warned of an open proxy for loopback clients:\n%s", h.log)
	}

	for _, tc := range []struct {
		clients []string
		auth    string
		warn    bool
	}{
		{DefaultClients(), auth.ModeNone, false},
		{[]string{"0.0.0.0/0"}, auth.ModeNone, true},
		{[]string{"10.0.0.0/8", "203.0.113.0/24"}, auth.ModeNone, true},
		{[]string{"::/0"}, auth.ModeNone, true},
	} {
		h := startAuthProxy(t, func(c *Config) { c.Clients = tc.clients; c.Auth.Mode = tc.auth })
		if got := strings.Contains(h.log.String(), "OPEN PROXY"); got != tc.warn {
			t.Errorf("clients %v, auth %s: warned %v, want %v:\n%s", tc.clients, tc.auth, got, tc.warn, h.log)
		}
	}

	c := DefaultConfig()
	c.Clients = []string{"10.0.0.0/8", "not-a-net"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "clients[1]") {
		t.Errorf("Validate = %v, want an error naming clients[1]", err)
	}
	c.Clients = nil
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "clients") {
		t.Errorf("Validate of an empty list = %v, want an error", err)
	}
}
