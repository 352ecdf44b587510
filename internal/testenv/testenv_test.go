package testenv

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// recorder is a testing.TB that records a Skip or a Fatalf instead of ending
// the test; any other method of the embedded nil TB panics, so a call the
// helper should not make shows.
type recorder struct {
	testing.TB
	skipped, failed []string
}

func (r *recorder) Helper() {}

func (r *recorder) Skip(args ...any) { r.skipped = append(r.skipped, fmt.Sprint(args...)) }

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = append(r.failed, fmt.Sprintf(format, args...))
}

func TestDecide(t *testing.T) {
	const reason = "needs curl (make test installs it)"
	for _, tt := range []struct {
		name    string
		require string
		short   bool
		skip    bool
		says    []string // in the skip's or the failure's message
	}{
		{"unset skips", "", false, true, []string{reason}},
		{"unset with -short skips", "", true, true, []string{reason}},
		{"all fails", "all", false, false, []string{reason, "GLOVEBOX_REQUIRE=all"}},
		{"all with -short fails", "all", true, false, []string{reason, "-short"}},
		{"another value fails", "yes", false, false, []string{reason, `GLOVEBOX_REQUIRE="yes"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{}
			decide(r, tt.require, tt.short, reason)
			got := r.failed
			if tt.skip {
				got = r.skipped
			}
			if len(r.skipped)+len(r.failed) != 1 || len(got) != 1 {
				t.Fatalf("skipped %q, failed %q; want one %s", r.skipped, r.failed, map[bool]string{true: "skip", false: "failure"}[tt.skip])
			}
			for _, s := range tt.says {
				if !strings.Contains(got[0], s) {
					t.Errorf("message %q does not say %q", got[0], s)
				}
			}
		})
	}
}

// TestOnlyTestsImport: no package's own (non-test) code imports testenv, so
// it never reaches the binary nor the dependency rule of TestPackageDeps.
func TestOnlyTestsImport(t *testing.T) {
	const self = "github.com/glovebox/glovebox/internal/testenv"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}:{{range .Imports}} {{.}}{{end}}`, "github.com/glovebox/glovebox/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 5 {
		t.Fatalf("go list listed %d packages: %q", len(lines), out)
	}
	for _, line := range lines {
		pkg, imports, _ := strings.Cut(line, ":")
		for _, imp := range strings.Fields(imports) {
			if imp == self {
				t.Errorf("%s imports %s outside its tests", pkg, self)
			}
		}
	}
}
