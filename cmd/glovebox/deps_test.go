package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPackageDeps keeps the data flow one way, as Tailscale's deptest does:
// isolate, render and stream import no other Glovebox package but their own
// sub-packages (they hand each other plain values), isolate/netns imports
// none, proxy imports no cmd, and only cmd imports viper. It is the one test
// of this rule for every package.
func TestPackageDeps(t *testing.T) {
	const mod = "github.com/glovebox/glovebox/"
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	for _, pkg := range []string{"isolate", "isolate/netns", "render", "stream", "proxy"} {
		for _, d := range deps(pkg) {
			if strings.Contains(d, "spf13/viper") {
				t.Errorf("%s imports viper: only cmd may", pkg)
			}
			if !strings.HasPrefix(d, mod) || d == mod+pkg || strings.HasPrefix(d, mod+pkg+"/") {
				continue
			}
			if pkg != "proxy" || strings.HasPrefix(d, mod+"cmd") {
				t.Errorf("%s imports %s", pkg, d)
			}
		}
	}
}
