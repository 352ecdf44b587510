package audit

import (
	"context"
	"log/slog"
	"unicode/utf8"
)

// Names of the events of what crosses between a tab and its user.
const (
	EventDownload = "download"
	EventUpload   = "upload"
	// EventPrint is a page printed to PDF for the user, as a FileEvent.
	EventPrint = "print"
)

// Decisions of a FileEvent.
const (
	FileAllowed = "allowed"
	FileDenied  = "denied"
	// FileViewed is a download opened read-only in the isolated browser
	// (download: view): it did not reach the user.
	FileViewed = "viewed"
)

// FileEvent is one file that crossed, or was refused, between an isolated
// tab and its user: a download (remote page → user) or an upload.
type FileEvent struct {
	// Event is EventDownload or EventUpload.
	Event    string
	Tab      string
	ClientIP string
	User     string
	// URL is where a download came from, or the page an upload went to
	// (as it may be logged), Host its host.
	URL  string
	Host string
	// Name is the file's name as the user gets it, MIME its type, Size
	// its length in bytes and SHA256 its hash (hex; empty when the file
	// was refused before Glovebox had it all).
	Name   string
	MIME   string
	Size   int64
	SHA256 string
	// Decision is FileAllowed, FileDenied or FileViewed, Reason why in a few words
	// ("policy", "too large", "threat found", "scanner unavailable", …).
	Decision string
	Reason   string
	// Verdict is the scanner's: "clean", "infected", "error" (no verdict:
	// the file was refused), or "" when the rule does not scan; Threat
	// what it found and Scanner who answered.
	Verdict string
	Threat  string
	Scanner string
}

// File logs a download or an upload, and counts it by decision.
func (a *Audit) File(e FileEvent) {
	if a == nil {
		return
	}
	a.Metrics.add("glovebox_files_total", "Files that crossed between isolated tabs and users, or were refused, by direction and decision.", 1,
		"direction", e.Event, "decision", e.Decision)
	a.l.LogAttrs(context.Background(), slog.LevelInfo, e.Event,
		slog.String("tab", e.Tab),
		slog.String("client_ip", e.ClientIP),
		slog.String("user", e.User),
		slog.String("url", e.URL),
		slog.String("host", e.Host),
		slog.String("file_name", e.Name),
		slog.String("mime", e.MIME),
		slog.Int64("size", e.Size),
		slog.String("sha256", e.SHA256),
		slog.String("decision", e.Decision),
		slog.String("reason", e.Reason),
		slog.String("verdict", e.Verdict),
		slog.String("threat", e.Threat),
		slog.String("scanner", e.Scanner),
	)
}

// EventClipboard is the name of a clipboard event; ClipboardOut and
// ClipboardIn its directions.
const (
	EventClipboard = "clipboard"
	ClipboardOut   = "out" // remote page → user
	ClipboardIn    = "in"  // user → remote page
	ClipboardText  = "text"
	ClipboardImage = "image"
)

// MaxClipboardText bounds the text a clipboard event logs.
const MaxClipboardText = 4096

// ClipboardEvent is one copy out of, or paste into, an isolated tab. The
// text itself is logged only under Audit.ClipboardContent.
type ClipboardEvent struct {
	Tab, ClientIP, User, URL, Host string
	// Direction is ClipboardOut or ClipboardIn, Kind ClipboardText or
	// ClipboardImage, Size the text's or the image's bytes.
	Direction string
	Kind      string
	Size      int
	// Decision is FileAllowed or FileDenied; Reason is "policy" for a
	// denial, "isolated" for text kept between isolated tabs.
	Decision, Reason string
	// Text is what was copied or pasted (or refused).
	Text string
}

// Clipboard logs a copy or a paste, and counts it by direction and decision.
func (a *Audit) Clipboard(e ClipboardEvent) {
	if a == nil {
		return
	}
	a.Metrics.add("glovebox_clipboard_total", "Copies out of and pastes into isolated tabs, by direction and decision.", 1,
		"direction", e.Direction, "decision", e.Decision)
	attrs := []slog.Attr{
		slog.String("tab", e.Tab),
		slog.String("client_ip", e.ClientIP),
		slog.String("user", e.User),
		slog.String("url", e.URL),
		slog.String("host", e.Host),
		slog.String("direction", e.Direction),
		slog.String("kind", e.Kind),
		slog.Int("size", e.Size),
		slog.String("decision", e.Decision),
		slog.String("reason", e.Reason),
	}
	if a.ClipboardContent && e.Kind != ClipboardImage {
		text, cut := cutText(e.Text, MaxClipboardText)
		attrs = append(attrs, slog.String("text", text), slog.Bool("text_truncated", cut))
	}
	a.l.LogAttrs(context.Background(), slog.LevelInfo, EventClipboard, attrs...)
}

// cutText is s cut to at most n bytes at a character boundary, and whether
// it was cut.
func cutText(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], true
}
