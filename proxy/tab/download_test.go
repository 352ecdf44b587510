package tab

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

func TestSafeFileName(t *testing.T) {
	for _, tt := range []struct{ name, url, want string }{
		{"report.pdf", "", "report.pdf"},
		{"../../etc/passwd", "", "passwd"},
		{`..\..\Windows\evil.bat`, "", "evil.bat"},
		{"evil\u202etxt.exe", "", "eviltxt.exe"},
		{"a\x00b\x07c\nd.txt", "", "abcd.txt"},
		{"...hidden", "", "hidden"},
		{`what?<>|"*:.txt`, "", "what_______.txt"},
		{"", "http://a.test/dir/file%20name.zip?x=1", "file name.zip"},
		{"", "http://a.test/", "download"},
		{"../", "http://a.test/a/..%2F..%2Fb", "b"},
		{"\xff\xfe", "", "download"},
		{strings.Repeat("é", 300), "", strings.Repeat("é", maxNameBytes/2)},
	} {
		if got := safeFileName(tt.name, tt.url); got != tt.want {
			t.Errorf("safeFileName(%q, %q) = %q, want %q", tt.name, tt.url, got, tt.want)
		}
	}
}

func FuzzSafeFileName(f *testing.F) {
	f.Add("../a\x07b\u202e.txt", "http://a.test/x/y")
	f.Add("", "http://a.test/%2e%2e")
	f.Fuzz(func(t *testing.T, name, u string) {
		s := safeFileName(name, u)
		if s == "" || s == "." || s == ".." || strings.HasPrefix(s, ".") || len(s) > maxNameBytes || !utf8.ValidString(s) ||
			strings.ContainsAny(s, "/\\\x00") || strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0 {
			t.Fatalf("safeFileName(%q, %q) = %q", name, u, s)
		}
	})
}

// TestOffers: a file offered is handed once, to its owner only (another
// owner gets what an unknown key gets, and does not use it up); an expired
// offer is gone with its file; the tab's end removes its offers.
func TestOffers(t *testing.T) {
	m := newTestManager(t, blockingIsolator{}, nil)
	tb, err := m.Create(request("http://a.test/"), "192.0.2.1", "")
	if err != nil {
		t.Fatal(err)
	}
	newOffer := func() (string, string) {
		dir, err := m.filesDir()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "f"+randomHex(4))
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		return m.offer(&Offer{tab: tb, owner: tb.owner, path: p, Name: "f", Size: 1}), p
	}
	key, p := newOffer()
	if key == "" {
		t.Fatal("no key for a live tab's offer")
	}
	if _, err := m.TakeOffer(key, "someone else"); !errors.Is(err, ErrNoFile) {
		t.Fatalf("TakeOffer by another owner: %v, want ErrNoFile", err)
	}
	o, err := m.TakeOffer(key, tb.owner)
	if err != nil {
		t.Fatalf("TakeOffer by the owner: %v", err)
	}
	o.Done(true)
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the delivered file is still there: %v", err)
	}
	if _, err := m.TakeOffer(key, tb.owner); !errors.Is(err, ErrNoFile) {
		t.Fatalf("TakeOffer again: %v, want ErrNoFile", err)
	}

	key, p = newOffer()
	m.mu.Lock()
	m.offers[key].expires = time.Now().Add(-time.Second)
	m.mu.Unlock()
	m.dropOffers(tb, false)
	if _, err := m.TakeOffer(key, tb.owner); !errors.Is(err, ErrNoFile) {
		t.Errorf("an expired offer: %v, want ErrNoFile", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the expired file is still there: %v", err)
	}

	key, p = newOffer()
	tb.End("test")
	<-tb.ctx.Done()
	waitGone := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(waitGone) {
			t.Fatal("the ended tab's offered file is still there")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := m.TakeOffer(key, tb.owner); !errors.Is(err, ErrNoFile) {
		t.Errorf("an ended tab's offer: %v, want ErrNoFile", err)
	}
	if k, _ := newOffer(); k != "" {
		t.Error("an ended tab got an offer")
	}
}

// TestTakeRefusesLinks: a browser that puts a link, a FIFO or a file too
// large where its download was gets nothing out of Glovebox.
func TestTakeRefusesLinks(t *testing.T) {
	m := newTestManager(t, blockingIsolator{}, nil)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("host secret"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(secret, link)
	if _, err := m.take(link, 0); err == nil {
		t.Error("take followed a symlink")
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.take(fifo, 0); err == nil {
		t.Error("take read a FIFO")
	}
	if _, err := m.take(secret, 5); !errors.Is(err, errTooLarge) {
		t.Errorf("take of 11 bytes with a limit of 5: %v, want errTooLarge", err)
	}
	f, err := m.take(secret, 0)
	if err != nil || f.size != 11 || f.mime != "text/plain" || len(f.sha256) != 64 {
		t.Fatalf("take = %+v, %v", f, err)
	}
	os.Remove(f.path)
}
