package policy

import (
	"fmt"
	"strings"
)

// What may cross between the isolated browser and the user, per rule: the
// clipboard each way, files each way, printing and typing. A rule's
// controls apply to the tabs of the sites it isolates; a control a rule
// leaves unset is policy.defaults', and one that is unset there too is
// DefaultControls'.

// Clipboard decisions.
const (
	ClipboardAllow    = "allow"
	ClipboardDeny     = "deny"
	ClipboardIsolated = "isolated" // between isolated tabs only, never to or from the user's own clipboard
)

// File decisions (download, upload; print is allow or deny).
const (
	FileAllow = "allow"
	FileDeny  = "deny"
	FileScan  = "scan" // allowed only when the scanner (scan.icap_url) passes it
	FileView  = "view" // downloads only: opened read-only in the isolated browser, nothing reaches the user
)

// Controls are a rule's crossing controls. The zero value of a field is
// "not set here".
type Controls struct {
	// ClipboardOut is remote page → user: allow, deny or isolated.
	ClipboardOut string `mapstructure:"clipboard_out"`
	// ClipboardIn is user → remote page: allow, deny or isolated.
	ClipboardIn string `mapstructure:"clipboard_in"`
	// Download is allow, deny, scan or view.
	Download string `mapstructure:"download"`
	// Upload is allow, deny or scan.
	Upload string `mapstructure:"upload"`
	// Print is allow (the page printed to PDF, then delivered as a
	// download under Download's decision) or deny.
	Print string `mapstructure:"print"`
	// Keyboard is allow or deny (read-only browsing: the page can be
	// looked at, scrolled and clicked, not typed into).
	Keyboard string `mapstructure:"keyboard"`
	// DownloadMaxMB and UploadMaxMB bound a file's size, in MiB.
	DownloadMaxMB int `mapstructure:"download_max_mb"`
	UploadMaxMB   int `mapstructure:"upload_max_mb"`
	// Record records the tab's video (and sound) as its user saw it, in a
	// file of recording.dir that tab_end names. Off by default; true in
	// policy.defaults records every isolated tab (a rule cannot turn it
	// off again: a plain bool, as the defaults' other keys are values).
	Record bool `mapstructure:"record"`
}

// Recorded reports whether c says the tab is recorded.
func (c Controls) Recorded() bool { return c.Record }

// DefaultControls are what a security team would pick for sites it
// isolates: the clipboard works both ways (reading a page and quoting it is
// the point), files cross only when the scanner passes them (with no
// scanner configured, none do), printing is a download, typing works,
// and files are at most 100 MiB.
var DefaultControls = Controls{
	ClipboardOut:  ClipboardAllow,
	ClipboardIn:   ClipboardAllow,
	Download:      FileScan,
	Upload:        FileScan,
	Print:         FileAllow,
	Keyboard:      FileAllow,
	DownloadMaxMB: 100,
	UploadMaxMB:   100,
}

// over is c with the fields set in o replacing c's.
func (c Controls) over(o Controls) Controls {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.ClipboardOut, o.ClipboardOut)
	set(&c.ClipboardIn, o.ClipboardIn)
	set(&c.Download, o.Download)
	set(&c.Upload, o.Upload)
	set(&c.Print, o.Print)
	set(&c.Keyboard, o.Keyboard)
	if o.DownloadMaxMB != 0 {
		c.DownloadMaxMB = o.DownloadMaxMB
	}
	if o.UploadMaxMB != 0 {
		c.UploadMaxMB = o.UploadMaxMB
	}
	if o.Record {
		c.Record = true
	}
	return c
}

// isSet reports whether any control is set.
func (c Controls) isSet() bool { return c != Controls{} }

// check reports the first bad control of c, as where names it.
func (c Controls) check(where string) error {
	one := func(key, v string, ok ...string) error {
		if v == "" {
			return nil
		}
		for _, o := range ok {
			if v == o {
				return nil
			}
		}
		return fmt.Errorf("%w: %s: %s %q: want %s", ErrPolicy, where, key, v, strings.Join(ok, ", "))
	}
	for _, err := range []error{
		one("clipboard_out", c.ClipboardOut, ClipboardAllow, ClipboardDeny, ClipboardIsolated),
		one("clipboard_in", c.ClipboardIn, ClipboardAllow, ClipboardDeny, ClipboardIsolated),
		one("download", c.Download, FileAllow, FileDeny, FileScan, FileView),
		one("upload", c.Upload, FileAllow, FileDeny, FileScan),
		one("print", c.Print, FileAllow, FileDeny),
		one("keyboard", c.Keyboard, FileAllow, FileDeny),
	} {
		if err != nil {
			return err
		}
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"download_max_mb", c.DownloadMaxMB}, {"upload_max_mb", c.UploadMaxMB}} {
		if n.v < 0 || n.v > 1<<20 {
			return fmt.Errorf("%w: %s: %s %d: want 1 to %d (0 or unset: the default)", ErrPolicy, where, n.key, n.v, 1<<20)
		}
	}
	return nil
}

// Uses reports whether any rule or the defaults decide v for a file
// crossing (download, upload or print): the wiring checks that scan has a
// scanner.
func (p *Policy) Uses(v string) bool {
	if p.defaults.Download == v || p.defaults.Upload == v {
		return true
	}
	for _, r := range p.rules {
		if r.action == ActionIsolate && (r.controls.Download == v || r.controls.Upload == v) {
			return true
		}
	}
	return false
}

// Records reports whether any isolate rule or the defaults record tabs:
// the wiring then prepares recording.dir.
func (p *Policy) Records() bool {
	if p.defaults.Recorded() {
		return true
	}
	for _, r := range p.rules {
		if r.action == ActionIsolate && r.controls.Recorded() {
			return true
		}
	}
	return false
}
