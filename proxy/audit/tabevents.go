package audit

import (
	"context"
	"log/slog"
	"unicode/utf8"
)

// Names of the events of what happens inside a tab.
const (
	// EventNavigate is the remote page moving to another document or
	// history entry.
	EventNavigate = "tab_navigate"
	// EventDialog is a JavaScript dialog or HTTP sign-in of the remote
	// page, answered by the user.
	EventDialog = "dialog"
)

// maxTitle bounds a page title in an event.
const maxTitle = 512

// NavigateEvent is one navigation of a tab's remote page.
type NavigateEvent struct {
	Tab, ClientIP, User string
	// URL is where the page is now (as it may be logged), Host its host,
	// Title its title.
	URL, Host, Title string
	// How is how it got there: link, typed, form, reload, back_forward,
	// redirect or other.
	How string
}

// Navigate logs a navigation of a remote page.
func (a *Audit) Navigate(e NavigateEvent) {
	if a == nil {
		return
	}
	a.Metrics.add("glovebox_navigations_total", "Navigations of the isolated pages, by how.", 1, "how", e.How)
	title, _ := cutText(e.Title, maxTitle)
	if !utf8.ValidString(title) {
		title = ""
	}
	a.l.LogAttrs(context.Background(), slog.LevelInfo, EventNavigate,
		slog.String("tab", e.Tab),
		slog.String("client_ip", e.ClientIP),
		slog.String("user", e.User),
		slog.String("url", e.URL),
		slog.String("host", e.Host),
		slog.String("title", title),
		slog.String("how", e.How),
	)
}

// DialogEvent is the user's answer to a dialog of the remote page.
type DialogEvent struct {
	Tab, ClientIP, User string
	// URL is the page's (as it may be logged), Host its host.
	URL, Host string
	// Kind is alert, confirm, prompt, beforeunload or http_auth; Answer
	// accept or dismiss. What was typed is never logged.
	Kind, Answer string
}

// Dialog logs the user's answer to a dialog.
func (a *Audit) Dialog(e DialogEvent) {
	if a == nil {
		return
	}
	a.Metrics.add("glovebox_dialogs_total", "Dialogs of the isolated pages answered, by kind and answer.", 1,
		"kind", e.Kind, "answer", e.Answer)
	a.l.LogAttrs(context.Background(), slog.LevelInfo, EventDialog,
		slog.String("tab", e.Tab),
		slog.String("client_ip", e.ClientIP),
		slog.String("user", e.User),
		slog.String("url", e.URL),
		slog.String("host", e.Host),
		slog.String("kind", e.Kind),
		slog.String("answer", e.Answer),
	)
}
