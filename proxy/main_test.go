package proxy

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/glovebox/glovebox/proxy/tlsca"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

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
	tlsca.DefaultDir = filepath.Join(dir, "tls")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
