// Package httpx holds the HTTP plumbing both of Glovebox's proxies use
// (the users' front proxy and the isolated browsers' egress proxy):
// hop-by-hop header removal, a status- and byte-counting ResponseWriter,
// canned goproxy responses, goproxy's log adapter. It imports no other
// Glovebox package.
package httpx

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
)

// hopByHop are the headers that concern one connection only (RFC 9110
// 7.6.1, RFC 9112), besides those the Connection header lists.
// Transfer-Encoding is net/http's: it never appears in a Header.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade",
	"Proxy-Authenticate", "Proxy-Authorization"}

// RemoveHopByHop deletes the hop-by-hop headers of h. A WebSocket handshake
// (websocket true) keeps "Connection: Upgrade" and its Upgrade header: the
// upgrade is what is being forwarded.
func RemoveHopByHop(h http.Header, websocket bool) {
	upgrade := h.Values("Upgrade")
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
	if websocket {
		h.Set("Connection", "Upgrade")
		h["Upgrade"] = upgrade
	}
}

// IsWebSocket reports whether h asks for (or agrees to) a WebSocket upgrade.
func IsWebSocket(h http.Header) bool {
	return HeaderHasToken(h, "Connection", "upgrade") && HeaderHasToken(h, "Upgrade", "websocket")
}

// HeaderHasToken reports whether a field name of h lists token
// (case-insensitive), as Connection and Upgrade do.
func HeaderHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(textproto.TrimString(t), token) {
				return true
			}
		}
	}
	return false
}

// Response is a canned response to r for goproxy's handlers to return.
func Response(r *http.Request, status int, contentType string, body []byte) *http.Response {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", contentType)
	rec.Header().Set("Cache-Control", "no-store")
	rec.Header().Set("X-Content-Type-Options", "nosniff")
	rec.WriteHeader(status)
	rec.Write(body)
	resp := rec.Result()
	resp.Request = r
	return resp
}

// HijackWrapper wraps a hijacked connection.
type HijackWrapper interface {
	WrapHijacked(net.Conn) net.Conn
}

// CountingWriter records the status and body bytes written to the client.
type CountingWriter struct {
	http.ResponseWriter
	// OnHijack, when set, wraps the connection a handler hijacks.
	OnHijack HijackWrapper
	// Status is the status written, 0 before any; N counts body bytes.
	Status int
	N      int64
}

func (c *CountingWriter) WriteHeader(code int) {
	if c.Status == 0 {
		c.Status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *CountingWriter) Write(b []byte) (int, error) {
	if c.Status == 0 {
		c.Status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.N += int64(n)
	return n, err
}

// ReadFrom lets io.Copy of a response body (goproxy's) go through the
// server's own ReadFrom, with its pooled buffer, rather than a new 32 KiB
// buffer for every response: per request the largest allocation, and so
// most of the garbage, of a proxied response.
func (c *CountingWriter) ReadFrom(r io.Reader) (int64, error) {
	if c.Status == 0 {
		c.Status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{c.ResponseWriter}, r)
	}
	c.N += n
	return n, err
}

func (c *CountingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (c *CountingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := c.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	conn, rw, err := h.Hijack()
	if err == nil && c.OnHijack != nil {
		conn = c.OnHijack.WrapHijacked(conn)
	}
	return conn, rw, err
}

// ClientIP is the address of the connection the request came on.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// GoproxyLogger sends goproxy's printf logging to slog at debug level. Its
// messages print request URLs; the proxy's logger redacts them.
type GoproxyLogger struct{ L *slog.Logger }

func (g GoproxyLogger) Printf(format string, v ...any) {
	g.L.Debug(fmt.Sprintf(format, v...), "from", "goproxy")
}

// CloseWrite half-closes c if it can, so the peer sees the end of what was
// relayed while the other direction goes on.
func CloseWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
