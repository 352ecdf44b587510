package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// writeHtpasswd writes user:bcrypt lines (cost 5, the lowest accepted: fast,
// and bcrypt all the same).
func writeHtpasswd(t *testing.T, path string, users map[string]string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# test users\n")
	for u, p := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), 5)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(u + ":" + string(h) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAuthConfigErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	writeHtpasswd(t, good, map[string]string{"alice": "x"})
	md5 := filepath.Join(dir, "md5")
	os.WriteFile(md5, []byte("# comment\nalice:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n"), 0o600)
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("bob:secret\n"), 0o600)
	dup := filepath.Join(dir, "dup")
	os.WriteFile(dup, []byte("bob:$2y$05$PaKDr4iJgKXJ8yEPn4Fj7.HRvsXKdWU0TVXlDOOuxhOA8nF3dQ8W6\nbob:$2y$05$PaKDr4iJgKXJ8yEPn4Fj7.HRvsXKdWU0TVXlDOOuxhOA8nF3dQ8W6\n"), 0o600)

	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"bad mode", Config{Mode: "kerberos", Header: "X-U"}, []string{`auth.mode: "kerberos"`, "none, basic or header"}},
		{"basic without a file", Config{Mode: ModeBasic, Header: "X-U"}, []string{"auth.htpasswd: empty"}},
		{"missing file", Config{Mode: ModeBasic, Header: "X-U", Htpasswd: filepath.Join(dir, "nope")}, []string{"auth.htpasswd:", "no such file"}},
		{"md5 hash", Config{Mode: ModeBasic, Header: "X-U", Htpasswd: md5}, []string{"auth.htpasswd: " + md5 + `:2: user "alice": not a bcrypt hash`, "htpasswd -B"}},
		{"plain password", Config{Mode: ModeBasic, Header: "X-U", Htpasswd: plain}, []string{plain + ":1:", "not a bcrypt hash"}},
		{"duplicate user", Config{Mode: ModeBasic, Header: "X-U", Htpasswd: dup}, []string{dup + `:2: user "bob" is listed twice`}},
		{"bad CIDR", Config{Mode: ModeHeader, Header: "X-U", TrustedProxies: []string{"10.0.0.1", "10.0.0.0/33"}}, []string{`auth.trusted_proxies[1]: "10.0.0.0/33"`}},
		{"header without proxies", Config{Mode: ModeHeader, Header: "X-U"}, []string{"auth.trusted_proxies: empty"}},
		{"bad header name", Config{Mode: ModeHeader, Header: "X User", TrustedProxies: []string{"10.0.0.1"}}, []string{`auth.header: "X User"`}},
		{"credentials header", Config{Mode: ModeHeader, Header: "proxy-authorization", TrustedProxies: []string{"10.0.0.1"}}, []string{`auth.header`}},
		{"empty group member", Config{Mode: ModeNone, Header: "X-U", Groups: map[string][]string{"eng": {"alice", ""}}}, []string{"auth.groups.eng[1]: empty user name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := errors.Join(tt.cfg.Validate(), tt.cfg.Check())
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
		})
	}
	ok := []Config{
		DefaultConfig(),
		{Mode: ModeBasic, Header: "X-U", Htpasswd: good},
		{Mode: ModeHeader, Header: "X-Remote-User", TrustedProxies: []string{"::1", "10.0.0.0/8", "::ffff:192.0.2.1"}},
	}
	for _, c := range ok {
		if err := errors.Join(c.Validate(), c.Check()); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	_, err := loadHtpasswd(md5)
	if !errors.Is(err, ErrNotBcrypt) {
		t.Errorf("loadHtpasswd(md5) = %v, want ErrNotBcrypt", err)
	}
}

// hashOfCost is a well-formed bcrypt hash that says cost c, as bcrypt.Cost
// reads it; its digest is of cost 5 and nothing here checks it.
func hashOfCost(t *testing.T, c int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), 5)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s%02d%s", h[:4], c, h[6:])
}

// TestHtpasswdCost: entries of bcrypt cost 5 to 14 are accepted; others are
// refused at once with the file and line. A cost of 24 used to make loading
// (and every sign-in, waiting for it) take fifty minutes: the load is
// guarded so that a regression fails instead of hanging the suite.
func TestHtpasswdCost(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		cost int
		ok   bool
	}{{4, false}, {5, true}, {10, true}, {14, true}, {15, false}, {24, false}, {31, false}}
	for _, tt := range tests {
		t.Run(fmt.Sprint("cost ", tt.cost), func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprint("cost", tt.cost))
			if err := os.WriteFile(path, []byte("# users\nalice:"+hashOfCost(t, tt.cost)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := Config{Mode: ModeBasic, Header: "X-U", Htpasswd: path}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate reads no file, and the rest is right: %v", err)
			}
			err := cfg.Check()
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			want := fmt.Sprintf(`auth.htpasswd: %s:2: user "alice": bcrypt cost out of range: cost %d, want 5 to 14`, path, tt.cost)
			if !strings.Contains(err.Error(), want) || !errors.Is(err, ErrBcryptCost) {
				t.Errorf("err = %v, want it to contain %q and be ErrBcryptCost", err, want)
			}
			// What glovebox serve does with the file, guarded.
			done := make(chan error, 1)
			go func() {
				_, err := New(cfg, quietLog())
				done <- err
			}()
			guard := time.NewTimer(30 * time.Second)
			defer guard.Stop()
			select {
			case err := <-done:
				if !errors.Is(err, ErrBcryptCost) {
					t.Errorf("newAuthenticator: %v, want ErrBcryptCost", err)
				}
			case <-guard.C:
				t.Fatal("loading the file is still running after 30s")
			}
		})
	}
}

// TestDummyHashOnce: the hash an unknown user is compared against has the
// cost asked for and is made once, not per request.
func TestDummyHashOnce(t *testing.T) {
	for _, c := range []int{5, 6} {
		a, b := dummyHash(c), dummyHash(c)
		if got, err := bcrypt.Cost(a); err != nil || got != c {
			t.Errorf("dummyHash(%d) has cost %d (%v)", c, got, err)
		}
		if &a[0] != &b[0] {
			t.Errorf("dummyHash(%d) was made twice", c)
		}
	}
	for _, tt := range []struct {
		costs []int
		want  int
	}{{[]int{6, 6, 12}, 6}, {[]int{10, 5}, 5}, {[]int{14}, 14}, {nil, bcrypt.DefaultCost}} {
		users := map[string][]byte{}
		for i, c := range tt.costs {
			users[fmt.Sprint("u", i)] = []byte(hashOfCost(t, c))
		}
		if c := commonCost(users); c != tt.want {
			t.Errorf("commonCost(%v) = %d, want %d", tt.costs, c, tt.want)
		}
	}
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// logBuffer collects a log for the tests to read.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// basicRequest is a request from ip with Basic credentials user:pass.
func basicRequest(ip, user, pass string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://site.test/", nil)
	r.RemoteAddr = ip + ":40000"
	r.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	return r
}

// TestHtpasswdReload: a changed file is picked up; a changed file with a
// mistake (a hash that is not bcrypt, a cost out of range) is refused with
// its line and the users before it kept, and sign-ins go on meanwhile.
func TestHtpasswdReload(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "htpasswd")
	writeHtpasswd(t, pw, map[string]string{"alice": "one"})
	logs := &logBuffer{}
	a, err := New(Config{Mode: ModeBasic, Header: "X-U", Htpasswd: pw}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a.pw.every = 0 // look at the file on every request
	signIn := func(user, pass string) bool {
		got, fail := a.Authenticate(basicRequest("192.0.2.1", user, pass))
		return fail == nil && got == user
	}
	if !signIn("alice", "one") {
		t.Fatal("alice before the change")
	}
	// Replaced by rename, as editors and config management do.
	tmp := pw + ".new"
	writeHtpasswd(t, tmp, map[string]string{"alice": "two", "carol": "three"})
	if err := os.Rename(tmp, pw); err != nil {
		t.Fatal(err)
	}
	if signIn("alice", "one") {
		t.Error("alice's old password after the change")
	}
	if !signIn("alice", "two") || !signIn("carol", "three") {
		t.Error("the new passwords after the change")
	}
	// Bad changes, each by rename so that it is seen as a change. A cost of
	// 24 used to be loaded under the lock every sign-in takes, for fifty
	// minutes: the guard fails the test rather than letting it hang.
	bad := []struct{ name, entry, want string }{
		{"SHA1", "carol:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=", "not a bcrypt hash"},
		{"cost 4", "carol:" + hashOfCost(t, 4), "bcrypt cost out of range: cost 4"},
		{"cost 15", "carol:" + hashOfCost(t, 15), "bcrypt cost out of range: cost 15"},
		{"cost 24", "carol:" + hashOfCost(t, 24), "bcrypt cost out of range: cost 24"},
	}
	for i, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(tmp, []byte(tt.entry+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, pw); err != nil {
				t.Fatal(err)
			}
			done := make(chan bool, 1)
			go func() {
				ok := true
				for range 2 { // the first looks at the file, the second uses what was kept
					ok = ok && signIn("carol", "three")
				}
				done <- ok
			}()
			select {
			case ok := <-done:
				if !ok {
					t.Error("carol after a bad change: the last good file must be kept")
				}
			case <-time.After(30 * time.Second):
				t.Fatal("signing in after a bad change still runs after 30 s")
			}
			l := logs.String()
			if n := strings.Count(l, "htpasswd file changed but is refused"); n != i+1 || !strings.Contains(l, pw+":1: "+`user \"carol\": `+tt.want) {
				t.Errorf("%d refusals logged, want %d, the last with %q:\n%s", n, i+1, tt.want, l)
			}
		})
	}
}

// TestThrottleSkipsBcrypt: after MaxFailures wrong passwords from one
// address, no password from it is checked, the right one included, and the
// refusal says when to come back; another address signs in all the same.
// The same wrong password sent again and again (as a browser does) is
// checked once.
func TestThrottleSkipsBcrypt(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "htpasswd")
	writeHtpasswd(t, pw, map[string]string{"alice": "right-password"})
	logs := &logBuffer{}
	a, err := New(Config{Mode: ModeBasic, Header: "X-U", Htpasswd: pw}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var checks atomic.Int32
	cmp := a.compare
	a.compare = func(hash, pass []byte) error {
		checks.Add(1)
		return cmp(hash, pass)
	}
	for i := range MaxFailures {
		if _, fail := a.Authenticate(basicRequest("192.0.2.1", "alice", fmt.Sprint("guess-", i))); fail == nil || fail.Retry != 0 {
			t.Fatalf("wrong password %d: %+v, want a failure to sign in", i, fail)
		}
	}
	if _, fail := a.Authenticate(basicRequest("192.0.2.1", "alice", "right-password")); fail == nil || fail.Retry <= 0 || fail.Retry > BlockFor {
		t.Errorf("the right password from a refused address: %+v, want a refusal with a retry time", fail)
	}
	if n := checks.Load(); n != MaxFailures {
		t.Errorf("%d passwords checked, want %d: a refused address's were checked", n, MaxFailures)
	}
	if u, fail := a.Authenticate(basicRequest("192.0.2.2", "alice", "right-password")); fail != nil || u != "alice" {
		t.Errorf("another address: %q, %+v", u, fail)
	}
	before := checks.Load()
	for range MaxFailures + 5 {
		if _, fail := a.Authenticate(basicRequest("192.0.2.3", "alice", "stale-password")); fail == nil || fail.Retry != 0 {
			t.Fatalf("stale password: %+v, want a failure to sign in", fail)
		}
	}
	if n := checks.Load() - before; n != 1 {
		t.Errorf("the same wrong password was checked %d times, want 1", n)
	}
	if u, fail := a.Authenticate(basicRequest("192.0.2.3", "alice", "right-password")); fail != nil || u != "alice" {
		t.Errorf("after one stale password resent: %q, %+v", u, fail)
	}
	l := logs.String()
	if n := strings.Count(l, "too many failed sign-ins; refusing the address"); n != 1 || !strings.Contains(l, "client_ip=192.0.2.1") {
		t.Errorf("%d warnings naming the address, want 1:\n%s", n, l)
	}
	for _, secret := range []string{"guess-", "right-password", "stale-password"} {
		if strings.Contains(l, secret) {
			t.Errorf("a password (%s) is in the log", secret)
		}
	}
}
