package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// Action is what policy does with a request.
type Action string

// The actions a rule can take.
const (
	ActionAllow   Action = "allow"
	ActionIsolate Action = "isolate"
	ActionBlock   Action = "block"
)

func (a Action) valid() bool {
	return a == ActionAllow || a == ActionIsolate || a == ActionBlock
}

// Rule matches requests by exactly one of host, domain, glob or url_regex and
// says what to do with them.
type Rule struct {
	// Name identifies the rule in block pages and audit events; defaults to "rule N".
	Name string `mapstructure:"name"`
	// Host matches one host name exactly (case-insensitive, port ignored).
	Host string `mapstructure:"host"`
	// Domain matches a domain and every name below it: "example.com" matches
	// example.com and www.example.com, not badexample.com.
	Domain string `mapstructure:"domain"`
	// Glob matches the host name with shell wildcards: "*.corp.*", "intranet-??".
	Glob string `mapstructure:"glob"`
	// URLRegex matches the whole URL (scheme://host[:port]/path?query) with a Go regular expression.
	URLRegex string `mapstructure:"url_regex"`
	// Action is allow, isolate or block.
	Action Action `mapstructure:"action"`
}

// PolicyConfig is the ordered list of rules; the first that matches wins.
type PolicyConfig struct {
	// Default is the action for requests no rule matches: isolate (the default), allow or block.
	Default Action `mapstructure:"default"`
	// Rules are tried in order; the first match decides.
	Rules []Rule `mapstructure:"rules"`
}

// Validate reports the first mistake in the policy, naming the rule.
func (c *PolicyConfig) Validate() error {
	_, err := NewPolicy(*c)
	return err
}

// Decision is policy's verdict for one request.
type Decision struct {
	Action Action
	// Rule is the name of the rule that matched, or "default".
	Rule string
}

// Policy decides allow, isolate or block for each request.
type Policy struct {
	def   Action
	rules []compiledRule
}

type compiledRule struct {
	name   string
	action Action
	match  func(host string, u *url.URL) bool
}

// ErrPolicy is wrapped by every policy configuration error.
var ErrPolicy = errors.New("invalid policy")

// NewPolicy compiles a policy, reporting the first bad rule by its position and name.
func NewPolicy(c PolicyConfig) (*Policy, error) {
	p := &Policy{def: c.Default}
	if p.def == "" {
		p.def = ActionIsolate
	}
	if !p.def.valid() {
		return nil, fmt.Errorf("%w: policy.default %q: want allow, isolate or block", ErrPolicy, c.Default)
	}
	for i, r := range c.Rules {
		name := r.Name
		if name == "" {
			name = fmt.Sprintf("rule %d", i+1)
		}
		where := fmt.Sprintf("policy.rules[%d] (%s)", i, name)
		if !r.Action.valid() {
			return nil, fmt.Errorf("%w: %s: action %q: want allow, isolate or block", ErrPolicy, where, r.Action)
		}
		cr := compiledRule{name: name, action: r.Action}
		n := 0
		if r.Host != "" {
			n++
			h := normHost(r.Host)
			cr.match = func(host string, _ *url.URL) bool { return host == h }
		}
		if r.Domain != "" {
			n++
			d := strings.TrimPrefix(normHost(r.Domain), ".")
			cr.match = func(host string, _ *url.URL) bool {
				return host == d || strings.HasSuffix(host, "."+d)
			}
		}
		if r.Glob != "" {
			n++
			g := strings.ToLower(r.Glob) // not normHost: brackets are glob syntax
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("%w: %s: glob %q: %v", ErrPolicy, where, r.Glob, err)
			}
			// Hosts have no slashes, so path.Match's '*' spans labels: "*.example.com" matches a.b.example.com.
			cr.match = func(host string, _ *url.URL) bool {
				ok, _ := path.Match(g, host)
				return ok
			}
		}
		if r.URLRegex != "" {
			n++
			re, err := regexp.Compile(r.URLRegex)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: url_regex: %v", ErrPolicy, where, err)
			}
			cr.match = func(_ string, u *url.URL) bool { return re.MatchString(u.String()) }
		}
		if n != 1 {
			return nil, fmt.Errorf("%w: %s: give exactly one of host, domain, glob or url_regex (found %d)", ErrPolicy, where, n)
		}
		p.rules = append(p.rules, cr)
	}
	return p, nil
}

// Decide returns the action for a request to u. For CONNECT requests u has
// only a host and port.
func (p *Policy) Decide(u *url.URL) Decision {
	host := normHost(u.Host)
	for _, r := range p.rules {
		if r.match(host, u) {
			return Decision{Action: r.action, Rule: r.name}
		}
	}
	return Decision{Action: p.def, Rule: "default"}
}

// DecideRequest is Decide for an HTTP request, CONNECT included.
func (p *Policy) DecideRequest(r *http.Request) Decision {
	if r.Method == http.MethodConnect {
		return p.Decide(&url.URL{Scheme: "https", Host: r.URL.Host})
	}
	return p.Decide(r.URL)
}

// normHost lowercases a host and strips its port, brackets and trailing dot.
func normHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	return strings.ToLower(h)
}
