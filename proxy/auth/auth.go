// Package auth says who makes each proxy request: none (anonymous), basic
// (an htpasswd file of bcrypt entries, reloaded when it changes, with
// failed sign-ins throttled per address) or header (the user a trusted
// downstream proxy names). It knows nothing of goproxy: the proxy asks it
// and answers 407 or 429 itself. It imports no Glovebox package but
// proxy/internal ones.
package auth

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/textproto"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/glovebox/glovebox/proxy/internal/httpx"
	"golang.org/x/crypto/bcrypt"
)

// The proxy authentication modes.
const (
	ModeNone   = "none"
	ModeBasic  = "basic"
	ModeHeader = "header"
)

// authRealm is the realm of the Basic challenge.
const Realm = "Glovebox"

// Config is proxy authentication: who is making each request.
type Config struct {
	// Mode is none (every request is anonymous), basic (Proxy-Authorization
	// Basic against Htpasswd) or header (the user a downstream proxy names in
	// Header, believed only from TrustedProxies).
	Mode string `mapstructure:"mode"`
	// Htpasswd is the path of an htpasswd file with bcrypt entries
	// (htpasswd -B) of cost 5 to 14, for mode basic. Changes to it are
	// picked up within seconds; a changed file with a mistake is refused
	// and the last good one kept.
	Htpasswd string `mapstructure:"htpasswd"`
	// Header is the request header in which a trusted downstream proxy names
	// the user it authenticated, for mode header. It is stripped from every
	// request, whatever the mode, so no site behind Glovebox sees a forged one.
	Header string `mapstructure:"header"`
	// TrustedProxies are the addresses (IPs or CIDRs) of downstream proxies
	// whose Header is believed. Anyone else's is ignored, and with mode
	// header such a client is refused with 407 like one with no credentials.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	// Groups maps a group name (case-insensitive) to its users, for policy
	// rules that name groups.
	Groups map[string][]string `mapstructure:"groups"`
}

// DefaultConfig returns the defaults documented in config.yaml.
func DefaultConfig() Config {
	return Config{Mode: ModeNone, Header: "X-Authenticated-User"}
}

// Validate reports every bad value, each naming its key. It has no side
// effects: the htpasswd file is read by Check.
func (c *Config) Validate() error {
	var errs []error
	if _, err := parseTrusted(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	for g, users := range c.Groups {
		if strings.TrimSpace(g) == "" {
			errs = append(errs, fmt.Errorf("auth.groups: empty group name"))
		}
		for i, u := range users {
			if u == "" {
				errs = append(errs, fmt.Errorf("auth.groups.%s[%d]: empty user name", g, i))
			}
		}
	}
	if !validHeaderName(c.Header) {
		errs = append(errs, fmt.Errorf("auth.header: %q: want an HTTP header name such as X-Authenticated-User", c.Header))
	}
	switch c.Mode {
	case ModeNone:
	case ModeBasic:
		if c.Htpasswd == "" {
			errs = append(errs, fmt.Errorf("auth.htpasswd: empty: auth.mode basic needs an htpasswd file (htpasswd -B -c FILE USER)"))
		}
	case ModeHeader:
		if len(c.TrustedProxies) == 0 {
			errs = append(errs, fmt.Errorf("auth.trusted_proxies: empty: auth.mode header needs the addresses of the downstream proxies that set %s", c.Header))
		}
	default:
		errs = append(errs, fmt.Errorf("auth.mode: %q: want none, basic or header", c.Mode))
	}
	return errors.Join(errs...)
}

// Check reads the htpasswd file of mode basic, as serving would, so that
// a bad entry is found by glovebox check.
func (c *Config) Check() error {
	if c.Mode != ModeBasic || c.Htpasswd == "" {
		return nil
	}
	if _, err := loadHtpasswd(c.Htpasswd); err != nil {
		return fmt.Errorf("auth.htpasswd: %w", err)
	}
	return nil
}

func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for _, r := range h {
		if r > unicode.MaxASCII || !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	switch textproto.CanonicalMIMEHeaderKey(h) {
	case "Proxy-Authorization", "Authorization", "Host", "Cookie", "Connection":
		return false
	}
	return true
}

func parseTrusted(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("auth.trusted_proxies[%d]: %q: want an IP address or a CIDR such as 10.0.0.0/8", i, s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ErrNotBcrypt says an htpasswd entry uses a hash other than bcrypt.
var ErrNotBcrypt = errors.New("not a bcrypt hash")

// ErrBcryptCost says an htpasswd entry's bcrypt cost is outside
// minBcryptCost..maxBcryptCost.
var ErrBcryptCost = errors.New("bcrypt cost out of range")

// The bcrypt costs an htpasswd entry may have. Below 5 a hash is cheap to
// crack (htpasswd -B makes 5 unless told otherwise); each step up doubles
// the time of every check, and a check runs for each sign-in and for each
// unknown user: at 14 that is about a second of CPU, and a cost of 24 (which
// a malformed "$2y$24$…" entry parses as) would be fifty minutes.
const (
	minBcryptCost = 5
	maxBcryptCost = 14
)

// loadHtpasswd reads user:bcrypt-hash lines: see parseHtpasswd.
func loadHtpasswd(path string) (map[string][]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseHtpasswd(path, raw)
}

// parseHtpasswd parses the user:bcrypt-hash lines of the file name. Other
// hash types (MD5 apr1, SHA1, crypt, plain text) are refused: they are weak,
// and a file that mixes them would leave some users less protected than the
// administrator thinks. So is a bcrypt cost outside 5..14. It does no bcrypt
// work: loading a file is cheap whatever it holds.
func parseHtpasswd(name string, raw []byte) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%s:%d: want user:hash", name, n)
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("%s:%d: user %q is listed twice", name, n, user)
		}
		if !strings.HasPrefix(hash, "$2") {
			return nil, fmt.Errorf("%s:%d: user %q: %w (make entries with htpasswd -B)", name, n, user, ErrNotBcrypt)
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: user %q: %w: %v", name, n, user, ErrNotBcrypt, err)
		}
		if cost < minBcryptCost || cost > maxBcryptCost {
			return nil, fmt.Errorf("%s:%d: user %q: %w: cost %d, want %d to %d (htpasswd -B -C 10)",
				name, n, user, ErrBcryptCost, cost, minBcryptCost, maxBcryptCost)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return users, nil
}

// dummyHashes are the hashes compared against when the user does not exist,
// one per cost, each made once on first use: an unknown user takes as long
// to refuse as a wrong password, and no request (nor a lock) waits for a
// hash to be made more than once.
var dummyHashes = func() (out [maxBcryptCost + 1]func() []byte) {
	for c := minBcryptCost; c <= maxBcryptCost; c++ {
		out[c] = sync.OnceValue(func() []byte {
			// It fails only for a cost out of range or a password over 72 bytes.
			h, _ := bcrypt.GenerateFromPassword([]byte("glovebox-no-such-user"), c)
			return h
		})
	}
	return out
}()

// dummyHash is the dummy hash of cost c (which parseHtpasswd bounded).
func dummyHash(c int) []byte {
	return dummyHashes[min(max(c, minBcryptCost), maxBcryptCost)]()
}

// commonCost is the cost most of users' hashes have (the lowest of a tie):
// the one an unknown user's refusal is timed to match.
func commonCost(users map[string][]byte) int {
	var n [maxBcryptCost + 1]int
	for _, h := range users {
		if c, err := bcrypt.Cost(h); err == nil && c >= minBcryptCost && c <= maxBcryptCost {
			n[c]++
		}
	}
	if len(users) == 0 {
		return bcrypt.DefaultCost
	}
	best := minBcryptCost
	for c := minBcryptCost + 1; c <= maxBcryptCost; c++ {
		if n[c] > n[best] {
			best = c
		}
	}
	return best
}

// htpasswd is the user file, reloaded when it changes.
type htpasswd struct {
	path  string
	every time.Duration // how often the file is looked at
	log   *slog.Logger

	mu        sync.Mutex // only held to read or swap the fields below
	users     map[string][]byte
	cost      int // of the dummy hash: commonCost(users)
	info      os.FileInfo
	checked   time.Time
	reloading bool // a reload is reading the file
}

func newHtpasswd(path string, log *slog.Logger) (*htpasswd, error) {
	h := &htpasswd{path: path, every: 2 * time.Second, log: log}
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	users, err := loadHtpasswd(path)
	if err != nil {
		return nil, err
	}
	h.users, h.cost, h.info, h.checked = users, commonCost(users), info, time.Now()
	dummyHash(h.cost) // made now rather than by the first unknown user
	return h, nil
}

// current returns the users and the cost of the dummy hash, reloading the
// file first if it changed. A file that went missing or has a mistake
// keeps the last good users, loudly. The file is read outside the lock,
// by one caller at a time; the others go on with the users they have.
func (h *htpasswd) current() (map[string][]byte, int) {
	now := time.Now()
	h.mu.Lock()
	due := !h.reloading && now.Sub(h.checked) >= h.every
	if due {
		h.checked, h.reloading = now, true
	}
	info := h.info
	h.mu.Unlock()
	if due {
		h.reload(info)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.users, h.cost
}

// reload reads the file if it differs from old (what was loaded) and swaps
// it in if it is good.
func (h *htpasswd) reload(old os.FileInfo) {
	next := old
	defer func() {
		h.mu.Lock()
		h.info, h.reloading = next, false
		h.mu.Unlock()
	}()
	info, err := os.Stat(h.path)
	if err != nil {
		h.log.Error("htpasswd file unreadable; keeping the users loaded before", "path", h.path, "err", err)
		return
	}
	if os.SameFile(info, old) && info.ModTime().Equal(old.ModTime()) && info.Size() == old.Size() {
		return
	}
	next = info // do not re-read a bad file every time; the next change is looked at
	users, err := loadHtpasswd(h.path)
	if err != nil {
		h.log.Error("htpasswd file changed but is refused; keeping the users loaded before", "err", err)
		return
	}
	cost := commonCost(users)
	h.mu.Lock()
	h.users, h.cost = users, cost
	h.mu.Unlock()
	h.log.Info("htpasswd file reloaded", "path", h.path, "users", len(users))
}

// authenticator decides who makes each request.
type Authenticator struct {
	mode    string
	header  string
	trusted []netip.Prefix
	pw      *htpasswd
	log     *slog.Logger

	// bcrypt costs tens of milliseconds by design and browsers send the
	// credentials with every request, so a verified user:password is
	// remembered (as an HMAC under a per-process key) for a while.
	secret [32]byte
	sem    chan struct{} // bounds concurrent bcrypt work
	mu     sync.Mutex
	good   map[[32]byte]time.Time

	limit *loginThrottle // failed sign-ins per address
	// compare is bcrypt.CompareHashAndPassword; tests count its calls.
	compare func(hash, pass []byte) error
}

const (
	authCacheFor = 5 * time.Minute
	authCacheMax = 10000
)

func New(c Config, log *slog.Logger) (*Authenticator, error) {
	trusted, err := parseTrusted(c.TrustedProxies)
	if err != nil {
		return nil, err
	}
	a := &Authenticator{mode: c.Mode, header: textproto.CanonicalMIMEHeaderKey(c.Header), trusted: trusted,
		log: log.With("component", "auth"), sem: make(chan struct{}, max(1, runtime.GOMAXPROCS(0))),
		good: map[[32]byte]time.Time{}, limit: newLoginThrottle(), compare: bcrypt.CompareHashAndPassword}
	if a.mode == "" {
		a.mode = ModeNone
	}
	rand.Read(a.secret[:])
	if a.mode == ModeBasic {
		if a.pw, err = newHtpasswd(c.Htpasswd, a.log); err != nil {
			return nil, fmt.Errorf("auth.htpasswd: %w", err)
		}
	}
	return a, nil
}

// Failure is why a request was refused: 407, or 429 when Retry is set.
type Failure struct {
	// Reason is for the audit event's error and the log.
	Reason string
	user   string // the name tried, for the log only
	// Retry is set when the address is refused for too many failed
	// sign-ins: how long until it may try again.
	Retry time.Duration
}

// Strip removes the credentials and the identity header from r, so that
// neither is forwarded.
func (a *Authenticator) Strip(r *http.Request) {
	r.Header.Del("Proxy-Authorization")
	r.Header.Del(a.header)
}

// Mode is auth.mode.
func (a *Authenticator) Mode() string { return a.mode }

// Authenticate returns the user ("" with mode none) or why the request must
// be refused. It strips the credentials and the identity header from r, so
// neither is forwarded.
func (a *Authenticator) Authenticate(r *http.Request) (string, *Failure) {
	authz := r.Header.Get("Proxy-Authorization")
	named, hasNamed := r.Header[a.header]
	a.Strip(r)
	ip := httpx.ClientIP(r)
	switch a.mode {
	case ModeBasic:
		if hasNamed {
			a.log.Warn("identity header ignored: auth.mode is basic", "client_ip", ip, "header", a.header)
		}
		return a.basic(authz, ip)
	case ModeHeader:
		if !hasNamed {
			return "", &Failure{Reason: "no " + a.header + " header"}
		}
		if !a.IsTrusted(ip) {
			a.log.Warn("identity header from an untrusted address ignored", "client_ip", ip, "header", a.header)
			return "", &Failure{Reason: a.header + " from an untrusted address"}
		}
		user := strings.TrimSpace(named[0])
		if len(named) != 1 || !validUserName(user) {
			a.log.Warn("invalid identity header from a trusted proxy", "client_ip", ip, "header", a.header)
			return "", &Failure{Reason: "invalid " + a.header + " header"}
		}
		return user, nil
	}
	if hasNamed {
		a.log.Debug("identity header stripped: auth.mode is none", "client_ip", ip, "header", a.header)
	}
	return "", nil
}

// IsTrusted reports whether ip is one of auth.trusted_proxies.
func (a *Authenticator) IsTrusted(ip string) bool {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range a.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// validUserName accepts what a directory may call a user (alice,
// alice@corp.example, CORP\alice) and nothing that would corrupt a log line.
func validUserName(u string) bool {
	if u == "" || len(u) > 256 {
		return false
	}
	for _, r := range u {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}

func (a *Authenticator) basic(authz, ip string) (string, *Failure) {
	// A refused address is told so whatever it sends: a 407 would only
	// make its browser ask for a password that would not be checked.
	if retry, no := a.limit.blocked(ip, time.Now()); no {
		return "", a.throttled(ip, retry)
	}
	if authz == "" {
		return "", &Failure{Reason: "no credentials"}
	}
	scheme, cred, _ := strings.Cut(authz, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", a.failed(ip, "", "credentials are not Basic")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", a.failed(ip, "", "malformed Basic credentials")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || !validUserName(user) {
		return "", a.failed(ip, "", "malformed Basic credentials")
	}
	if ok, retry := a.checkPassword(user, pass, ip); !ok {
		if retry > 0 {
			return "", a.throttled(ip, retry)
		}
		return "", a.failed(ip, user, "wrong user name or password")
	}
	return user, nil
}

// failed logs a failed attempt (never the password) and returns it.
func (a *Authenticator) failed(ip, user, reason string) *Failure {
	a.log.Warn("proxy authentication failed", "client_ip", ip, "user", user, "reason", reason)
	return &Failure{Reason: reason, user: user}
}

// throttled is the refusal of an address that failed too often. The warning
// was logged when the refusal started; each refused request is only a
// debug line.
func (a *Authenticator) throttled(ip string, retry time.Duration) *Failure {
	a.log.Debug("proxy authentication refused: too many failed sign-ins from the address", "client_ip", ip)
	return &Failure{Reason: "too many failed sign-ins from this address", Retry: retry}
}

// checkPassword compares in constant time (bcrypt's comparison), and as long
// for a user that does not exist as for a wrong password. It reports a
// retry time instead of checking when the address has failed too often.
func (a *Authenticator) checkPassword(user, pass, ip string) (bool, time.Duration) {
	users, cost := a.pw.current()
	hash, known := users[user]
	mac := hmac.New(sha256.New, a.secret[:])
	mac.Write([]byte(user))
	mac.Write([]byte{0})
	mac.Write(hash)
	mac.Write([]byte{0})
	mac.Write([]byte(pass))
	var key [32]byte
	copy(key[:], mac.Sum(nil))
	now := time.Now()
	a.mu.Lock()
	exp, cached := a.good[key]
	a.mu.Unlock()
	if cached && known && now.Before(exp) {
		return true, 0
	}

	verdict, retry := a.limit.begin(ip, key, now)
	switch verdict {
	case attemptRefused:
		return false, retry
	case attemptRepeat:
		return false, 0
	}
	var dummy []byte
	if !known {
		dummy = dummyHash(cost) // made once, outside every lock but its own
	}
	a.sem <- struct{}{}
	var err error
	if known {
		err = a.compare(hash, []byte(pass))
	} else {
		a.compare(dummy, []byte(pass))
	}
	<-a.sem
	ok := known && err == nil
	if verdict == attemptCheck && a.limit.end(ip, key, !ok, time.Now()) {
		a.log.Warn("proxy authentication: too many failed sign-ins; refusing the address for a while",
			"client_ip", ip, "failures", a.limit.max, "within", a.limit.window, "refused_for", a.limit.block)
	}
	if !ok {
		return false, 0
	}
	a.mu.Lock()
	if len(a.good) >= authCacheMax {
		clear(a.good)
	}
	a.good[key] = now.Add(authCacheFor)
	a.mu.Unlock()
	return true, 0
}
