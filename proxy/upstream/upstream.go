// Package upstream is how allowed traffic leaves Glovebox: the parent
// proxy (and its credentials) that both of its proxies forward through,
// the destinations that go direct instead, and the CONNECT through a
// parent. It imports no Glovebox package but proxy/internal ones.
package upstream

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/glovebox/glovebox/proxy/internal/httpx"
	"github.com/glovebox/glovebox/proxy/internal/netcheck"
)

// Config says how allowed traffic leaves Glovebox: direct, or
// through a parent proxy.
type Config struct {
	// Proxy is the parent proxy that allowed requests and CONNECT tunnels go
	// through, http://[user:pass@]host:port; empty sends them direct. The
	// user and password become the Basic Proxy-Authorization Glovebox
	// sends the parent (percent-encode ':' and '@' in them). The isolated
	// browsers' egress proxy uses it too unless egress.upstream says otherwise.
	Proxy string `mapstructure:"proxy"`
	// Direct lists destinations that bypass the parent and go direct: a
	// name matches itself and every name below it ("corp.example" matches
	// wiki.corp.example), an IP address matches itself and a CIDR prefix
	// (10.0.0.0/8) the addresses in it. Names are never resolved to match
	// a prefix: list both if a site is reached by name and by address.
	Direct []string `mapstructure:"direct"`
	// IdleTimeout closes a kept-alive connection to a site (or to the
	// parent) that has been idle this long.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// AllowLocal lists the host or host:port destinations on Glovebox's own
	// host that users may reach through it anyway, written as in the URL
	// ("127.0.0.1:8080", "intranet.local"; a name without a port allows
	// every port), or CIDR prefixes of addresses ("127.0.0.0/8"). Everything else that is or resolves to loopback, an
	// address of this host, the isolated browsers' network, link-local or a
	// cloud metadata service is refused (403) whatever policy says, as
	// Squid's "http_access deny to_localhost" does. Behind a parent, names
	// Glovebox resolves are checked and tunnels asked for the checked address;
	// one only the parent resolves goes by name.
	AllowLocal []string `mapstructure:"allow_local"`
}

// DefaultConfig returns the defaults documented in config.yaml.
func DefaultConfig() Config {
	return Config{IdleTimeout: 90 * time.Second}
}

// Validate reports every bad value, each naming its key. It has no side
// effects.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := Parse(c.Proxy); err != nil {
		errs = append(errs, fmt.Errorf("upstream.proxy: %w", err))
	}
	for i, d := range c.Direct {
		if _, err := ParseDirect(d); err != nil {
			errs = append(errs, fmt.Errorf("upstream.direct[%d]: %w", i, err))
		}
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("upstream.idle_timeout: must be positive"))
	}
	for i, a := range c.AllowLocal {
		if _, err := netip.ParsePrefix(a); err == nil {
			continue
		}
		if _, err := netcheck.ParseAllow(a); err != nil {
			errs = append(errs, fmt.Errorf("upstream.allow_local[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// directMatch is one upstream.direct entry: a domain, or a prefix of addresses.
type directMatch struct {
	domain string
	prefix netip.Prefix
}

// parseDirect reads a name, an IP address or a CIDR prefix.
func ParseDirect(s string) (directMatch, error) {
	bad := fmt.Errorf("%q: want a domain name, an IP address or a CIDR prefix", s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return directMatch{prefix: p.Masked()}, nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		a = a.Unmap()
		return directMatch{prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
	name := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(s, "*"), "."), "."))
	if !netcheck.ValidHostname(name) {
		return directMatch{}, bad
	}
	return directMatch{domain: name}, nil
}

// upstreamRoute picks, per destination host, the parent proxy or direct.
type Route struct {
	Parent *url.URL // nil: everything direct
	Auth   string   // Proxy-Authorization for the parent, or ""
	direct []directMatch
}

func NewRoute(proxyURL string, direct []string) (*Route, error) {
	parent, auth, err := Parse(proxyURL)
	if err != nil {
		return nil, err
	}
	u := &Route{Parent: parent, Auth: auth}
	for _, d := range direct {
		m, err := ParseDirect(d)
		if err != nil {
			return nil, err
		}
		u.direct = append(u.direct, m)
	}
	return u, nil
}

// parentFor returns the parent proxy for host (a name or an address, no
// port), or nil when host goes direct.
func (u *Route) ParentFor(host string) *url.URL {
	if u == nil || u.Parent == nil {
		return nil
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	addr, addrErr := netip.ParseAddr(host)
	for _, m := range u.direct {
		switch {
		case m.domain != "":
			if host == m.domain || strings.HasSuffix(host, "."+m.domain) {
				return nil
			}
		case addrErr == nil && m.prefix.Contains(addr.Unmap()):
			return nil
		}
	}
	return u.Parent
}

// dialFunc is how a connection is made: a net.Dialer's DialContext or a test's.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// dialParent opens a tunnel to target (host:port) through the parent proxy
// with CONNECT. ctx bounds all of it, the dial and the parent's answer:
// goproxy's own CONNECT to a parent waits for that answer forever.
func DialParent(ctx context.Context, dial DialFunc, parent *url.URL, auth, target string, hdr http.Header) (_ net.Conn, retErr error) {
	c, err := dial(ctx, "tcp", parent.Host)
	if err != nil {
		return nil, fmt.Errorf("dial parent proxy %s: %w", parent.Host, err)
	}
	defer func() {
		if retErr != nil {
			c.Close()
		}
	}()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl) // the whole CONNECT exchange, not only the dial
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: hdr.Clone()}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if auth != "" {
		req.Header.Set("Proxy-Authorization", auth)
	}
	if err := req.Write(c); err != nil {
		return nil, fmt.Errorf("parent proxy %s: CONNECT %s: %w", parent.Host, target, err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("parent proxy %s: CONNECT %s: %w", parent.Host, target, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, &ParentRefusedError{Parent: parent.Host, Target: target, Status: resp.Status}
	}
	if !stop() {
		return nil, fmt.Errorf("parent proxy %s: CONNECT %s: %w", parent.Host, target, ctx.Err())
	}
	c.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: c, r: br}, nil
	}
	return c, nil
}

// ParentRefusedError is a parent proxy's answer other than 200 to a CONNECT.
type ParentRefusedError struct {
	Parent, Target, Status string
}

func (e *ParentRefusedError) Error() string {
	return fmt.Sprintf("parent proxy %s refused CONNECT %s: %s", e.Parent, e.Target, e.Status)
}

// CloseRead lets goproxy half-close a tunnel through a parent whose first
// bytes were buffered, as it does a plain TCP connection.
func (b *bufferedConn) CloseRead() error {
	if cr, ok := b.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return nil
}

// bufferedConn is a connection whose first bytes were read into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *bufferedConn) CloseWrite() error { httpx.CloseWrite(b.Conn); return nil }

// parseUpstream checks an upstream proxy URL and returns it with the
// Proxy-Authorization its user info makes; "" is no upstream.
func Parse(s string) (*url.URL, string, error) {
	if s == "" {
		return nil, "", nil
	}
	u, err := url.Parse(s)
	bad := fmt.Errorf("%q: want http://[user:pass@]host:port", RedactURL(s))
	if err != nil || u.Scheme != "http" || u.Hostname() == "" || u.Port() == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, "", bad
	}
	if n, err := strconv.ParseUint(u.Port(), 10, 16); err != nil || n == 0 {
		return nil, "", bad
	}
	auth := ""
	if u.User != nil {
		pass, _ := u.User.Password()
		auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass))
	}
	return &url.URL{Scheme: "http", User: u.User, Host: u.Host}, auth, nil
}

// redactURL hides the password of a URL for error messages.
func RedactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparseable URL)"
}
