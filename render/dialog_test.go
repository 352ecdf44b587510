package render

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/glovebox/glovebox/internal/testenv"
)

func TestCut(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 3, "hel"},
		{"héllo", 2, "h"}, // é is two bytes: not cut in half
		{"日本", 4, "日"},
		{"", 0, ""},
	} {
		if got := cut(tt.in, tt.n); got != tt.want {
			t.Errorf("cut(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// TestDialogs: the page waits for the answer, and gets it.
func TestDialogs(t *testing.T) {
	tab, s := openTab(t, 400, 300, 1, "/alert")
	ev := waitEvent(t, s, func(ev Event) bool { return ev.Type == EventDialog })
	if ev.Message != "hello" || ev.Dialog != "alert" || ev.ID == "" || ev.URL != server.URL+"/alert" {
		t.Fatalf("first dialog = %+v, want the alert", ev)
	}
	if p := tab.Pending(); len(p) != 1 || p[0].ID != ev.ID {
		t.Errorf("Pending() = %+v, want the alert", p)
	}
	if err := tab.AnswerDialog(t.Context(), "d999", true, ""); !errors.Is(err, ErrNoDialog) {
		t.Errorf("answer to another id: err = %v, want ErrNoDialog", err)
	}
	if err := tab.AnswerDialog(t.Context(), ev.ID, true, ""); err != nil {
		t.Fatalf("AnswerDialog: %v", err)
	}
	waitEvent(t, s, func(e Event) bool { return e.Type == EventDialogClosed && e.ID == ev.ID })
	ev2 := waitEvent(t, s, func(ev Event) bool { return ev.Type == EventDialog })
	if ev2.Message != "sure?" || ev2.Dialog != "confirm" || ev2.ID == ev.ID {
		t.Fatalf("second dialog = %+v, want the confirm with a new id", ev2)
	}
	if err := tab.AnswerDialog(t.Context(), ev.ID, true, ""); !errors.Is(err, ErrNoDialog) {
		t.Errorf("second answer to the alert: err = %v, want ErrNoDialog", err)
	}
	if err := tab.AnswerDialog(t.Context(), ev2.ID, true, ""); err != nil {
		t.Fatalf("AnswerDialog: %v", err)
	}
	waitEvent(t, s, func(ev Event) bool { return ev.Type == EventTitle && ev.Title == "confirm:true" })
	if p := tab.Pending(); len(p) != 0 {
		t.Errorf("Pending() after the answers = %+v", p)
	}
}

func TestPromptDialog(t *testing.T) {
	for _, tt := range []struct {
		name   string
		accept bool
		text   string
		title  string
	}{
		{"typed", true, "héllo ü 日本 😀", "prompt:héllo ü 日本 😀"},
		{"empty", true, "", "prompt:"},
		{"cancel", false, "ignored", "prompt:null"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tab, s := openTab(t, 400, 300, 1, "/prompt")
			ev := waitEvent(t, s, func(ev Event) bool { return ev.Type == EventDialog })
			if ev.Dialog != "prompt" || ev.Message != "name?" || ev.Default != "dflt" {
				t.Fatalf("dialog = %+v, want the prompt", ev)
			}
			if err := tab.AnswerDialog(t.Context(), ev.ID, true, strings.Repeat("x", MaxDialogText+1)); !errors.Is(err, ErrBadInput) {
				t.Errorf("a long answer: err = %v, want ErrBadInput", err)
			}
			if err := tab.AnswerDialog(t.Context(), ev.ID, tt.accept, tt.text); err != nil {
				t.Fatalf("AnswerDialog: %v", err)
			}
			waitEvent(t, s, func(ev Event) bool { return ev.Type == EventTitle && ev.Title == tt.title })
		})
	}
}

// TestDialogBounds: a long message reaches the user cut, as UTF-8.
func TestDialogBounds(t *testing.T) {
	tab, s := openTab(t, 400, 300, 1, "/long-alert")
	ev := waitEvent(t, s, func(ev Event) bool { return ev.Type == EventDialog })
	if len(ev.Message) > MaxDialogText || len(ev.Message) < MaxDialogText-1 || !utf8.ValidString(ev.Message) {
		t.Errorf("message of %d bytes (valid UTF-8: %v), want %d at most, cut at a character", len(ev.Message), utf8.ValidString(ev.Message), MaxDialogText)
	}
	if err := tab.AnswerDialog(t.Context(), ev.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, s, func(ev Event) bool { return ev.Type == EventTitle && ev.Title == "after" })
}

// TestDialogClosedByNavigation: a navigation while a dialog is open closes
// it, and the tab says so.
func TestDialogClosedByNavigation(t *testing.T) {
	tab, s := openTab(t, 400, 300, 1, "/alert-once")
	ev := waitEvent(t, s, func(ev Event) bool { return ev.Type == EventDialog })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := tab.Navigate(ctx, server.URL+"/title"); err != nil {
		t.Fatalf("Navigate: %v", err)
	}
	waitEvent(t, s, func(e Event) bool { return e.Type == EventDialogClosed && e.ID == ev.ID })
	if err := tab.AnswerDialog(t.Context(), ev.ID, true, ""); !errors.Is(err, ErrNoDialog) {
		t.Errorf("answer after the navigation: err = %v, want ErrNoDialog", err)
	}
	if p := tab.Pending(); len(p) != 0 {
		t.Errorf("Pending() = %+v, want none", p)
	}
}

func TestAuth(t *testing.T) {
	for _, tt := range []struct {
		name       string
		user, pass string
		cancel     bool
		title      string
	}{
		{"signed in", "zoë", "pa ss", false, "signed in"},
		{"cancel", "", "", true, "denied"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tab, s := openTab(t, 400, 300, 1, "")
			// A directory of its own: Chromium keeps credentials for the
			// browser's life.
			dir := "basic-" + strings.ReplaceAll(tt.name, " ", "-")
			u := server.URL + "/" + dir + "/page"
			navErr := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				navErr <- tab.Navigate(ctx, u)
			}()
			ev := waitEvent(t, s, func(ev Event) bool { return ev.Type == EventAuth })
			if ev.URL != u || ev.Realm != "Test Realm "+dir || !strings.EqualFold(ev.Scheme, "basic") || ev.ID == "" {
				t.Fatalf("sign-in = %+v", ev)
			}
			if p := tab.Pending(); len(p) != 1 || p[0].ID != ev.ID {
				t.Errorf("Pending() = %+v, want the sign-in", p)
			}
			if err := tab.AnswerAuth(t.Context(), ev.ID, "x", strings.Repeat("p", MaxAuthField+1), false); !errors.Is(err, ErrBadInput) {
				t.Errorf("a long password: err = %v, want ErrBadInput", err)
			}
			if err := tab.AnswerAuth(t.Context(), ev.ID, tt.user, tt.pass, tt.cancel); err != nil {
				t.Fatalf("AnswerAuth: %v", err)
			}
			if err := tab.AnswerAuth(t.Context(), ev.ID, tt.user, tt.pass, tt.cancel); !errors.Is(err, ErrNoDialog) {
				t.Errorf("a second answer: err = %v, want ErrNoDialog", err)
			}
			waitEvent(t, s, func(ev Event) bool { return ev.Type == EventTitle && ev.Title == tt.title })
			if err := <-navErr; err != nil {
				t.Errorf("Navigate: %v", err)
			}
		})
	}
}

// TestAuthOff: without Options.HTTPAuth nothing is intercepted, and a page
// behind HTTP authentication fails to load, as headless Chromium does.
func TestAuthOff(t *testing.T) {
	if skipReason != "" {
		testenv.Missing(t, "%s", skipReason)
	}
	s := newSink()
	tab, err := Open(t.Context(), browser.wsURL, Options{Width: 400, Height: 300, OnEvent: s.onEvent, OnFrame: s.onFrame, Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := tab.Navigate(ctx, server.URL+"/basic-off/page"); !errors.Is(err, ErrNavigation) {
		t.Errorf("Navigate: err = %v, want ErrNavigation", err)
	}
	for len(s.events) > 0 {
		if ev := <-s.events; ev.Type == EventAuth {
			t.Errorf("sign-in asked without HTTPAuth: %+v", ev)
		}
	}
}
