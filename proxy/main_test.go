package proxy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestMain keeps the interception CA that every New makes out of
// /var/lib: tests that start a Server with DefaultConfig share one CA in
// a temporary directory, removed at the end.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "glovebox-proxy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defaultTLSDir = filepath.Join(dir, "tls")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
