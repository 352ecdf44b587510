package proxy

import (
	"net"
	"sync"
	"time"
)

// tooManyConns is written to a connection past limits.max_conns_per_client.
const tooManyConns = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 60\r\n\r\nGlovebox: too many connections from your address; try again\n"

// clientLimitListener accepts at most max connections at once from each
// client address; the next ones are told so and closed, so that one client
// cannot hold every file descriptor of the proxy.
type clientLimitListener struct {
	net.Listener
	max int

	mu    sync.Mutex
	count map[string]int
}

func newClientLimitListener(ln net.Listener, max int) *clientLimitListener {
	return &clientLimitListener{Listener: ln, max: max, count: map[string]int{}}
}

func (l *clientLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := hostOf(c.RemoteAddr())
		l.mu.Lock()
		if l.count[ip] >= l.max {
			l.mu.Unlock()
			go refuseConn(c)
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

// refuseConn tells a client over its limit why, without reading from it.
func refuseConn(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	c.Write([]byte(tooManyConns))
	c.Close()
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
