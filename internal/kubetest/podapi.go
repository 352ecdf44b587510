package kubetest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
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
	ln, err := net.Listen("tcp", net.JoinHostPort(NodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, add bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if add && conns == nil {
			return false
		}
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
		return true
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", u.Host)
			if err != nil {
				c.Close()
				continue
			}
			if !track(c, true) || !track(up, true) {
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
				track(dst, false)
				track(src, false)
			}
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	// Stopped before the node goes (cleanups run last-in first-out).
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return NodeIP, port
}
