package main

import (
	"os/exec"
	"strings"
	"testing"
)

// depRules says, for each package of the module (by the longest prefix of
// its import path below the module), which of the module's packages it may
// import, its tests included. Data flows one way, as DESIGN.md says and as
// Tailscale's deptest keeps it: isolate, render and stream import no other
// Glovebox package (they hand each other plain values); proxy's rooms
// import only the rooms below them; only cmd wires everything. A package no
// rule covers fails the test, so a new one cannot slip past it.
var depRules = []struct {
	pkg   string   // the package, and its sub-packages unless a longer rule names them
	allow []string // prefixes it may import besides itself and its sub-packages
}{
	{"cmd", []string{""}}, // the wiring: anything
	{"internal/testenv", nil},
	{"internal/icaptest", nil},                                     // a real c-icap for the tests of scanning
	{"internal/syslogtest", nil},                                   // a real rsyslog for the tests of the audit sinks
	{"internal/kubetest", []string{"internal/testenv", "isolate"}}, // a real Kubernetes for the tests of the kubernetes runtime; its scale benchmark makes the runtime's own pods
	{"isolate", []string{"internal/testenv", "internal/kubetest"}},
	{"isolate/netns", []string{"internal/testenv", "isolate/internal/"}}, // not isolate itself
	{"isolate/internal", []string{"internal/testenv"}},
	{"render", []string{"internal/testenv"}},
	{"stream", []string{"internal/testenv"}},
	{"stream/record", []string{"stream/internal/", "internal/testenv"}}, // not stream: its tests record a real peer
	{"proxy/policy", nil},
	{"proxy/tlsca", nil},
	{"proxy/pac", nil},
	{"proxy/auth", []string{"proxy/internal/"}},
	{"proxy/audit", []string{"proxy/policy", "internal/syslogtest", "internal/testenv"}}, // events carry decisions
	{"proxy/internal", []string{"proxy/policy"}},                                         // addresses spelt as policy spells them
	{"proxy/upstream", []string{"proxy/internal/"}},
	{"proxy/egress", []string{"proxy/policy", "proxy/audit", "proxy/upstream", "proxy/internal/"}},
	{"proxy/scan", []string{"internal/icaptest", "internal/testenv"}}, // its tests only
	{"proxy/tab", []string{"isolate", "render", "stream", "proxy/audit", "proxy/policy", "proxy/scan", "internal/testenv"}}, // policy, scan: what may cross
	{"proxy/console", []string{"proxy/audit", "proxy/auth", "proxy/tab", "proxy/internal/"}},                                // the operators' console: tabs, events, sign-in
	{"proxy", []string{"isolate", "render", "stream", "proxy/", "internal/testenv"}},
}

// TestPackageDeps checks every package of go list ./..., with the imports
// of its tests, against depRules; and that only cmd imports viper.
func TestPackageDeps(t *testing.T) {
	const mod = "github.com/glovebox/glovebox/"
	out, err := exec.Command("go", "list", "-f",
		`{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`,
		mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], mod)
		seen++
		rule := -1
		for i, r := range depRules {
			if (pkg == r.pkg || strings.HasPrefix(pkg, r.pkg+"/")) && (rule < 0 || len(r.pkg) > len(depRules[rule].pkg)) {
				rule = i
			}
		}
		if rule < 0 {
			t.Errorf("%s: no dependency rule covers it: add one to depRules", pkg)
			continue
		}
		r := depRules[rule]
		for _, imp := range f[1:] {
			if strings.Contains(imp, "spf13/viper") && r.pkg != "cmd" {
				t.Errorf("%s imports viper: only cmd may", pkg)
			}
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			dep := strings.TrimPrefix(imp, mod)
			if dep == pkg || dep == r.pkg || strings.HasPrefix(dep, r.pkg+"/") {
				continue // itself, its own rule's package and sub-packages
			}
			if !allowed(dep, r.allow) {
				t.Errorf("%s imports %s, which its rule (%s) does not allow", pkg, dep, r.pkg)
			}
		}
	}
	if seen < 10 {
		t.Fatalf("go list named only %d packages: %s", seen, out)
	}
}

// allowed reports whether dep is one of the prefixes: a package and its
// sub-packages, or with a trailing slash only what is below it; "" is
// everything.
func allowed(dep string, prefixes []string) bool {
	for _, a := range prefixes {
		switch {
		case a == "":
			return true
		case strings.HasSuffix(a, "/"):
			if strings.HasPrefix(dep, a) {
				return true
			}
		case dep == a || strings.HasPrefix(dep, a+"/"):
			return true
		}
	}
	return false
}

// TestDepRulesCatch: the rules are not vacuous: the imports the design
// forbids are refused.
func TestDepRulesCatch(t *testing.T) {
	for _, tc := range []struct {
		dep   string
		allow []string
		want  bool
	}{
		{"proxy", []string{"internal/testenv"}, false},   // stream importing proxy
		{"render", []string{"isolate", "stream"}, false}, // tab without render
		{"isolate/netns", []string{"isolate"}, true},     // a sub-package
		{"isolateother", []string{"isolate"}, false},     // not a sub-package
		{"proxy/internal/httpx", []string{"proxy/internal/"}, true},
		{"proxy/internalx", []string{"proxy/internal/"}, false},
		{"cmd/glovebox", []string{"isolate", "render", "stream", "proxy/"}, false},
	} {
		if got := allowed(tc.dep, tc.allow); got != tc.want {
			t.Errorf("allowed(%q, %q) = %v, want %v", tc.dep, tc.allow, got, tc.want)
		}
	}
}
