// Package testlock serialises the tests that use the host's container
// network, across the packages of one go test run (isolate's containerd
// tests and isolate/netns's own run side by side unless -p 1): there is one
// nftables table and one set of veths named gbh* per host, and netns.New
// takes them over whole, removing whatever it finds.
package testlock

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Network blocks until no other test process holds the host's network, and
// holds it until tb and its cleanups, registered after this call, are done.
func Network(tb testing.TB) {
	tb.Helper()
	name := filepath.Join(os.TempDir(), "glovebox-network-test.lock")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		tb.Fatalf("network test lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		tb.Fatalf("network test lock %s: %v", name, err)
	}
	// Closing the file releases the lock; cleanups run last-registered
	// first, so this one runs after the test's own.
	tb.Cleanup(func() { f.Close() })
}
