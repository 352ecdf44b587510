package audit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// SinkConfig is one of audit.sinks.
type SinkConfig struct {
	// Type is stdout, stderr, file or syslog.
	Type string `mapstructure:"type"`
	// Format is json (the JSON line) or cef (ArcSight CEF).
	Format string `mapstructure:"format"`
	// Queue is how many events wait for a slow or absent destination
	// before the oldest go (0: DefaultQueue).
	Queue int `mapstructure:"queue"`

	// file: Path, rotated past MaxSizeMB (100) into at most MaxBackups
	// (10) old files, compressed unless Compress is false, removed after
	// MaxAgeDays (0: by count only).
	Path       string `mapstructure:"path"`
	MaxSizeMB  int    `mapstructure:"max_size_mb"`
	MaxBackups int    `mapstructure:"max_backups"`
	MaxAgeDays int    `mapstructure:"max_age_days"`
	Compress   *bool  `mapstructure:"compress"`

	// syslog: RFC 5424 to Address (host:port) over Network udp, tcp
	// (RFC 6587 octet counting) or tls (RFC 5425), with CAFile to trust
	// (else the system's roots), CertFile and KeyFile to present, and
	// ServerName to check (else Address's host). Facility (local0) and
	// AppName (glovebox) head each message; its MSGID is the event's name.
	Network    string `mapstructure:"network"`
	Address    string `mapstructure:"address"`
	Facility   string `mapstructure:"facility"`
	AppName    string `mapstructure:"app_name"`
	CAFile     string `mapstructure:"ca_file"`
	CertFile   string `mapstructure:"cert_file"`
	KeyFile    string `mapstructure:"key_file"`
	ServerName string `mapstructure:"server_name"`
}

// facilities are syslog's facility names and codes.
var facilities = map[string]int{"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
	"news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "local0": 16, "local1": 17, "local2": 18,
	"local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23}

// Validate reports every bad value of the sink, naming its key.
func (c SinkConfig) Validate() error {
	var errs []error
	if c.Format != "" && c.Format != FormatJSON && c.Format != FormatCEF {
		errs = append(errs, fmt.Errorf("format: %q: want json or cef", c.Format))
	}
	if c.Queue < 0 {
		errs = append(errs, fmt.Errorf("queue: must not be negative"))
	}
	switch c.Type {
	case "stdout", "stderr":
	case "file":
		if c.Path == "" {
			errs = append(errs, fmt.Errorf("path: empty: a file sink needs the file's path"))
		}
		if c.MaxSizeMB < 0 || c.MaxBackups < 0 || c.MaxAgeDays < 0 {
			errs = append(errs, fmt.Errorf("max_size_mb, max_backups, max_age_days: must not be negative"))
		}
	case "syslog":
		if !slices.Contains([]string{"udp", "tcp", "tls"}, c.Network) {
			errs = append(errs, fmt.Errorf("network: %q: want udp, tcp or tls", c.Network))
		}
		if _, _, err := net.SplitHostPort(c.Address); err != nil {
			errs = append(errs, fmt.Errorf("address: %q: want host:port", c.Address))
		}
		if _, ok := facilities[c.Facility]; c.Facility != "" && !ok {
			errs = append(errs, fmt.Errorf("facility: %q: want a syslog facility (local0 … local7, daemon, auth, …)", c.Facility))
		}
		if c.Network != "tls" && (c.CAFile != "" || c.CertFile != "" || c.KeyFile != "") {
			errs = append(errs, fmt.Errorf("ca_file, cert_file, key_file: only for network tls"))
		}
		if (c.CertFile == "") != (c.KeyFile == "") {
			errs = append(errs, fmt.Errorf("cert_file, key_file: give both or neither"))
		}
		if strings.ContainsAny(c.AppName, " \t\n") || len(c.AppName) > 48 {
			errs = append(errs, fmt.Errorf("app_name: %q: at most 48 characters, no spaces", c.AppName))
		}
	case FormatCEF, FormatJSON:
		errs = append(errs, fmt.Errorf("type: %q is a format: give the sink a type (stdout, stderr, file or syslog) and format: %s", c.Type, c.Type))
	default:
		errs = append(errs, fmt.Errorf("type: %q: want stdout, stderr, file or syslog", c.Type))
	}
	return errors.Join(errs...)
}

// name is the sink's name in metrics and logs.
func (c SinkConfig) name() string {
	switch c.Type {
	case "file":
		return "file:" + c.Path
	case "syslog":
		return "syslog:" + c.Network + "://" + c.Address
	}
	return c.Type
}

// destination opens the sink's destination (stdout and stderr given).
func (c SinkConfig) destination(stdout, stderr io.Writer) (destination, error) {
	switch c.Type {
	case "stdout":
		return &lineWriter{w: stdout}, nil
	case "stderr":
		return &lineWriter{w: stderr}, nil
	case "file":
		size, backups := c.MaxSizeMB, c.MaxBackups
		if size == 0 {
			size = 100
		}
		if backups == 0 {
			backups = 10
		}
		lj := &lumberjack.Logger{Filename: c.Path, MaxSize: size, MaxBackups: backups, MaxAge: c.MaxAgeDays,
			Compress: c.Compress == nil || *c.Compress}
		// Open now, so that a path that cannot be written fails at start.
		f, err := os.OpenFile(c.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("path: %w", err)
		}
		f.Close()
		return &fileDest{lj: lj}, nil
	case "syslog":
		return newSyslogDest(c)
	}
	return nil, fmt.Errorf("type: %q", c.Type)
}

// fileDest is a rotated file.
type fileDest struct {
	mu sync.Mutex
	lj *lumberjack.Logger
}

func (f *fileDest) Write(_ eventMeta, event []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.lj.Write(append(event, '\n'))
	return err
}

func (f *fileDest) Close() error { return f.lj.Close() }

// reopen starts a new file at the path: after logrotate moved the file
// away, or, when it did not, keeping the current one as a rotated file.
func (f *fileDest) reopen() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lj.Rotate()
}

// syslogDest sends RFC 5424 messages to a syslog server.
type syslogDest struct {
	network, addr string
	tls           *tls.Config
	facility      int
	app, host     string
	pid           string

	// ctx ends at Close: a dial in progress stops; cur is the connection
	// a write may be blocked on, which Close interrupts without waiting
	// for mu.
	ctx    context.Context
	cancel context.CancelFunc
	cur    atomic.Pointer[net.Conn]

	mu   sync.Mutex
	conn net.Conn
}

// Syslog messages are cut to at most this many bytes: over UDP a datagram
// (RFC 5426 lets receivers take 2048 and more; rsyslog's default is 8 KiB),
// over TCP and TLS what receivers usually allow.
const (
	maxUDPMessage    = 8 << 10
	maxStreamMessage = 64 << 10
)

func newSyslogDest(c SinkConfig) (*syslogDest, error) {
	d := &syslogDest{network: c.Network, addr: c.Address, facility: facilities["local0"], app: "glovebox",
		pid: strconv.Itoa(os.Getpid()), host: "-"}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if f, ok := facilities[c.Facility]; ok {
		d.facility = f
	}
	if c.AppName != "" {
		d.app = c.AppName
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		d.host = h
	}
	if c.Network == "tls" {
		host, _, _ := net.SplitHostPort(c.Address)
		cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if c.ServerName != "" {
			cfg.ServerName = c.ServerName
		}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ca_file: %s: no PEM certificate", c.CAFile)
			}
			cfg.RootCAs = pool
		}
		if c.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("cert_file, key_file: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		d.tls = cfg
	}
	return d, nil
}

// syslogTimeout bounds connecting and each write.
const syslogTimeout = 10 * time.Second

func (d *syslogDest) dial() (net.Conn, error) {
	ctx, cancel := context.WithTimeout(d.ctx, syslogTimeout)
	defer cancel()
	switch d.network {
	case "tls":
		return (&tls.Dialer{Config: d.tls}).DialContext(ctx, "tcp", d.addr)
	case "tcp":
		return (&net.Dialer{}).DialContext(ctx, "tcp", d.addr)
	}
	return (&net.Dialer{}).DialContext(ctx, "udp", d.addr)
}

// message is event as an RFC 5424 message: severity informational, the
// TIMESTAMP the event's, the MSGID its name, no structured data; cut to
// the network's limit.
func (d *syslogDest) message(ev eventMeta, event []byte) []byte {
	name := ev.name
	if name == "" || len(name) > 32 || strings.ContainsAny(name, " \t\n") {
		name = "-"
	}
	at := ev.time
	if at.IsZero() {
		at = time.Now()
	}
	head := fmt.Sprintf("<%d>1 %s %s %s %s %s - ", d.facility*8+6, at.UTC().Format("2006-01-02T15:04:05.000000Z"),
		d.host, d.app, d.pid, name)
	msg := append([]byte(head), event...)
	limit := maxStreamMessage
	if d.network == "udp" {
		limit = maxUDPMessage
	}
	if len(msg) > limit {
		msg = msg[:limit]
	}
	return msg
}

func (d *syslogDest) send(ev eventMeta, event []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil && d.network != "udp" && closedByPeer(d.conn) {
		d.conn.Close()
		d.conn = nil
	}
	if d.conn == nil {
		c, err := d.dial()
		if err != nil {
			return err
		}
		d.conn = c
		d.cur.Store(&c)
	}
	msg := d.message(ev, event)
	if d.network != "udp" {
		// RFC 6587 octet counting (RFC 5425 for TLS).
		msg = append([]byte(strconv.Itoa(len(msg))+" "), msg...)
	}
	d.conn.SetWriteDeadline(time.Now().Add(syslogTimeout))
	if _, err := d.conn.Write(msg); err != nil {
		d.conn.Close()
		d.conn = nil
		return err
	}
	return nil
}

func (d *syslogDest) Write(ev eventMeta, event []byte) error { return d.send(ev, event) }

// closedByPeer says whether the server has closed conn. A syslog server
// never writes, and what is written into a socket the peer has closed is
// lost without an error, so before each message the socket is peeked
// without blocking: nothing there means open; end of file or an error
// means gone. Under TLS the server may have sent records (session
// tickets, or a close_notify before its FIN): a read of a millisecond lets
// crypto/tls take them, and says end of file if the server closed.
func closedByPeer(conn net.Conn) bool {
	raw := conn
	t, isTLS := conn.(*tls.Conn)
	if isTLS {
		raw = t.NetConn()
	}
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var n int
	var perr error
	var b [1]byte
	if err := rc.Read(func(fd uintptr) bool {
		n, _, perr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait
	}); err != nil {
		return true
	}
	switch {
	case errors.Is(perr, syscall.EAGAIN):
		return false
	case perr != nil || n == 0:
		return true
	case !isTLS:
		return true // a syslog server has nothing to say over plain TCP
	}
	conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err = conn.Read(b[:])
	conn.SetReadDeadline(time.Time{})
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func (d *syslogDest) Close() error {
	d.cancel()
	if c := d.cur.Load(); c != nil {
		(*c).SetDeadline(time.Now()) // a write blocked on it returns
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == nil {
		return nil
	}
	err := d.conn.Close()
	d.conn = nil
	return err
}
