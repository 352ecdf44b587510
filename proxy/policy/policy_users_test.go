package policy

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestPolicyUserRuleErrors(t *testing.T) {
	groups := map[string][]string{"eng": {"alice"}}
	tests := []struct {
		name string
		rule Rule
		want string
	}{
		{"unknown group", Rule{Name: "g", Groups: []string{"sales"}, Action: ActionAllow}, `policy.rules[0] (g): groups: unknown group "sales" (define it in auth.groups)`},
		{"empty user", Rule{Name: "u", Host: "a.test", Users: []string{""}, Action: ActionAllow}, `policy.rules[0] (u): users: empty user name`},
		{"two matchers and users", Rule{Host: "a", Domain: "b", Users: []string{"alice"}, Action: ActionAllow}, "found 2"},
		{"nothing to match", Rule{Name: "n", Action: ActionAllow}, "give exactly one of host, domain, glob or url_regex, or only users/groups"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Rules: []Rule{tt.rule}, Groups: groups})
			if !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrPolicy mentioning %q", err, tt.want)
			}
		})
	}
}

// TestPolicyUsersOnlyRule: a rule with users or groups and no host matcher
// applies to every site, for those users only; the anonymous user ("")
// never matches one, even a group that is empty.
func TestPolicyUsersOnlyRule(t *testing.T) {
	p, err := New(Config{Default: ActionIsolate, Groups: map[string][]string{"Admins": {"root"}, "empty": nil},
		Rules: []Rule{
			{Name: "nobody", Groups: []string{"EMPTY"}, Action: ActionBlock},
			{Name: "admins", Groups: []string{"admins"}, Action: ActionAllow},
			{Name: "guest", Users: []string{"guest"}, Action: ActionBlock},
		}})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("http://anything.test/")
	for user, want := range map[string]string{"root": "admins", "guest": "guest", "": "default", "alice": "default"} {
		if d := p.Decide(u, user); d.Rule != want {
			t.Errorf("Decide(%q) = %+v, want rule %s", user, d, want)
		}
	}
}
