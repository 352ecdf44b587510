package isolate

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the package apart from the rest of Glovebox: isolate is used
// by proxy and exchanges plain values with the other packages, so it imports
// none of them (as Tailscale's deptest does).
func TestDeps(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool:", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const self = "github.com/glovebox/glovebox/isolate"
	for dep := range strings.FieldsSeq(string(out)) {
		if strings.HasPrefix(dep, "github.com/glovebox/glovebox") && dep != self {
			t.Errorf("%s imports %s", self, dep)
		}
	}
}
