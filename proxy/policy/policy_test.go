package policy

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestPolicyGolden pins the decision for each URL in testdata/policy-urls.txt
// under testdata/policy.yaml. Run with -update after a deliberate change.
func TestPolicyGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Decoded by the config's own tags, as the binary decodes it, so a
	// new rule field needs no change here. groups stands in for auth.groups.
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var pc Config
	if err := mapstructure.Decode(doc, &pc); err != nil {
		t.Fatal(err)
	}
	if err := mapstructure.Decode(doc["groups"], &pc.Groups); err != nil {
		t.Fatal(err)
	}
	p, err := New(pc)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("testdata/policy-urls.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		// "URL as USER" asks for the decision for that user.
		rawURL, user, _ := strings.Cut(line, " as ")
		u, err := url.Parse(rawURL)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		d := p.Decide(u, user)
		fmt.Fprintf(&out, "%-45s %-8s %s\n", line, d.Action, d.Rule)
	}
	golden := "testdata/policy.golden"
	if *update {
		os.WriteFile(golden, []byte(out.String()), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if out.String() != string(want) {
		t.Errorf("decisions differ from %s:\ngot:\n%s\nwant:\n%s", golden, out.String(), want)
	}
}

func TestPolicyErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad default", Config{Default: "quarantine"}, `policy.default "quarantine"`},
		{"bad action", Config{Rules: []Rule{{Name: "x", Host: "a", Action: "permit"}}}, `policy.rules[0] (x): action "permit"`},
		{"no matcher", Config{Rules: []Rule{{Action: ActionAllow}}}, `policy.rules[0] (rule 1): give exactly one`},
		{"two matchers", Config{Rules: []Rule{{Host: "a", Domain: "b", Action: ActionAllow}}}, "found 2"},
		{"bad regex", Config{Rules: []Rule{{Name: "r", URLRegex: "(", Action: ActionBlock}}}, "url_regex"},
		{"bad glob", Config{Rules: []Rule{{Name: "g", Glob: "[", Action: ActionBlock}}}, "glob"},
		{"audio on allow", Config{Rules: []Rule{{Name: "s", Host: "a", Action: ActionAllow, Audio: new(true)}}}, "audio applies only to isolate rules"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if !errors.Is(err, ErrPolicy) {
				t.Fatalf("err = %v, want ErrPolicy", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to mention %q", err, tt.want)
			}
		})
	}
	if _, err := New(Config{}); err != nil {
		t.Errorf("empty policy: %v", err)
	}
}

// TestPolicyIPLiteralForms: a rule for an address matches every spelling
// of it that a URL parser or resolver takes for the same address, so that
// none of them is a way around it.
func TestPolicyIPLiteralForms(t *testing.T) {
	p, err := New(Config{Default: ActionAllow, Rules: []Rule{
		{Name: "v4", Host: "10.1.2.3", Action: ActionBlock},
		{Name: "v6", Host: "[2001:db8::1]", Action: ActionBlock},
		{Name: "re", URLRegex: `^http://192\.0\.2\.7(:\d+)?/`, Action: ActionBlock},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ url, rule string }{
		{"http://10.1.2.3/", "v4"},
		{"http://[::ffff:10.1.2.3]/", "v4"},
		{"http://[::ffff:a01:203]:8080/", "v4"},
		{"http://[0:0:0:0:0:ffff:10.1.2.3]/", "v4"},
		{"http://10.1.515/", "v4"},
		{"http://10.66051/", "v4"},
		{"http://167838211/", "v4"},
		{"http://0xa.1.2.3/", "v4"},
		{"http://0x0A010203/", "v4"},
		{"http://012.1.2.3/", "v4"},
		{"http://10.1.2.3./", "v4"},
		{"http://[2001:DB8:0:0::1]/", "v6"},
		{"http://[2001:db8::1%25eth0]/", "v6"},
		{"http://[::ffff:192.0.2.7]:81/x", "re"},
		{"http://0xc0.0.2.7/", "re"},
		// Not the address: names and other numbers.
		{"http://10.1.2.4/", "default"},
		{"http://10.1.2.3.example/", "default"},
		{"http://1.2.3.4.5/", "default"},
		{"http://08.1.2.3/", "default"},
		{"http://10.256.2.3/", "default"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if d := p.Decide(u, ""); d.Rule != tc.rule {
			t.Errorf("%s: rule %q, want %q", tc.url, d.Rule, tc.rule)
		}
	}
}

// TestPolicyAudio: sound is on for isolated tabs unless their rule says
// audio: false.
func TestPolicyAudio(t *testing.T) {
	p, err := New(Config{Rules: []Rule{
		{Name: "quiet", Domain: "quiet.example", Action: ActionIsolate, Audio: new(false)},
		{Name: "loud", Domain: "loud.example", Action: ActionIsolate, Audio: new(true)},
		{Name: "plain", Domain: "plain.example", Action: ActionIsolate},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		url  string
		want bool
	}{
		{"https://www.quiet.example/", false},
		{"https://loud.example/", true},
		{"https://plain.example/", true},
		{"https://other.example/", true}, // the default
	} {
		u, _ := url.Parse(tt.url)
		if d := p.Decide(u, ""); d.Audio != tt.want {
			t.Errorf("%s: Audio = %v (rule %s), want %v", tt.url, d.Audio, d.Rule, tt.want)
		}
	}
}
