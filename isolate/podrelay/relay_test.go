package podrelay

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// echoServer stands in for DevTools or the egress proxy: it answers each
// line with "<name>: <line>".
func echoServer(t *testing.T, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					io.WriteString(c, name+": "+sc.Text()+"\n")
				}
			}()
		}
	}()
	return ln
}

type relayFixture struct {
	r       *Relay
	id      Identity
	client  Client
	devtool net.Listener
}

func startRelay(t *testing.T) relayFixture { return startRelayWith(t, nil) }

// startRelayWith is startRelay with wrap, if not nil, called on the relay
// before it serves.
func startRelayWith(t *testing.T, wrap func(*Relay)) relayFixture {
	t.Helper()
	id, err := NewIdentity(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(id.CertPEM, id.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	dt := echoServer(t, "devtools")
	r, err := Listen(Config{Listen: "127.0.0.1:0", Proxy: "127.0.0.1:0", DevTools: dt.Addr().String(), Cert: cert, Token: id.Token})
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		wrap(r)
	}
	done := make(chan error, 1)
	go func() { done <- r.Serve(context.Background()) }()
	t.Cleanup(func() {
		r.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return relayFixture{r: r, id: id, devtool: dt, client: Client{Addr: r.Addr().String(), CertPEM: id.CertPEM, Token: id.Token}}
}

func roundTrip(t *testing.T, c net.Conn, line string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read after %q: %v", line, err)
	}
	return strings.TrimSpace(got)
}

// TestDevTools: with the pod's certificate and token the stream reaches
// DevTools both ways.
func TestDevTools(t *testing.T) {
	f := startRelay(t)
	c, err := f.client.DialDevTools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := roundTrip(t, c, "GET /json/version"); got != "devtools: GET /json/version" {
		t.Fatalf("got %q", got)
	}
}

// TestRefused: a wrong token, another pod's certificate, a bad line, an
// unknown command and an over-long line get nothing through.
func TestRefused(t *testing.T) {
	f := startRelay(t)
	other, err := NewIdentity(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bad := f.client
	bad.Token = other.Token
	if _, err := bad.DialDevTools(context.Background()); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Errorf("wrong token: %v", err)
	}
	// A relay that is not this pod's (another pod's certificate): the
	// client refuses it before sending the token.
	spoof := f.client
	spoof.CertPEM = other.CertPEM
	if _, err := spoof.DialDevTools(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("other certificate: %v", err)
	}
	for _, line := range []string{
		"DEVTOOLS", "DEVTOOLS ", "devtools " + f.id.Token, "DEVTOOLS " + f.id.Token + " extra",
		"EGRESS " + f.id.Token, "EGRESS " + f.id.Token + " nocolon", "SHELL " + f.id.Token,
		"DEVTOOLS " + strings.Repeat("x", 600),
	} {
		raw, err := tls.Dial("tcp", f.client.Addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		got := roundTrip(t, raw, line)
		raw.Close()
		if !strings.HasPrefix(got, "ERR ") {
			t.Errorf("%.40q: got %q", line, got)
		}
	}
	// Plain TCP to the TLS port: no handshake, nothing.
	pc, err := net.Dial("tcp", f.client.Addr)
	if err != nil {
		t.Fatal(err)
	}
	pc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(pc, "DEVTOOLS "+f.id.Token+"\n")
	if b, _ := io.ReadAll(pc); strings.Contains(string(b), "OK") {
		t.Errorf("plain TCP got %q", b)
	}
	pc.Close()
}

// TestEgress: the browser's proxy connections go nowhere until the owner
// sets the egress, then to it; another owner cannot move it.
func TestEgress(t *testing.T) {
	f := startRelay(t)
	eg := echoServer(t, "egress")

	c, err := net.Dial("tcp", f.r.ProxyAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "CONNECT example.test:443 HTTP/1.1\n")
	// Closed at once (a reset, as the request was not read) with no answer.
	var ne net.Error
	if b, err := io.ReadAll(c); len(b) > 0 || (errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("unclaimed pod's proxy answered %q, %v", b, err)
	}
	c.Close()

	if err := f.client.SetEgress(context.Background(), eg.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := f.client.SetEgress(context.Background(), eg.Addr().String()); err != nil {
		t.Errorf("the same egress again: %v", err)
	}
	if err := f.client.SetEgress(context.Background(), "127.0.0.1:1"); err == nil {
		t.Error("the egress moved to another address")
	}
	c, err = net.Dial("tcp", f.r.ProxyAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := roundTrip(t, c, "CONNECT example.test:443 HTTP/1.1"); got != "egress: CONNECT example.test:443 HTTP/1.1" {
		t.Fatalf("got %q", got)
	}
}

// TestCloseEnds: Close ends the streams under way.
func TestCloseEnds(t *testing.T) {
	f := startRelay(t)
	c, err := f.client.DialDevTools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "ping")
	f.r.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("the stream outlived Close: %v", err)
	}
}

// failingListener fails its first accepts as a process out of file
// descriptors does.
type failingListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptRetries: accept errors (EMFILE) do not stop the relay for
// good: once they pass, it answers again.
func TestAcceptRetries(t *testing.T) {
	var fl *failingListener
	f := startRelayWith(t, func(r *Relay) {
		fl = &failingListener{Listener: r.tlsLn}
		fl.fails.Store(5)
		r.tlsLn = fl
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := f.client.DialDevTools(ctx)
	if err != nil {
		t.Fatalf("after accept errors: %v", err)
	}
	defer c.Close()
	if got := roundTrip(t, c, "ping"); got != "devtools: ping" {
		t.Fatalf("got %q", got)
	}
	if n := fl.fails.Load(); n >= 0 {
		t.Fatalf("%d accept errors left: the test did not make any", n+1)
	}
}

// TestPreAuthLimit: connections that never finish their handshake hold at
// most maxPreAuth places; the owner's connection waits for one, and gets
// it once one is let go.
func TestPreAuthLimit(t *testing.T) {
	f := startRelay(t)
	var idle []net.Conn
	for range maxPreAuth {
		c, err := net.Dial("tcp", f.client.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	err := f.client.SetEgress(ctx, "10.0.0.1:3129")
	cancel()
	if err == nil {
		t.Fatalf("the relay took a connection beyond %d in their handshake", maxPreAuth)
	}
	idle[0].Close()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.client.SetEgress(ctx, "10.0.0.1:3129"); err != nil {
		t.Fatalf("once a place is free: %v", err)
	}
	// Authenticated streams hold no place.
	for range maxPreAuth + 1 {
		c, err := f.client.DialDevTools(ctx)
		if err != nil {
			t.Fatalf("devtools streams: %v", err)
		}
		defer c.Close()
	}
}

// TestReadLine: a line of maxLine bytes with its "\n" is read, a longer
// one refused without reading past maxLine bytes.
func TestReadLine(t *testing.T) {
	for _, tc := range []struct {
		n  int // bytes before the "\n"
		ok bool
	}{{maxLine - 1, true}, {maxLine, false}} {
		srv, cl := net.Pipe()
		go cl.Write([]byte(strings.Repeat("a", tc.n) + "\n"))
		line, err := readLine(srv)
		if tc.ok && (err != nil || len(line) != tc.n) {
			t.Errorf("%d bytes: %d, %v", tc.n, len(line), err)
		}
		if !tc.ok && err == nil {
			t.Errorf("%d bytes and a newline: read, want too long", tc.n)
		}
		if !tc.ok && err != nil {
			// The newline is still there: nothing past maxLine was read.
			b := make([]byte, 1)
			srv.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := srv.Read(b); err != nil || b[0] != '\n' {
				t.Errorf("%d bytes: read past maxLine (%q, %v)", tc.n, b, err)
			}
		}
		srv.Close()
		cl.Close()
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"DEVTOOLS abc", "EGRESS abc 10.0.0.1:3128", "EGRESS abc [::1]:1", "X", "", "EGRESS a :1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, token, arg, err := parseCommand(line)
		if err != nil {
			return
		}
		if token == "" || strings.Contains(token, " ") {
			t.Fatalf("token %q", token)
		}
		switch cmd {
		case "DEVTOOLS":
			if arg != "" {
				t.Fatalf("arg %q", arg)
			}
		case "EGRESS":
			if h, p, err := net.SplitHostPort(arg); err != nil || h == "" || p == "" {
				t.Fatalf("egress %q", arg)
			}
		default:
			t.Fatalf("command %q", cmd)
		}
	})
}
