package proxy

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/glovebox/glovebox/proxy/internal/netcheck"
)

// notAllowed is written to a connection from outside the clients list.
const notAllowed = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 56\r\n\r\nGlovebox: your address may not use this proxy (clients)\n"

// tooManyConns is written to a connection past limits.max_conns_per_client.
const tooManyConns = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 60\r\n\r\nGlovebox: too many connections from your address; try again\n"

// clientLimitListener accepts connections from the clients list only, at
// most max at once from each client address; the others are told so and
// closed, so that the proxy is not open to the world and one client cannot
// hold every file descriptor of the proxy.
type clientLimitListener struct {
	net.Listener
	max     int
	clients []netip.Prefix

	mu    sync.Mutex
	count map[string]int
}

func newClientLimitListener(ln net.Listener, max int, clients []netip.Prefix) *clientLimitListener {
	return &clientLimitListener{Listener: ln, max: max, clients: clients, count: map[string]int{}}
}

// allowed reports whether the clients list has ip.
func (l *clientLimitListener) allowed(ip string) bool {
	a, err := netip.ParseAddr(ip)
	return err == nil && netcheck.ContainsAddr(l.clients, a)
}

func (l *clientLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := hostOf(c.RemoteAddr())
		if !l.allowed(ip) {
			go refuseConn(c, notAllowed)
			continue
		}
		l.mu.Lock()
		if l.count[ip] >= l.max {
			l.mu.Unlock()
			go refuseConn(c, tooManyConns)
			continue
		}
		l.count[ip]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, l: l, ip: ip}, nil
	}
}

func (l *clientLimitListener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count[ip]--; l.count[ip] <= 0 {
		delete(l.count, ip)
	}
}

// refuseConn tells a refused client why, without reading from it.
func refuseConn(c net.Conn, answer string) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	c.Write([]byte(answer))
	c.Close()
}

// DefaultClients are the networks a proxy serves unless clients says
// otherwise: loopback and the private ranges (RFC 1918, IPv6 ULA), as
// Squid's default localnet.
func DefaultClients() []string {
	return []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}
}

// parseClients reads the clients list: CIDR prefixes or single addresses.
func parseClients(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("clients[%d]: %q: want a CIDR prefix (10.0.0.0/8) or an address", i, s)
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("clients: empty: nobody could use the proxy (list the users' networks)")
	}
	return out, nil
}

// widerThanDefault names the first prefix of clients that reaches outside
// the default networks, or "".
func widerThanDefault(clients []netip.Prefix) string {
	def, _ := parseClients(DefaultClients())
	for _, p := range clients {
		inside := false
		for _, d := range def {
			if d.Bits() <= p.Bits() && d.Contains(p.Addr()) {
				inside = true
				break
			}
		}
		if !inside {
			return p.String()
		}
	}
	return ""
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// limitedConn gives its place back once, when closed.
type limitedConn struct {
	net.Conn
	l    *clientLimitListener
	ip   string
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() { c.l.release(c.ip) })
	return c.Conn.Close()
}

// CloseWrite and CloseRead keep the half-close of the TCP connection
// underneath, which goproxy's tunnels use.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *limitedConn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return nil
}

// splicingConn is a client's limitedConn once hijacked for a CONNECT
// tunnel. goproxy relays a tunnel with io.Copy each way; through a wrapper
// that hides the TCP connection, each io.Copy allocates a 32 KiB buffer
// and copies through user space. Handing ReadFrom and WriteTo to the TCP
// connection underneath lets the kernel splice the bytes, with no buffer.
// (The HTTP server must not see these methods on a connection it serves:
// its response ReadFrom would then write headers and body apart.)
type splicingConn struct{ *limitedConn }

func (c splicingConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c splicingConn) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := c.Conn.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{c.Conn})
}
