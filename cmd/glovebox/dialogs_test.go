package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The test site's sign-in: /dialogs-auth wants these, in a realm of its own.
const (
	dialogsUser  = "alice"
	dialogsPass  = "correct horse 42"
	dialogsRealm = "Glovebox test realm"
)

// dialogsBasicAuth checks the test site's Basic credentials; without them
// it answers 401 with a red page that reports that it was shown.
func dialogsBasicAuth(w http.ResponseWriter, r *http.Request) bool {
	if u, p, ok := r.BasicAuth(); ok && u == dialogsUser && p == dialogsPass {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="`+dialogsRealm+`"`)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprint(w, `<!doctype html><title>401</title><style>html,body{margin:0;height:100%;background:#c80000}</style>`+
		`<script>fetch('/report?event=auth', { method: 'POST', body: 'denied' })</script>`)
	return false
}

// dialogView is what the user sees of the landing page's dialogs.
type dialogView struct {
	Dialog       bool   `json:"dialog"` // the JavaScript dialog is shown
	Origin       string `json:"origin"`
	Text         string `json:"text"`
	TextElements int    `json:"textElements"` // elements inside the text: there must be none
	Input        bool   `json:"input"`
	Value        string `json:"value"`
	Cancel       bool   `json:"cancel"`
	OK           string `json:"ok"`
	Auth         bool   `json:"auth"` // the sign-in is shown
	AuthText     string `json:"authText"`
}

func readDialog(ctx context.Context) (dialogView, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[dialogView](`(() => {
		const $ = (id) => document.getElementById(id);
		const d = $('glovebox-dialog'), a = $('glovebox-auth');
		if (!d || !a) return {};
		return {
			dialog: !d.hidden, origin: d.querySelector('.glovebox-origin').textContent,
			text: $('glovebox-dialog-text').textContent, textElements: $('glovebox-dialog-text').children.length,
			input: !$('glovebox-dialog-input').hidden, value: $('glovebox-dialog-input').value,
			cancel: !$('glovebox-dialog-cancel').hidden, ok: $('glovebox-dialog-ok').textContent,
			auth: !a.hidden, authText: $('glovebox-auth-text').textContent,
		};
	})()`))
}

// waitDialog waits until the user's landing page shows the dialog (or, with
// auth, the sign-in) and returns what it shows.
func waitDialog(t *testing.T, ctx context.Context, auth bool) dialogView {
	t.Helper()
	var v dialogView
	waitFor(t, 60*time.Second, "the dialog in the user's page", func() (bool, string) {
		var err error
		v, err = readDialog(ctx)
		if err != nil {
			return false, err.Error()
		}
		return (auth && v.Auth) || (!auth && v.Dialog), fmt.Sprintf("%+v", v)
	})
	return v
}

// waitDialogGone waits until no dialog is shown.
func waitDialogGone(t *testing.T, ctx context.Context) {
	t.Helper()
	waitFor(t, 60*time.Second, "the dialog to close", func() (bool, string) {
		v, err := readDialog(ctx)
		if err != nil {
			return false, err.Error()
		}
		return !v.Dialog && !v.Auth, fmt.Sprintf("%+v", v)
	})
}

// openUserTab opens u in a new tab of the user's browser and waits for the
// remote page's first colour.
func openUserTab(t *testing.T, bctx context.Context, u string, first rgb) context.Context {
	t.Helper()
	tctx, cancel := chromedp.NewContext(bctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("navigate the user's browser: %v", err)
	}
	if first != (rgb{}) {
		waitForColour(t, tctx, 600, 400, first, 60*time.Second)
	}
	return tctx
}

func clickSelector(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
}

func userType(t *testing.T, ctx context.Context, sel, text string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(sel), text)); err != nil {
		t.Fatalf("type into %s: %v", sel, err)
	}
}

// The test pages' colours (blue is the popups tests' too).
var (
	green  = rgb{0, 160, 0}
	red    = rgb{200, 0, 0}
	blue   = rgb{0, 0, 200}
	purple = rgb{200, 0, 200}
)

// TestDialogs: the remote page's confirm, prompt and alert appear as modal
// dialogs in the user's landing page, and the user's answer is what the
// remote page gets.
func TestDialogs(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	bctx := userBrowser(t, g.addr)

	for _, tt := range []struct {
		name, kind string
		ok         bool   // OK, else Cancel
		typed      string // into a prompt, after clearing its default
		want       string // what the remote page reports
	}{
		{"confirm OK", "confirm", true, "", "true"},
		{"confirm Cancel", "confirm", false, "", "false"},
		{"prompt typed", "prompt", true, "héllo ü 日本 😀", `"héllo ü 日本 😀"`},
		{"prompt default", "prompt", true, "", `"default name"`},
		{"prompt Cancel", "prompt", false, "ignored", "null"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tctx := openUserTab(t, bctx, site.URL+"/dialogs?kind="+tt.kind, green)
			if err := chromedp.Do(tctx, chromedp.MouseClickXY(600, 400)); err != nil {
				t.Fatal(err)
			}
			v := waitDialog(t, tctx, false)
			host := strings.TrimPrefix(site.URL, "http://")
			if v.Origin != host+" says" || !v.Cancel || v.OK != "OK" {
				t.Errorf("dialog shows %+v, want %q with OK and Cancel", v, host+" says")
			}
			switch tt.kind {
			case "confirm":
				if v.Text != "Proceed with the order?" || v.Input {
					t.Errorf("confirm shows %+v", v)
				}
			case "prompt":
				if v.Text != "Your name?" || !v.Input || v.Value != "default name" {
					t.Errorf("prompt shows %+v, want its text and default", v)
				}
			}
			if tt.typed != "" {
				if err := chromedp.Do(tctx, chromedp.Clear(chromedp.CSS("#glovebox-dialog-input"))); err != nil {
					t.Fatal(err)
				}
				userType(t, tctx, "#glovebox-dialog-input", tt.typed)
			}
			if tt.ok {
				clickSelector(t, tctx, "#glovebox-dialog-ok")
			} else {
				clickSelector(t, tctx, "#glovebox-dialog-cancel")
			}
			waitReport(t, site, tt.kind, tt.want)
			waitDialogGone(t, tctx)
			// The page went on: the user sees its red.
			waitForColour(t, tctx, 600, 400, red, 60*time.Second)
			// The answer is audited, never what was typed.
			answer := map[bool]string{true: "accept", false: "dismiss"}[tt.ok]
			var ev map[string]any
			for _, e := range g.audit.events() {
				if e["event"] == "dialog" && e["kind"] == tt.kind && strings.Contains(fmt.Sprint(e["url"]), "kind="+tt.kind) {
					ev = e // the last: this subtest's
				}
			}
			if ev == nil || ev["answer"] != answer || ev["tab"] == "" || ev["host"] != "127.0.0.1" {
				t.Errorf("dialog event %v, want kind %s answer %s", ev, tt.kind, answer)
			}
			if tt.typed != "" && strings.Contains(g.audit.String(), tt.typed) {
				t.Errorf("what the user typed into the prompt is in the audit log")
			}
		})
	}

	t.Run("alert", func(t *testing.T) {
		// The alert opens as the page loads, before the landing page may
		// be attached: it waits for the user.
		tctx := openUserTab(t, bctx, site.URL+"/dialogs?kind=alert", rgb{})
		v := waitDialog(t, tctx, false)
		if v.Text != "Saved <b>42</b> & done" || v.TextElements != 0 || v.Cancel || v.Input || v.OK != "OK" {
			t.Errorf("alert shows %+v, want its text as text and OK alone", v)
		}
		if got := site.lastReport("alert"); got != "" {
			t.Fatalf("the remote page went on before the user's OK: %q", got)
		}
		clickSelector(t, tctx, "#glovebox-dialog-ok")
		waitReport(t, site, "alert", "after alert")
		waitDialogGone(t, tctx)
		waitForColour(t, tctx, 600, 400, red, 60*time.Second)
	})
}

// TestDialogBeforeUnload: leaving a page that asks first shows "Leave
// site?"; Cancel stays, Leave goes.
func TestDialogBeforeUnload(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	bctx := userBrowser(t, g.addr)
	tctx := openUserTab(t, bctx, site.URL+"/dialogs-leave", green)

	if err := chromedp.Do(tctx, chromedp.MouseClickXY(600, 400)); err != nil {
		t.Fatal(err)
	}
	v := waitDialog(t, tctx, false)
	if v.Origin != "Leave site?" || v.OK != "Leave" || !v.Cancel || v.Input {
		t.Errorf("beforeunload shows %+v", v)
	}
	waitReport(t, site, "beforeunload", "1")
	clickSelector(t, tctx, "#glovebox-dialog-cancel")
	waitDialogGone(t, tctx)

	// The page stayed: its link asks again.
	if err := chromedp.Do(tctx, chromedp.MouseClickXY(600, 400)); err != nil {
		t.Fatal(err)
	}
	waitDialog(t, tctx, false)
	waitReport(t, site, "beforeunload", "2")
	if loc, _ := chromedp.Run(tctx, chromedp.Location()); loc != site.URL+"/dialogs-leave" {
		t.Errorf("the user's address bar is %s while the page stays", loc)
	}
	clickSelector(t, tctx, "#glovebox-dialog-ok")
	waitFor(t, 60*time.Second, "the user's address bar to follow the remote page", func() (bool, string) {
		loc, _ := chromedp.Run(tctx, chromedp.Location())
		return loc == site.URL+"/next", loc
	})
	waitForColour(t, tctx, 600, 400, blue, 60*time.Second)
	waitDialogGone(t, tctx)
}

// TestDialogHTTPAuth: a site that asks for Basic authentication gets a
// sign-in dialog; what the user types signs in, Cancel shows the site's 401
// page. The password is not in the audit log.
func TestDialogHTTPAuth(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	bctx := userBrowser(t, g.addr)

	t.Run("sign in", func(t *testing.T) {
		tctx := openUserTab(t, bctx, site.URL+"/dialogs-auth", rgb{})
		v := waitDialog(t, tctx, true)
		host := strings.TrimPrefix(site.URL, "http://")
		if !strings.Contains(v.AuthText, host) || !strings.Contains(v.AuthText, dialogsRealm) {
			t.Errorf("sign-in says %q, want the host %s and the realm", v.AuthText, host)
		}
		userType(t, tctx, "#glovebox-auth-user", dialogsUser)
		userType(t, tctx, "#glovebox-auth-pass", dialogsPass)
		clickSelector(t, tctx, "#glovebox-auth-ok")
		waitReport(t, site, "auth", "signed in")
		waitForColour(t, tctx, 600, 400, purple, 60*time.Second)
		waitDialogGone(t, tctx)
	})

	t.Run("cancel", func(t *testing.T) {
		tctx := openUserTab(t, bctx, site.URL+"/dialogs-auth", rgb{})
		waitDialog(t, tctx, true)
		userType(t, tctx, "#glovebox-auth-user", "mallory")
		clickSelector(t, tctx, "#glovebox-auth-cancel")
		waitReport(t, site, "auth", "denied")
		waitForColour(t, tctx, 600, 400, red, 60*time.Second)
		waitDialogGone(t, tctx)
	})

	if strings.Contains(g.audit.String(), dialogsPass) {
		t.Errorf("the password is in the audit log")
	}
}
