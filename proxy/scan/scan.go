// Package scan hands files that cross between an isolated browser and its
// user (downloads, uploads) to a content scanner and returns its verdict.
// The scanner is reached by ICAP (RFC 3507), the protocol Squid and secure
// web gateways use for antivirus and DLP: RESPMOD for downloads, REQMOD for
// uploads. It imports no other Glovebox package.
package scan

import (
	"context"
	"errors"
	"io"
)

// Directions of a file.
const (
	Download = "download" // remote page → user
	Upload   = "upload"   // user → remote page
)

// File is one file to scan.
type File struct {
	// Direction is Download or Upload.
	Direction string
	// Name is the file's name (no directories), MIME its type, Size its
	// length in bytes.
	Name string
	MIME string
	Size int64
	// URL is where a download came from, or the page an upload goes to.
	URL string
	// Body is the file's content, Size bytes.
	Body io.Reader
}

// Verdict is the scanner's answer about a file.
type Verdict struct {
	// Clean says the scanner let the file through.
	Clean bool
	// Threat names what the scanner found (its own words, e.g.
	// "Eicar-Signature"), when not clean.
	Threat string
	// Scanner names the service that answered (its ICAP ISTag or URL),
	// for the audit event.
	Scanner string
}

// Scanner scans files.
type Scanner interface {
	// Scan reads f.Body and returns the verdict. An error means there is
	// no verdict (scanner down, timed out, bad answer): callers fail
	// closed and say why.
	Scan(ctx context.Context, f File) (Verdict, error)
}

// ErrNoScanner is the error of a scan asked for when no scanner is
// configured (scan.icap_url is empty).
var ErrNoScanner = errors.New("no scanner is configured (scan.icap_url)")
