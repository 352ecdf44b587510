package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/glovebox/glovebox/proxy/auth"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestShippedConfigIsTheDefaults keeps config.yaml honest: it loads, it holds
// every key, and its values are the defaults.
func TestShippedConfigIsTheDefaults(t *testing.T) {
	got, err := loadConfig("../../config.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := defaultConfig()
	// An empty temp_dir means the system's temporary directory.
	got.Isolate.Process.TempDir, want.Isolate.Process.TempDir = "", ""
	// Printed, so an empty list in the file equals a nil default.
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("config.yaml differs from the defaults:\n got %+v\nwant %+v", got, want)
	}
	raw, _ := os.ReadFile("../../config.yaml")
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for key := range flatten(reflect.ValueOf(defaultConfig()), "") {
		if lineOf(doc.Content[0], key) == 0 {
			t.Errorf("config.yaml does not document %s", key)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"unknown top-level key", "listen: \":3128\"\ntabz:\n  max: 3\n", []string{`config.yaml:2: unknown key "tabz"`, `did you mean "tabs"`}},
		{"unknown nested key", "tabs:\n  max: 3\n  idle_timout: 5m\n", []string{`:3: unknown key "tabs.idle_timout"`, `"idle_timeout"`}},
		{"unknown key in a rule", "policy:\n  rules:\n    - name: a\n      hots: x\n      action: allow\n", []string{`:4: unknown key "policy.rules[0].hots"`}},
		{"bad type", "tabs:\n  max: lots\n", []string{"config.yaml:2: 'tabs.max'", "int"}},
		{"bad duration", "tabs:\n  idle_timeout: forever\n", []string{"config.yaml:2: 'tabs.idle_timeout'", "invalid duration"}},
		{"out of range", "tabs:\n  max: 0\n", []string{"config.yaml:2: tabs.max: 0"}},
		{"bad action", "policy:\n  rules:\n    - name: x\n      host: a.test\n      action: permit\n", []string{"config.yaml:3:", `policy.rules[0] (x): action "permit"`}},
		{"bad runtime", "isolate:\n  runtime: vm\n", []string{"config.yaml:2: isolate.runtime", `"vm"`}},
		{"negative recording size", "recording:\n  max_total_mb: -1\n", []string{"config.yaml:2: recording.max_total_mb: -1"}},
		{"no recording dir", "recording:\n  dir: \"\"\n", []string{"config.yaml:2: recording.dir: empty"}},
		{"not yaml", "listen: [\n", []string{"config.yaml"}},
		{"bad listen", "listen: nowhere\n", []string{"listen", "nowhere"}},
		{"console password not hashed", "admin:\n  users:\n    - name: root\n      password_hash: hunter2\n", []string{"config.yaml:4: admin.users[0].password_hash: not a bcrypt hash"}},
		{"console header without proxies", "admin:\n  header: X-Forwarded-User\n", []string{"admin.trusted_proxies: empty"}},
		{"unknown key in a sink", "audit:\n  sinks:\n    - type: syslog\n      adress: 127.0.0.1:514\n", []string{`:4: unknown key "audit.sinks[0].adress"`, `"address"`}},
		{"bad sink network", "audit:\n  sinks:\n    - type: file\n      path: /tmp/a.log\n    - type: syslog\n      network: tpc\n      address: 127.0.0.1:514\n",
			[]string{`audit.sinks[1].network: "tpc": want udp, tcp or tls`}},
		{"sink twice", "audit:\n  sinks:\n    - type: stdout\n", []string{"audit.sinks[0].type: stdout", "audit.output: none"}},
		{"cef as a sink type", "audit:\n  sinks:\n    - type: cef\n", []string{`audit.sinks[0].type: "cef" is a format`, "format: cef"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, tt.body), nil)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
		})
	}
	if _, err := loadConfig("/nonexistent/config.yaml", nil); !errors.Is(err, ErrConfig) {
		t.Errorf("missing file: %v", err)
	}
}

func TestConfigPrecedence(t *testing.T) {
	p := writeConfig(t, "listen: \"127.0.0.1:4000\"\ntabs:\n  max: 5\n  idle_timeout: 90s\npolicy:\n  rules:\n    - {name: a, domain: example.test, action: allow}\n")
	t.Setenv("GLOVEBOX_TABS_MAX", "7")
	t.Setenv("GLOVEBOX_STREAM_NAT_1TO1_IPS", "203.0.113.7,203.0.113.8")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("listen", "", "")
	fs.String("log-level", "", "")
	if err := fs.Parse([]string{"--listen", "127.0.0.1:5000"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(p, fs)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Proxy.Listen != "127.0.0.1:5000" {
		t.Errorf("listen = %q, want the flag's", cfg.Proxy.Listen)
	}
	if cfg.Proxy.Tabs.Max != 7 {
		t.Errorf("tabs.max = %d, want the environment's 7", cfg.Proxy.Tabs.Max)
	}
	if cfg.Proxy.Tabs.IdleTimeout.Seconds() != 90 {
		t.Errorf("tabs.idle_timeout = %v, want the file's 90s", cfg.Proxy.Tabs.IdleTimeout)
	}
	if got := cfg.Stream.NAT1To1IPs; len(got) != 2 || got[1] != "203.0.113.8" {
		t.Errorf("stream.nat_1to1_ips = %v", got)
	}
	if len(cfg.Proxy.Policy.Rules) != 1 || cfg.Proxy.Policy.Rules[0].Domain != "example.test" {
		t.Errorf("policy.rules = %+v", cfg.Proxy.Policy.Rules)
	}
	if cfg.Log.Level != "info" {
		t.Errorf("log.level = %q, want the default", cfg.Log.Level)
	}
}

func TestRunUsage(t *testing.T) {
	var out, errOut strings.Builder
	if err := run(t.Context(), nil, &out, &errOut); err == nil {
		t.Error("no command: want an error")
	}
	if err := run(t.Context(), []string{"frobnicate"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Errorf("unknown command: %v", err)
	}
	if err := run(t.Context(), []string{"check", "--config", "../../config.yaml"}, &out, &errOut); err != nil {
		t.Errorf("check: %v", err)
	}
	if !strings.Contains(out.String(), "configuration ok") {
		t.Errorf("check printed %q", out.String())
	}
}

// TestConfigEveryError: every bad value is reported at once, each with the
// full path of its key and the line of that key, sections of other
// packages included.
func TestConfigEveryError(t *testing.T) {
	body := "listen: \":3128\"\ntabs:\n  max: 0\nisolate:\n  containerd:\n    memory_mb: -1\nstream:\n  codecs: [vp9]\nlimits:\n  max_header_bytes: 10\n"
	_, err := loadConfig(writeConfig(t, body), nil)
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("err = %v, want ErrConfig", err)
	}
	for _, w := range []string{
		"config.yaml:3: tabs.max: 0",
		"config.yaml:6: isolate.containerd.memory_mb",
		"config.yaml:8: stream.codecs",
		"config.yaml:10: limits.max_header_bytes: 10",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("err = %q, want it to contain %q", err, w)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 4 {
		t.Errorf("%d lines for 4 errors:\n%s", n, err)
	}
}

// TestValidateReadsNoFile: Validate has no side effects and reads no file;
// Check reads what the configuration names, and loadConfig (so glovebox
// check) runs both, so that what check accepts does not fail at serve.
func TestValidateReadsNoFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none")
	cfg := defaultConfig()
	cfg.Proxy.Auth.Mode = auth.ModeBasic
	cfg.Proxy.Auth.Htpasswd = missing
	cfg.Proxy.TLS.ExtraCAFiles = []string{missing + ".pem"}
	cfg.Proxy.Policy.Rules = []policy.Rule{{Name: "corp", Host: "corp.test", Action: policy.ActionAllow, CAFile: missing + "-rule.pem"}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	err := cfg.Check()
	for _, w := range []string{"auth.htpasswd", "tls.extra_ca_files[0]", "policy.rules[0] (corp): ca_file"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Check = %v, want it to name %s", err, w)
		}
	}
	body := "auth:\n  mode: basic\n  htpasswd: " + missing + "\n"
	if _, err := loadConfig(writeConfig(t, body), nil); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "config.yaml:3: auth.htpasswd") {
		t.Errorf("loadConfig with a missing htpasswd file: %v", err)
	}
}
