package kubetest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// PodAPI is the API server as the node's pods reach it: a TCP forwarder on
// the node's address (the API server itself listens on loopback only),
// which the serving certificate names. A pod that talks to the API server
// in-cluster gets KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT set
// to these, as kube-proxy's Service address would be on a real cluster.
func (n *Node) PodAPI(t testing.TB) (host, port string) {
	t.Helper()
	u, err := url.Parse(n.c.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	f := Forward(t, net.JoinHostPort(NodeIP, "0"), func() string { return u.Host })
	_, port, _ = net.SplitHostPort(f.Addr)
	return NodeIP, port
}

// Forwarder splices each TCP connection to its listen address with one to
// the upstream of the moment: a stand-in for what kube-proxy does for a
// Service.
type Forwarder struct {
	// Addr is the address it listens on.
	Addr string

	mu    sync.Mutex
	conns map[net.Conn]bool // nil once stopped
}

// Forward listens on listen and forwards every connection to upstream(),
// asked per connection, until t's cleanup (which runs before those
// registered earlier, the node's included).
func Forward(t testing.TB, listen string, upstream func() string) *Forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	f := &Forwarder{Addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.DialTimeout("tcp", upstream(), 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			if !f.track(c, true) || !f.track(up, true) {
				c.Close()
				up.Close()
				continue
			}
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				io.Copy(dst, src)
				dst.Close()
				src.Close()
				f.track(dst, false)
				f.track(src, false)
			}
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.conns = nil
		f.mu.Unlock()
		wg.Wait()
	})
	return f
}

// track adds or removes c; it refuses to add once the forwarder stopped.
func (f *Forwarder) track(c net.Conn, add bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case add && f.conns == nil:
		return false
	case add:
		f.conns[c] = true
	default:
		delete(f.conns, c)
	}
	return true
}

// CutAll closes every connection it carries, as an endpoint change may.
func (f *Forwarder) CutAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}
