// Package policy decides, for each request, whether Glovebox allows,
// isolates or blocks it: the ordered rules of the configuration (host,
// domain, glob or url_regex matchers, users and groups), compiled once, and
// the detection of the navigations that get a landing page. It knows
// nothing of the proxy's servers and imports no other Glovebox package.
package policy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"strconv"
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

// ActionRefuse is the proxies' own refusal, in audit events only, never a
// rule's: a malformed or oversized request, a failed sign-in, a source that
// is not a known tab, a destination that is internal or on this host.
const ActionRefuse Action = "refuse"

func (a Action) valid() bool {
	return a == ActionAllow || a == ActionIsolate || a == ActionBlock
}

// Rule matches requests by at most one of host, domain, glob or url_regex,
// and optionally by who makes them (users, groups), and says what to do with
// them. A rule with users or groups and no host matcher applies to every
// site those users visit.
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
	// Users limits the rule to these authenticated users (exact names).
	Users []string `mapstructure:"users"`
	// Groups limits the rule to members of these groups of auth.groups
	// (names are case-insensitive). With users too, either one matching suffices.
	Groups []string `mapstructure:"groups"`
	// Action is allow, isolate or block.
	Action Action `mapstructure:"action"`
	// NoInspect, on an allow rule, tunnels HTTPS to the matched hosts
	// without interception (privacy-sensitive sites): Glovebox sees only
	// the host name. It is decided on the CONNECT, by host and port alone.
	NoInspect bool `mapstructure:"no_inspect"`
	// CAFile, on an allow rule, is a PEM file of CA certificates trusted for
	// the matched sites' certificates besides the system's roots and
	// tls.extra_ca_files (an internal PKI).
	CAFile string `mapstructure:"ca_file"`
	// Audio, on an isolate rule, sends the remote page's sound to the user
	// (an audio track beside the video). Unset means on; false keeps every
	// sound in the remote browser: the tab gets no audio track and Glovebox
	// does not read the browser's sound device.
	Audio *bool `mapstructure:"audio"`
	// Controls, on an isolate rule, say what may cross between the tab
	// and the user (crossing.go); unset ones are policy.defaults'.
	Controls `mapstructure:",squash"`
}

// PolicyConfig is the ordered list of rules; the first that matches wins.
type Config struct {
	// Default is the action for requests no rule matches: isolate (the default), allow or block.
	Default Action `mapstructure:"default"`
	// Rules are tried in order; the first match decides.
	Rules []Rule `mapstructure:"rules"`
	// Defaults are the crossing controls of isolated tabs whose rule
	// does not set them (and of the default action's).
	Defaults Controls `mapstructure:"defaults"`
	// Groups maps each group name to its users: auth.groups, set by the
	// wiring so that rules can name groups.
	Groups map[string][]string `mapstructure:"-"`
}

// Validate reports the first mistake in the policy, naming the rule.
func (c *Config) Validate() error {
	_, err := New(*c)
	return err
}

// Decision is policy's verdict for one request.
type Decision struct {
	Action Action
	// Rule is the name of the rule that matched, or "default".
	Rule string
	// NoInspect and CAFile are the matched allow rule's.
	NoInspect bool
	CAFile    string
	// Audio says an isolated tab may play its sound to the user: the
	// matched isolate rule's audio, on unless it says false.
	Audio bool
	// Controls are what may cross for an isolated tab: the rule's over
	// policy.defaults over DefaultControls, every field set.
	Controls Controls
}

// Policy decides allow, isolate or block for each request.
type Policy struct {
	def      Action
	defaults Controls // DefaultControls with policy.defaults over them
	rules    []compiledRule
}

type compiledRule struct {
	name   string
	action Action
	match  func(host string, u *url.URL) bool // nil: every host
	who    map[string]bool                    // nil: everyone

	noInspect bool
	caFile    string
	audio     bool
	controls  Controls // complete: the defaults with the rule's over them
}

// ErrPolicy is wrapped by every policy configuration error.
var ErrPolicy = errors.New("invalid policy")

// New compiles a policy, reporting the first bad rule by its position and name.
func New(c Config) (*Policy, error) {
	if err := c.Defaults.check("policy.defaults"); err != nil {
		return nil, err
	}
	p := &Policy{def: c.Default, defaults: DefaultControls.over(c.Defaults)}
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
		cr := compiledRule{name: name, action: r.Action, noInspect: r.NoInspect, caFile: r.CAFile, audio: r.Audio == nil || *r.Audio}
		if r.Audio != nil && r.Action != ActionIsolate {
			return nil, fmt.Errorf("%w: %s: audio applies only to isolate rules", ErrPolicy, where)
		}
		if r.Controls.isSet() && r.Action != ActionIsolate {
			return nil, fmt.Errorf("%w: %s: clipboard, download, upload, print, keyboard and record controls apply only to isolate rules", ErrPolicy, where)
		}
		if err := r.Controls.check(where); err != nil {
			return nil, err
		}
		cr.controls = p.defaults.over(r.Controls)
		if (r.NoInspect || r.CAFile != "") && r.Action != ActionAllow {
			return nil, fmt.Errorf("%w: %s: no_inspect and ca_file apply only to allow rules", ErrPolicy, where)
		}
		if r.NoInspect && r.CAFile != "" {
			return nil, fmt.Errorf("%w: %s: ca_file has no use with no_inspect: the browser checks an uninspected site's certificate itself", ErrPolicy, where)
		}
		n := 0
		if r.Host != "" {
			n++
			h := CanonIPHost(NormHost(r.Host))
			cr.match = func(host string, _ *url.URL) bool { return host == h }
		}
		if r.Domain != "" {
			n++
			d := strings.TrimPrefix(NormHost(r.Domain), ".")
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
		who, err := ruleUsers(r, c.Groups)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrPolicy, where, err)
		}
		cr.who = who
		if n > 1 || (n == 0 && who == nil) {
			return nil, fmt.Errorf("%w: %s: give exactly one of host, domain, glob or url_regex, or only users/groups (found %d)", ErrPolicy, where, n)
		}
		p.rules = append(p.rules, cr)
	}
	return p, nil
}

// Decide returns the action for a request to u by user ("" when proxy
// authentication is off or the user is unknown: rules with users or groups
// then never match). For CONNECT requests u has only a host and port.
func (p *Policy) Decide(u *url.URL, user string) Decision {
	host := CanonIPHost(NormHost(u.Host))
	if host != NormHost(u.Host) {
		// url_regex sees the address as the rules spell it too.
		c := *u
		c.Host = host
		if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
			c.Host = "[" + host + "]"
		}
		if port := u.Port(); port != "" {
			c.Host += ":" + port
		}
		u = &c
	}
	for _, r := range p.rules {
		if (r.who == nil || r.who[user]) && (r.match == nil || r.match(host, u)) {
			return Decision{Action: r.action, Rule: r.name, NoInspect: r.noInspect, CAFile: r.caFile, Audio: r.audio, Controls: r.controls}
		}
	}
	return Decision{Action: p.def, Rule: "default", Audio: true, Controls: p.defaults}
}

// DecideOrigin is Decide for u's origin alone (scheme://host:port/, no
// path or query). Isolation is per origin: a page a browser shows of one
// origin can script every other page of it, so an origin is isolated
// whole or not at all (see the proxy's effective decision).
func (p *Policy) DecideOrigin(u *url.URL, user string) Decision {
	return p.Decide(&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/"}, user)
}

// DecideRequest is Decide for an HTTP request, CONNECT included.
func (p *Policy) DecideRequest(r *http.Request, user string) Decision {
	if r.Method == http.MethodConnect {
		return p.Decide(&url.URL{Scheme: "https", Host: r.URL.Host}, user)
	}
	return p.Decide(r.URL, user)
}

// ruleUsers is the set of users a rule applies to, its users and the
// members of its groups; nil when it names neither.
func ruleUsers(r Rule, groups map[string][]string) (map[string]bool, error) {
	if len(r.Users) == 0 && len(r.Groups) == 0 {
		return nil, nil
	}
	byName := make(map[string][]string, len(groups))
	for g, members := range groups {
		byName[strings.ToLower(g)] = members
	}
	who := map[string]bool{}
	for _, u := range r.Users {
		if u == "" {
			return nil, errors.New("users: empty user name")
		}
		who[u] = true
	}
	for _, g := range r.Groups {
		members, ok := byName[strings.ToLower(g)]
		if !ok {
			return nil, fmt.Errorf("groups: unknown group %q (define it in auth.groups)", g)
		}
		for _, u := range members {
			who[u] = true
		}
	}
	return who, nil
}

// canonIPHost spells an IP address host one way, so that a rule for
// 10.1.2.3 also matches [::ffff:10.1.2.3], [::ffff:a01:203], 10.1.515,
// 0x0a.1.2.3, 012.1.2.3 and 167838211: the forms that URL parsers and
// resolvers take for the same address (WHATWG URL's IPv4 parser, inet_aton).
// IPv4-mapped IPv6 becomes IPv4, an IPv6 zone is dropped. Names are
// returned as they are. h is normHost's result.
func CanonIPHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.WithZone("").Unmap().String()
	}
	if a, ok := ParseLegacyIPv4(h); ok {
		return a.String()
	}
	return h
}

// parseLegacyIPv4 parses the IPv4 forms besides dotted decimal that the
// WHATWG URL standard (and inet_aton) accept: one to four parts, each
// decimal, octal (leading 0) or hexadecimal (0x), the last filling the
// remaining bytes. A host whose last label is not such a number is a name.
func ParseLegacyIPv4(h string) (netip.Addr, bool) {
	parts := strings.Split(h, ".")
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	nums := make([]uint64, len(parts))
	for i, p := range parts {
		base := 10
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			p, base = p[2:], 16
			if p == "" {
				p = "0"
			}
		case len(p) > 1 && p[0] == '0':
			p, base = p[1:], 8
		}
		n, err := strconv.ParseUint(p, base, 32)
		if p == "" || err != nil {
			return netip.Addr{}, false
		}
		nums[i] = n
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, false
	}
	v := last
	for i, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false
		}
		v |= n << (8 * (3 - i))
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// normHost lowercases a host and strips its port, brackets and trailing dot.
func NormHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	return strings.ToLower(h)
}
