// Package syslogtest runs a real syslog server for tests: Debian's rsyslog,
// with its own configuration, listening on loopback over UDP, TCP (RFC 6587
// octet counting or LF framing) and TLS (RFC 5425, rsyslog-gnutls, with a
// CA and server certificate the test makes, and optionally a client
// certificate it requires). What it receives on each is written, one
// message per line, to a file of its own that the test reads.
package syslogtest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const modules = "/usr/lib/x86_64-linux-gnu/rsyslog"

// Missing says what this machine lacks to run the server, or nil: the
// caller hands it to testenv.Missing (a skip here, a failure in CI).
func Missing() error {
	for _, p := range []string{"/usr/sbin/rsyslogd", modules + "/imudp.so", modules + "/imptcp.so", modules + "/imtcp.so", modules + "/lmnsd_gtls.so"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("needs rsyslog and rsyslog-gnutls (make test installs them): %w", err)
		}
	}
	return nil
}

// Server is an rsyslogd the test started.
type Server struct {
	// UDP, TCP and TLS are its addresses (127.0.0.1:port).
	UDP, TCP, TLS string
	// CAFile is the PEM CA that signed the server's certificate (for
	// 127.0.0.1), and ClientCert, ClientKey a client certificate it
	// signed too.
	CAFile, ClientCert, ClientKey string

	dir  string
	t    testing.TB
	cmd  *exec.Cmd
	done chan error
}

// Line is one message rsyslog received, as its template wrote it.
type Line struct {
	Facility, Severity, AppName, ProcID, MsgID, Hostname string
	// Msg is the message (after the structured data).
	Msg string
}

// Options of Start.
type Options struct {
	// RequireClientCert makes the TLS listener accept only clients with a
	// certificate signed by the CA (x509/certvalid).
	RequireClientCert bool
}

// Start starts rsyslogd on free loopback ports, waits until each listener
// answers, and stops it when the test ends. Check Missing first.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if err := Missing(); err != nil {
		t.Fatal(err)
	}
	s := &Server{dir: t.TempDir(), t: t}
	s.UDP = "127.0.0.1:" + freePort(t, "udp")
	s.TCP = "127.0.0.1:" + freePort(t, "tcp")
	s.TLS = "127.0.0.1:" + freePort(t, "tcp")
	s.makeCerts(t)
	auth := "anon"
	if opts.RequireClientCert {
		auth = "x509/certvalid"
	}
	// US (0x1f) separates the fields: none of them contains it.
	conf := fmt.Sprintf(`
global(workDirectory=%[1]q maxMessageSize="64k"
       defaultNetstreamDriverCAFile=%[2]q
       defaultNetstreamDriverCertFile=%[3]q
       defaultNetstreamDriverKeyFile=%[4]q)
module(load=%[5]q)
module(load=%[6]q)
module(load=%[7]q streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode=%[8]q)
template(name="fields" type="string" string="%%syslogfacility-text%%%[15]s%%syslogseverity-text%%%[15]s%%app-name%%%[15]s%%procid%%%[15]s%%msgid%%%[15]s%%hostname%%%[15]s%%msg%%\n")
ruleset(name="udp") { action(type="omfile" file=%[9]q template="fields") }
ruleset(name="tcp") { action(type="omfile" file=%[10]q template="fields") }
ruleset(name="tls") { action(type="omfile" file=%[11]q template="fields") }
input(type="imudp" address="127.0.0.1" port=%[12]q ruleset="udp")
input(type="imptcp" address="127.0.0.1" port=%[13]q ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port=%[14]q ruleset="tls")
`, s.dir, s.CAFile, s.path("server.pem"), s.path("server.key"),
		modules+"/imudp.so", modules+"/imptcp.so", modules+"/imtcp.so", auth,
		s.path("udp.log"), s.path("tcp.log"), s.path("tls.log"),
		port(s.UDP), port(s.TCP), port(s.TLS), "\x1f")
	if err := os.WriteFile(s.path("rsyslog.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("/usr/sbin/rsyslogd", "-N1", "-f", s.path("rsyslog.conf")).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1: %v\n%s", err, out)
	}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) path(name string) string { return filepath.Join(s.dir, name) }

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// freePort is a loopback port nothing listens on now.
func freePort(t testing.TB, network string) string {
	t.Helper()
	var addr string
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = c.LocalAddr().String()
		c.Close()
	} else {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = l.Addr().String()
		l.Close()
	}
	return port(addr)
}

// start runs rsyslogd in the foreground and waits for its listeners.
func (s *Server) start() {
	t := s.t
	t.Helper()
	cmd := exec.Command("/usr/sbin/rsyslogd", "-n", "-iNONE", "-f", s.path("rsyslog.conf"))
	out, err := os.OpenFile(s.path("rsyslogd.out"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	s.cmd = cmd
	s.done = make(chan error, 1)
	go func() { s.done <- cmd.Wait() }()
	// Ready when both stream listeners accept and a UDP probe is written.
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range []string{s.TCP, s.TLS} {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case err := <-s.done:
				t.Fatalf("rsyslogd exited: %v\n%s", err, s.Output())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("rsyslogd does not listen on %s: %v\n%s", a, err, s.Output())
			}
		}
	}
	probe := fmt.Sprintf("syslogtest-probe-%d", time.Now().UnixNano())
	c, err := net.Dial("udp", s.UDP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for !strings.Contains(s.read("udp.log"), probe) {
		fmt.Fprintf(c, "<14>1 - - probe - - - %s", probe)
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd writes nothing received on %s\n%s", s.UDP, s.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends rsyslogd (it flushes its files first). Stop twice is fine.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart starts rsyslogd again on the same ports after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Output is what rsyslogd said on stdout and stderr, for a failing test.
func (s *Server) Output() string { return s.read("rsyslogd.out") }

func (s *Server) read(name string) string {
	b, _ := os.ReadFile(s.path(name))
	return string(b)
}

// Lines are the messages received so far on network ("udp", "tcp" or
// "tls"), without the server's own probes.
func (s *Server) Lines(network string) []Line {
	var lines []Line
	sc := bufio.NewScanner(strings.NewReader(s.read(network + ".log")))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\x1f", 7)
		if len(f) != 7 || f[2] == "probe" {
			continue
		}
		lines = append(lines, Line{Facility: f[0], Severity: f[1], AppName: f[2], ProcID: f[3], MsgID: f[4], Hostname: f[5],
			Msg: strings.TrimPrefix(f[6], " ")})
	}
	return lines
}

// WaitLines waits until network has at least n messages and returns them
// all, failing the test after timeout.
func (s *Server) WaitLines(network string, n int, timeout time.Duration) []Line {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		lines := s.Lines(network)
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("rsyslog received %d messages on %s, want %d\n%s", len(lines), network, n, s.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// makeCerts writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, each with its key, as PEM files.
func (s *Server) makeCerts(t testing.TB) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "syslogtest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	s.CAFile = s.path("ca.pem")
	writePEM(t, s.CAFile, "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage, ip bool) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		c := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: []string{name}}
		if ip {
			c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, c, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		writePEM(t, s.path(name+".pem"), "CERTIFICATE", der)
		writePEM(t, s.path(name+".key"), "EC PRIVATE KEY", kder)
	}
	leaf("server", 2, x509.ExtKeyUsageServerAuth, true)
	leaf("client", 3, x509.ExtKeyUsageClientAuth, false)
	s.ClientCert, s.ClientKey = s.path("client.pem"), s.path("client.key")
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
