package render

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/chromedp/cdproto"
	jsonv2 "github.com/chromedp/cdproto/cdp/jsonv2"
	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
)

// socketDialTimeout bounds the websocket handshake over a DevTools socket.
const socketDialTimeout = 10 * time.Second

// maxCDPMessage bounds one DevTools message read from the browser. Chrome
// sends single-frame messages of up to 100 MiB (a full-page screenshot).
const maxCDPMessage = 128 << 20

// socketAllocator is a chromedp.Allocator that attaches to a running
// browser whose DevTools is reached through a unix socket: chromedp's own
// remote allocator dials only TCP, and a TCP port would be open to every
// local user. wsURL gives the path and the Host header (localhost, which
// DevTools accepts).
type socketAllocator struct {
	socket string
	wsURL  string
	wg     sync.WaitGroup
}

// Allocate dials the socket and connects chromedp over it, as
// remote.Allocator does over TCP.
func (a *socketAllocator) Allocate(ctx context.Context, opts ...chromedp.BrowserOption) (*chromedp.Browser, error) {
	if chromedp.FromContext(ctx) == nil {
		return nil, chromedp.ErrInvalidContext
	}
	// The websocket outlives ctx until the pages are closed, as in
	// remote.Allocator: its context ends after chromedp.Cancel.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.wg.Go(func() {
		<-ctx.Done()
		chromedp.Cancel(ctx)
		cancel()
	})
	dctx, dcancel := context.WithTimeout(wctx, socketDialTimeout)
	defer dcancel()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", a.socket)
	}}
	ws, _, err := websocket.Dial(dctx, a.wsURL, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	tr.CloseIdleConnections()
	if err != nil {
		return nil, fmt.Errorf("dial DevTools socket: %w", err)
	}
	ws.SetReadLimit(maxCDPMessage)
	return chromedp.NewBrowserTransport(wctx, &socketConn{ws: ws, ctx: wctx}, opts...)
}

// Wait waits for the goroutines of Allocate.
func (a *socketAllocator) Wait() { a.wg.Wait() }

// Attaches reports that the allocator attaches to a browser that runs
// already (chromedp.Attacher): closing the context does not end it.
func (a *socketAllocator) Attaches() bool { return true }

// socketConn is a chromedp.Transport over a websocket, encoded as
// chromedp's own websocket transport does.
type socketConn struct {
	ws  *websocket.Conn
	ctx context.Context // the connection's lifetime

	// Only chromedp's reader goroutine reads.
	decoder jsonv2.Decoder
	reader  bytes.Reader

	encMu   sync.Mutex
	encoder jsonv2.Encoder
	encBuf  bytes.Buffer
}

func (c *socketConn) Read(_ context.Context, msg *cdproto.Message) error {
	typ, data, err := c.ws.Read(c.ctx)
	if err != nil {
		return err
	}
	if typ != websocket.MessageText {
		return fmt.Errorf("render: DevTools sent a %v message", typ)
	}
	c.reader.Reset(data)
	c.decoder.Reset(&c.reader, chromedp.DefaultUnmarshalOptions)
	return jsonv2.UnmarshalDecode(&c.decoder, msg, chromedp.DefaultUnmarshalOptions)
}

func (c *socketConn) Write(_ context.Context, msg *cdproto.Message) error {
	c.encMu.Lock()
	defer c.encMu.Unlock()
	c.encBuf.Reset()
	c.encoder.Reset(&c.encBuf, chromedp.DefaultMarshalOptions)
	if err := jsonv2.MarshalEncode(&c.encoder, msg, chromedp.DefaultMarshalOptions); err != nil {
		return err
	}
	// One text frame: Chrome does not take fragmented messages.
	return c.ws.Write(c.ctx, websocket.MessageText, c.encBuf.Bytes())
}

func (c *socketConn) Close() error { return c.ws.CloseNow() }
