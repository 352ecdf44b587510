package policy

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// TestControls: a rule's controls win over policy.defaults, which win over
// DefaultControls, field by field; every decision carries them all.
func TestControls(t *testing.T) {
	p, err := New(Config{
		Defaults: Controls{Download: FileDeny, UploadMaxMB: 5},
		Rules: []Rule{
			{Name: "suspect", Domain: "suspect.example", Action: ActionIsolate, Controls: Controls{Keyboard: FileDeny, Download: FileView}},
			{Name: "plain", Domain: "plain.example", Action: ActionIsolate},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	decide := func(host string) Controls {
		return p.Decide(&url.URL{Scheme: "https", Host: host, Path: "/"}, "").Controls
	}
	want := DefaultControls
	want.Download, want.UploadMaxMB = FileDeny, 5
	if got := decide("other.example"); got != want {
		t.Errorf("default action's controls %+v, want %+v", got, want)
	}
	if got := decide("plain.example"); got != want {
		t.Errorf("a rule that sets none: %+v, want %+v", got, want)
	}
	want.Keyboard, want.Download = FileDeny, FileView
	if got := decide("www.suspect.example"); got != want {
		t.Errorf("a rule that sets two: %+v, want %+v", got, want)
	}
	if decide("www.suspect.example").Recorded() || p.Records() {
		t.Error("recorded without a rule that says record")
	}
	if !p.Uses(FileView) || !p.Uses(FileDeny) || !p.Uses(FileScan) || p.Uses(FileAllow) {
		t.Errorf("Uses: view %v deny %v scan %v allow %v, want true true true false",
			p.Uses(FileView), p.Uses(FileDeny), p.Uses(FileScan), p.Uses(FileAllow))
	}
}

// TestRecordControl: record is off by default; a rule or policy.defaults
// turns it on.
func TestRecordControl(t *testing.T) {
	p, err := New(Config{
		Rules: []Rule{
			{Name: "soc", Domain: "watched.example", Action: ActionIsolate, Controls: Controls{Record: true}},
			{Name: "plain", Domain: "plain.example", Action: ActionIsolate},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(p *Policy, host string) bool {
		return p.Decide(&url.URL{Scheme: "https", Host: host, Path: "/"}, "").Controls.Recorded()
	}
	if !rec(p, "www.watched.example") || rec(p, "plain.example") || rec(p, "other.example") || !p.Records() {
		t.Errorf("record: watched %v plain %v default %v Records %v, want true false false true",
			rec(p, "www.watched.example"), rec(p, "plain.example"), rec(p, "other.example"), p.Records())
	}
	p, err = New(Config{
		Defaults: Controls{Record: true},
		Rules:    []Rule{{Name: "news", Domain: "news.example", Action: ActionIsolate, Controls: Controls{Keyboard: FileDeny}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !rec(p, "other.example") || !rec(p, "news.example") || !p.Records() {
		t.Errorf("defaults record: other %v news %v, want true true", rec(p, "other.example"), rec(p, "news.example"))
	}
	if _, err := New(Config{Rules: []Rule{{Name: "a", Host: "a.example", Action: ActionAllow, Controls: Controls{Record: true}}}}); err == nil ||
		!strings.Contains(err.Error(), "record controls apply only to isolate rules") {
		t.Errorf("record on an allow rule: %v", err)
	}
}

func TestControlsErrors(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Defaults: Controls{Download: "scanned"}}, `policy.defaults: download "scanned": want allow, deny, scan, view`},
		{Config{Defaults: Controls{Upload: FileView}}, `policy.defaults: upload "view": want allow, deny, scan`},
		{Config{Defaults: Controls{ClipboardOut: "yes"}}, `clipboard_out "yes"`},
		{Config{Defaults: Controls{DownloadMaxMB: -1}}, `download_max_mb -1`},
		{Config{Rules: []Rule{{Name: "x", Host: "a.example", Action: ActionIsolate, Controls: Controls{Keyboard: "no"}}}}, `policy.rules[0] (x): keyboard "no": want allow, deny`},
		{Config{Rules: []Rule{{Name: "y", Host: "a.example", Action: ActionAllow, Controls: Controls{Download: FileDeny}}}}, `policy.rules[0] (y): clipboard, download, upload, print, keyboard and record controls apply only to isolate rules`},
	} {
		_, err := New(tc.c)
		if err == nil || !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one with %q", tc.c, err, tc.want)
		}
	}
}
