package auth

import (
	"bytes"
	"errors"
	"maps"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// FuzzHtpasswd: whatever an htpasswd file holds, parsing it does not panic,
// gives the same answer twice, names the file in every error, and accepts
// only bcrypt entries of cost 5 to 14, one per entry line, each as written.
// Seeds are in testdata/fuzz/FuzzHtpasswd.
func FuzzHtpasswd(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		users, err := parseHtpasswd("htpasswd", raw)
		again, err2 := parseHtpasswd("htpasswd", raw)
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() || !maps.EqualFunc(users, again, bytes.Equal) {
			t.Fatalf("two parses differ: %v %v / %v %v", users, err, again, err2)
		}
		if err != nil {
			if users != nil {
				t.Errorf("users %v with the error %v", users, err)
			}
			if !strings.HasPrefix(err.Error(), "htpasswd:") {
				t.Errorf("the error does not name the file: %v", err)
			}
			if errors.Is(err, ErrBcryptCost) && !strings.Contains(err.Error(), "want 5 to 14") {
				t.Errorf("a cost error does not say what is wanted: %v", err)
			}
			return
		}
		entries := 0
		for _, line := range strings.Split(string(raw), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				entries++
			}
		}
		if len(users) != entries {
			t.Errorf("%d users from %d entry lines", len(users), entries)
		}
		for u, h := range users {
			if u == "" || strings.Contains(u, ":") {
				t.Errorf("user name %q", u)
			}
			cost, err := bcrypt.Cost(h)
			if err != nil || cost < minBcryptCost || cost > maxBcryptCost || !bytes.HasPrefix(h, []byte("$2")) {
				t.Errorf("user %q accepted with hash %q (cost %d, %v)", u, h, cost, err)
			}
			if !bytes.Contains(raw, []byte(u+":"+string(h))) {
				t.Errorf("user %q's entry is not as written", u)
			}
		}
	})
}
