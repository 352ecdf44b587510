// Package podrelay is the only door of a browser pod (the Kubernetes
// runtime): a small server in the pod, beside Chromium, that its owning
// Glovebox replica reaches over TLS with the pod's token, and through which
// the browser's requests leave for that replica's egress proxy.
//
// A browser pod shares one network namespace between its containers, and
// its init container (podnet) has locked it down before either starts: the
// browser's user may talk to loopback only, the relay's user may open TCP
// connections to the egress port only, and from outside only the relay's
// TLS port answers. So:
//
//   - DevTools stays on the pod's 127.0.0.1; a replica reaches it through
//     the relay's TLS port, which pins the pod's own certificate (made for
//     this pod, kept in its Secret with the token) and checks the token
//     before a byte goes to Chromium. Nothing on the pod network can talk
//     to DevTools without both.
//   - Chromium's proxy is the relay's loopback port; each connection is
//     spliced to the egress address its owner set (until then the browser
//     reaches nothing). The replica that makes the pod sets it before its
//     start returns, warm pods included: a warm browser no tab has claimed
//     reaches that egress proxy, which refuses it as no tab's. The egress
//     proxy sees the pod's address, as with the containerd runtime's veth.
//
// The protocol on the TLS port is one line from the client, then one line
// back, then (for DevTools) raw bytes both ways:
//
//	DEVTOOLS <token>\n          -> OK\n, then the stream to 127.0.0.1:9222
//	EGRESS <token> <host:port>\n -> OK\n (the first set wins; later ones must match)
//
// Any other line, a wrong token or a line longer than maxLine gets an
// "ERR <reason>\n" and the connection is closed. At most maxPreAuth
// connections are between their accept and their token at once; more wait
// in the listen queue.
package podrelay

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"time"
)

// ServerName is the name in every pod's certificate and the one a client
// asks for: the certificate is pinned, so the name only has to match.
const ServerName = "glovebox-relay"

// maxLine bounds the first line of a connection, its "\n" included.
const maxLine = 512

// maxPreAuth bounds the TLS connections not yet past their token check.
const maxPreAuth = 16

// handshakeTimeout bounds a client's TLS handshake and first line.
const handshakeTimeout = 10 * time.Second

// Config is what the relay of one pod needs.
type Config struct {
	// Listen is the TLS address on the pod network, such as ":9443".
	Listen string
	// Proxy is the loopback address Chromium's --proxy-server names,
	// such as "127.0.0.1:3128".
	Proxy string
	// DevTools is Chromium's DevTools address in the pod, such as
	// "127.0.0.1:9222".
	DevTools string
	// Cert is the pod's TLS certificate and key.
	Cert tls.Certificate
	// Token is the secret a client must present.
	Token string
	// Log, if nil, discards.
	Log *slog.Logger
}

// Relay is a running relay.
type Relay struct {
	cfg    Config
	log    *slog.Logger
	tlsLn  net.Listener
	prxLn  net.Listener
	mu     sync.Mutex
	egress string // set once by the owner
	conns  map[net.Conn]struct{}
	closed bool
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup
	// preAuth holds a token for each TLS connection not yet past its
	// token check.
	preAuth chan struct{}
}

// Listen opens both listeners. Serve the relay with Serve.
func Listen(cfg Config) (*Relay, error) {
	if len(cfg.Token) < 16 {
		return nil, errors.New("podrelay: the token is too short (16 characters at least)")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	tcfg := &tls.Config{Certificates: []tls.Certificate{cfg.Cert}, MinVersion: tls.VersionTLS13}
	tln, err := tls.Listen("tcp", cfg.Listen, tcfg)
	if err != nil {
		return nil, fmt.Errorf("podrelay: listen %s: %w", cfg.Listen, err)
	}
	pln, err := net.Listen("tcp", cfg.Proxy)
	if err != nil {
		tln.Close()
		return nil, fmt.Errorf("podrelay: listen %s: %w", cfg.Proxy, err)
	}
	return &Relay{cfg: cfg, log: cfg.Log, tlsLn: tln, prxLn: pln, conns: map[net.Conn]struct{}{},
		done: make(chan struct{}), preAuth: make(chan struct{}, maxPreAuth)}, nil
}

// Addr is the TLS listener's address.
func (r *Relay) Addr() net.Addr { return r.tlsLn.Addr() }

// ProxyAddr is the browser's proxy listener's address.
func (r *Relay) ProxyAddr() net.Addr { return r.prxLn.Addr() }

// Serve serves until ctx ends or Close, then closes every connection.
func (r *Relay) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { r.Close() })
	defer stop()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.accept(r.prxLn, nil, func(c net.Conn, _ func()) { r.proxy(c) })
	}()
	r.accept(r.tlsLn, r.preAuth, r.control)
	r.wg.Wait()
	return nil
}

// Close stops the listeners and ends every connection.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.tlsLn.Close()
	r.prxLn.Close()
	return nil
}

// accept serves ln's connections until Close. With sem, each connection
// holds one of its tokens from before its accept until handle calls its
// release (or returns): when none is free, no more are accepted.
//
// An accept error other than the listener's closing (EMFILE, ENFILE,
// ECONNABORTED) is retried after a back-off of 5 ms doubling to 1 s, as
// net/http's Server does: the relay must not stop answering for good while
// the pod looks alive.
func (r *Relay) accept(ln net.Listener, sem chan struct{}, handle func(c net.Conn, release func())) {
	var delay time.Duration
	for {
		if sem != nil {
			select {
			case sem <- struct{}{}:
			case <-r.done:
				return
			}
		}
		release := func() {}
		if sem != nil {
			release = sync.OnceFunc(func() { <-sem })
		}
		c, err := ln.Accept()
		if err != nil {
			release()
			if errors.Is(err, net.ErrClosed) || r.isClosed() {
				return
			}
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else {
				delay = min(2*delay, time.Second)
			}
			r.log.Warn("relay: accept", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-r.done:
				return
			}
			continue
		}
		delay = 0
		if !r.track(c) {
			release()
			c.Close()
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.untrack(c)
			defer release()
			handle(c, release)
		}()
	}
}

func (r *Relay) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *Relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Relay) untrack(c net.Conn) {
	c.Close()
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

// control serves one connection on the TLS port; authed is called once its
// token is checked.
func (r *Relay) control(c net.Conn, authed func()) {
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	line, err := readLine(c)
	if err != nil {
		r.log.Debug("relay: bad first line", "remote", c.RemoteAddr().String(), "err", err)
		fmt.Fprintf(c, "ERR %s\n", err)
		return
	}
	cmd, token, arg, err := parseCommand(line)
	if err != nil {
		fmt.Fprintf(c, "ERR %s\n", err)
		return
	}
	if !r.tokenOK(token) {
		r.log.Warn("relay: refused a connection without the pod's token", "remote", c.RemoteAddr().String())
		io.WriteString(c, "ERR unauthorized\n")
		return
	}
	authed()
	switch cmd {
	case "DEVTOOLS":
		up, err := net.DialTimeout("tcp", r.cfg.DevTools, 5*time.Second)
		if err != nil {
			fmt.Fprintf(c, "ERR devtools: %v\n", err)
			return
		}
		if !r.track(up) {
			up.Close()
			return
		}
		defer r.untrack(up)
		if _, err := io.WriteString(c, "OK\n"); err != nil {
			return
		}
		c.SetDeadline(time.Time{})
		splice(c, up)
	case "EGRESS":
		r.mu.Lock()
		set := r.egress
		if set == "" {
			r.egress = arg
		}
		r.mu.Unlock()
		if set != "" && set != arg {
			io.WriteString(c, "ERR egress: already set to another address\n")
			return
		}
		r.log.Info("relay: egress set", "egress", arg)
		io.WriteString(c, "OK\n")
	}
}

// parseCommand splits a first line into its command, token and argument,
// checking each: DEVTOOLS takes none, EGRESS a host:port.
func parseCommand(line string) (cmd, token, arg string, err error) {
	fields := strings.Split(line, " ")
	if len(fields) < 2 || fields[1] == "" {
		return "", "", "", errors.New("want a command and the token")
	}
	cmd, token = fields[0], fields[1]
	switch {
	case cmd == "DEVTOOLS" && len(fields) == 2:
		return cmd, token, "", nil
	case cmd == "EGRESS" && len(fields) == 3:
		host, port, err := net.SplitHostPort(fields[2])
		if err != nil || host == "" || port == "" {
			return "", "", "", errors.New("egress: want host:port")
		}
		return cmd, token, fields[2], nil
	}
	return "", "", "", errors.New("unknown command")
}

func (r *Relay) tokenOK(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(r.cfg.Token)) == 1
}

// proxy splices one of the browser's proxy connections to the egress.
func (r *Relay) proxy(c net.Conn) {
	r.mu.Lock()
	eg := r.egress
	r.mu.Unlock()
	if eg == "" {
		return // unclaimed: the browser reaches nothing
	}
	up, err := net.DialTimeout("tcp", eg, 10*time.Second)
	if err != nil {
		r.log.Warn("relay: dial egress", "egress", eg, "err", err)
		return
	}
	if !r.track(up) {
		up.Close()
		return
	}
	defer r.untrack(up)
	splice(c, up)
}

// splice copies both ways until either side ends, then closes both.
func splice(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}

// readLine reads one "\n"-ended line of at most maxLine bytes, the "\n"
// included, byte by byte, so that nothing after it is consumed.
func readLine(c net.Conn) (string, error) {
	var b [1]byte
	var line []byte
	for range maxLine {
		if _, err := c.Read(b[:]); err != nil {
			return "", fmt.Errorf("read: %w", err)
		}
		if b[0] == '\n' {
			return string(line), nil
		}
		line = append(line, b[0])
	}
	return "", errors.New("line too long")
}

// Identity is one pod's certificate, key and token, made by the replica
// that creates the pod and kept in the pod's Secret.
type Identity struct {
	CertPEM, KeyPEM []byte
	Token           string
}

// NewIdentity makes a pod's identity: a self-signed P-256 certificate for
// ServerName, valid for validity, and a 256-bit token.
func NewIdentity(validity time.Duration) (Identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Identity{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return Identity{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: ServerName},
		DNSNames:              []string{ServerName},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // self-signed: it is its own root
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return Identity{}, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Identity{}, err
	}
	tok := make([]byte, 32)
	rand.Read(tok)
	return Identity{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		Token:   base64.RawURLEncoding.EncodeToString(tok),
	}, nil
}

// Client reaches one pod's relay.
type Client struct {
	// Addr is the relay's address, the pod's IP and TLS port.
	Addr string
	// CertPEM is the pod's certificate, the only one trusted.
	CertPEM []byte
	// Token is the pod's token.
	Token string
}

func (cl Client) dial(ctx context.Context, line string) (net.Conn, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cl.CertPEM) {
		return nil, errors.New("podrelay: the pod's certificate is not PEM")
	}
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: ServerName, MinVersion: tls.VersionTLS13}}
	c, err := d.DialContext(ctx, "tcp", cl.Addr)
	if err != nil {
		return nil, fmt.Errorf("podrelay: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(handshakeTimeout))
	}
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		c.Close()
		return nil, fmt.Errorf("podrelay: %w", err)
	}
	br := bufio.NewReaderSize(c, 64)
	reply, err := br.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("podrelay: no answer: %w", err)
	}
	if reply != "OK\n" {
		c.Close()
		return nil, fmt.Errorf("podrelay: refused: %s", strings.TrimSpace(strings.TrimPrefix(reply, "ERR ")))
	}
	if br.Buffered() > 0 {
		c.Close()
		return nil, errors.New("podrelay: bytes after the answer")
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// DialDevTools returns a connection to the pod's DevTools.
func (cl Client) DialDevTools(ctx context.Context) (net.Conn, error) {
	return cl.dial(ctx, "DEVTOOLS "+cl.Token)
}

// SetEgress tells the pod's relay where its browser's requests go.
func (cl Client) SetEgress(ctx context.Context, egress string) error {
	c, err := cl.dial(ctx, "EGRESS "+cl.Token+" "+egress)
	if err != nil {
		return err
	}
	return c.Close()
}
