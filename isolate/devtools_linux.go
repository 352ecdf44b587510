//go:build linux

package isolate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// devtoolsForwarder makes a container's DevTools reachable by Glovebox
// only. Chromium 156 ignores --remote-debugging-address, so DevTools listens
// on the container's own 127.0.0.1, in its network namespace: the forwarder
// listens on a unix socket that only Glovebox's user can open (mode 0600, in
// the container's 0700 directory) and dials each connection from a thread
// switched into that namespace. DevTools has no authentication of its own,
// so it is on no TCP port of the host, where any local user (or a proxy
// user, through an allowed request to loopback) could drive the browser.
// Nothing listens on the container's veth.
type devtoolsForwarder struct {
	ln     net.Listener
	netns  int // fd of the container's network namespace
	log    *slog.Logger
	ctx    context.Context // ends with Close: cuts dials short
	cancel context.CancelFunc

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	once   sync.Once
}

// newDevtoolsForwarder opens the network namespace at netnsPath (held open
// for the forwarder's life, so it stays the same namespace however the
// container's processes come and go) and listens on the unix socket at
// socket, whose directory must be Glovebox's own (0700).
func newDevtoolsForwarder(ctx context.Context, netnsPath, socket string, log *slog.Logger) (_ *devtoolsForwarder, retErr error) {
	fd, err := unix.Open(netnsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open network namespace: %w", err)
	}
	defer func() {
		if retErr != nil {
			unix.Close(fd)
		}
	}()
	if st, err := os.Stat(filepath.Dir(socket)); err != nil || st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("listen for DevTools: %s must be a directory only its owner can open (%v)", filepath.Dir(socket), err)
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("listen for DevTools: %w", err)
	}
	// The directory already shuts everyone else out; the socket's own
	// mode says so again, whatever the umask was.
	if err := os.Chmod(socket, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen for DevTools: %w", err)
	}
	f := &devtoolsForwarder{ln: ln, netns: fd, log: log, conns: make(map[net.Conn]struct{})}
	f.ctx, f.cancel = context.WithCancel(ctx)
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

// Socket returns the path of the forwarder's unix socket.
func (f *devtoolsForwarder) Socket() string { return f.ln.Addr().String() }

func (f *devtoolsForwarder) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.wg.Add(1)
		go f.forward(c)
	}
}

// track adds c to the open connections, unless the forwarder is closed.
func (f *devtoolsForwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *devtoolsForwarder) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

// forward joins one host connection to DevTools in the container.
func (f *devtoolsForwarder) forward(c net.Conn) {
	defer f.wg.Done()
	defer f.untrack(c)
	ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	back, err := dialInNetns(ctx, f.netns, net.JoinHostPort("127.0.0.1", strconv.Itoa(devtoolsPort)))
	cancel()
	if err != nil {
		// Refused until Chromium listens: the start polls through here.
		return
	}
	if !f.track(back) {
		back.Close()
		return
	}
	defer f.untrack(back)
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(back, c)
		back.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(c, back)
	c.(*net.UnixConn).CloseWrite()
	<-done
}

// Close stops listening, cuts every connection and releases the namespace.
func (f *devtoolsForwarder) Close() error {
	f.once.Do(func() {
		f.mu.Lock()
		f.closed = true
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.ln.Close()
		f.cancel()
		f.wg.Wait()
		unix.Close(f.netns)
	})
	return nil
}

// dialInNetns connects to addr from inside the network namespace netns. The
// socket is made on a thread switched into the namespace; the thread is
// switched back before Go may use it for anything else, or, if that fails,
// left locked so that Go ends it with its goroutine.
func dialInNetns(ctx context.Context, netns int, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("open own network namespace: %w", err)}
			return
		}
		defer unix.Close(self)
		if err := unix.Setns(netns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("enter the container's network namespace: %w", err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if rerr := unix.Setns(self, unix.CLONE_NEWNET); rerr != nil {
			// Stay locked: the thread dies with this goroutine.
			ch <- result{c, errors.Join(err, fmt.Errorf("leave the container's network namespace: %w", rerr))}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{c, err}
	}()
	r := <-ch
	if r.err != nil && r.c != nil {
		r.c.Close()
		r.c = nil
	}
	return r.c, r.err
}
