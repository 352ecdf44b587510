package tab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/scan"
	"github.com/glovebox/glovebox/render"
)

// Uploads. A file chooser the remote page opens (render.EventFileChooser)
// becomes the user's own file picker in the landing page, which sends the
// chosen files to /.glovebox/api/tabs/{token}/upload?chooser=ID. Glovebox
// bounds, hashes and (when the rule says scan) scans each, then puts the
// allowed ones in the browser's files directory, each in a directory of
// its own so that it keeps its name, and gives them to the remote input.
// They stay there, where the page may still read them, until the tab ends.

// UploadResult is what became of one uploaded file.
type UploadResult struct {
	Name     string `json:"name"`
	Allowed  bool   `json:"allowed"`
	Message  string `json:"message,omitempty"`
	Size     int64  `json:"size"`
	decision string
}

// ErrUploadDenied is the error of an upload the tab's rule does not allow.
var ErrUploadDenied = errors.New("uploads are not allowed on this site")

// onFileChooser offers the user a file picker for the remote page's, or
// refuses it under upload: deny.
func (t *Tab) onFileChooser(fc *render.FileChooser) {
	if fc == nil {
		return
	}
	if t.Controls().Upload == policy.FileDeny {
		t.page.CancelChooser(fc.ID)
		t.auditUpload(&UploadResult{}, "", "", audit.FileDenied, "policy", scan.Verdict{}, "")
		t.notice("Uploads are not allowed on this site.")
		return
	}
	t.send(serverMsg{T: "chooser", ID: strconv.Itoa(fc.ID), Multiple: fc.Multiple, Accept: fc.Accept})
}

func (t *Tab) auditUpload(r *UploadResult, sum, mt, decision, reason string, v scan.Verdict, verdict string) {
	t.m.audit.File(audit.FileEvent{Event: audit.EventUpload, Tab: t.id, ClientIP: t.clientIP, User: t.user,
		URL: logURLOf(t.page.URL()), Host: t.host, Name: r.Name, MIME: mt, Size: r.Size, SHA256: sum,
		Decision: decision, Reason: reason, Verdict: verdict, Threat: v.Threat, Scanner: v.Scanner})
}

// Upload takes the files of the multipart body mr (its "file" parts) for
// the remote page's file chooser, and gives those allowed to it.
func (t *Tab) Upload(ctx context.Context, chooser int, mr *multipart.Reader) ([]UploadResult, error) {
	results, paths, err := t.receive(ctx, mr)
	if err != nil {
		return results, err
	}
	if len(paths) == 0 {
		t.page.CancelChooser(chooser)
		return results, nil
	}
	if err := t.page.SetChooserFiles(ctx, chooser, paths); err != nil {
		return results, err
	}
	return results, nil
}

// Drop takes the files of the multipart body mr, as Upload does, that the
// user dropped on the video at (x, y) of the remote viewport, and drops
// those allowed on the remote page there.
func (t *Tab) Drop(ctx context.Context, x, y float64, mr *multipart.Reader) ([]UploadResult, error) {
	results, paths, err := t.receive(ctx, mr)
	if err != nil || len(paths) == 0 {
		return results, err
	}
	if err := t.page.DropFiles(ctx, x, y, paths); err != nil {
		if errors.Is(err, render.ErrBadInput) {
			return results, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		return results, err
	}
	return results, nil
}

// receive checks the files of mr under upload's decision and puts the
// allowed ones where the browser reads them: what became of each, and the
// paths of the allowed ones as the browser sees them.
func (t *Tab) receive(ctx context.Context, mr *multipart.Reader) ([]UploadResult, []string, error) {
	c := t.Controls()
	if c.Upload == policy.FileDeny {
		t.auditUpload(&UploadResult{}, "", "", audit.FileDenied, "policy", scan.Verdict{}, "")
		return nil, nil, ErrUploadDenied
	}
	if t.browser == nil || t.browser.FilesDir == "" {
		return nil, nil, errors.New("the isolated browser takes no files")
	}
	max := int64(c.UploadMaxMB) << 20
	var results []UploadResult
	var paths []string
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return results, nil, fmt.Errorf("%w: the upload is malformed: %v", ErrBadRequest, err)
		}
		if part.FormName() != "file" || part.FileName() == "" {
			part.Close()
			continue
		}
		if len(results) >= render.MaxChooserFiles {
			return results, nil, fmt.Errorf("%w: more than %d files", ErrBadRequest, render.MaxChooserFiles)
		}
		r, p := t.takeUpload(ctx, part, c, max)
		part.Close()
		results = append(results, r)
		if p != "" {
			paths = append(paths, p)
		}
	}
	return results, paths, nil
}

// takeUpload checks one file and, when allowed, puts it where the browser
// reads it: its path as the browser sees it, or "".
func (t *Tab) takeUpload(ctx context.Context, part *multipart.Part, c policy.Controls, max int64) (UploadResult, string) {
	r := UploadResult{Name: safeFileName(part.FileName(), "")}
	deny := func(reason, msg, sum, mt string, v scan.Verdict, verdict string) (UploadResult, string) {
		r.Message, r.decision = msg, audit.FileDenied
		t.auditUpload(&r, sum, mt, audit.FileDenied, reason, v, verdict)
		return r, ""
	}
	dir, err := t.m.filesDir()
	if err != nil {
		return deny("failed", "The file could not be received.", "", "", scan.Verdict{}, "")
	}
	tmp, err := os.CreateTemp(dir, "up-")
	if err != nil {
		return deny("failed", "The file could not be received.", "", "", scan.Verdict{}, "")
	}
	defer func() { tmp.Close(); os.Remove(tmp.Name()) }()
	h := sha256.New()
	head := &headWriter{}
	n, err := io.Copy(io.MultiWriter(tmp, h, head), io.LimitReader(part, max+1))
	r.Size = n
	if err != nil {
		return deny("failed", "The file could not be received.", "", "", scan.Verdict{}, "")
	}
	if n > max {
		return deny("too large", fmt.Sprintf("The file is larger than %d MB, the most this site may receive.", c.UploadMaxMB), "", "", scan.Verdict{}, "")
	}
	sum, mt := hex.EncodeToString(h.Sum(nil)), sniffMIME(head.b)
	f := &taken{path: tmp.Name(), size: n, sha256: sum, mime: mt}
	verdict := ""
	var v scan.Verdict
	if c.Upload == policy.FileScan {
		v, err = t.m.scanFile(ctx, f, scan.File{Direction: scan.Upload, Name: r.Name, MIME: mt, Size: n, URL: logURLOf(t.page.URL())})
		switch {
		case err != nil:
			t.log.Warn("upload not scanned: refused", "err", err)
			return deny("scanner unavailable", "The file could not be checked for viruses (the scanner is unavailable), so it was not uploaded.", sum, mt, v, "error")
		case !v.Clean:
			return deny("threat found", "The file was blocked: the virus scanner found "+v.Threat+".", sum, mt, v, "infected")
		}
		verdict = "clean"
	}
	// Its own directory in the browser's, so that it keeps its name.
	sub := "upload-" + randomHex(8)
	hostDir := filepath.Join(t.browser.FilesDir, sub)
	if err := os.Mkdir(hostDir, 0o755); err != nil {
		return deny("failed", "The file could not be given to the isolated browser.", sum, mt, v, verdict)
	}
	dst := filepath.Join(hostDir, r.Name)
	if err := copyFile(tmp.Name(), dst); err != nil {
		return deny("failed", "The file could not be given to the isolated browser.", sum, mt, v, verdict)
	}
	r.Allowed, r.decision = true, audit.FileAllowed
	t.auditUpload(&r, sum, mt, audit.FileAllowed, "", v, verdict)
	return r, filepath.Join(t.browser.FilesPath, sub, r.Name)
}

// logURLOf is raw as it may be logged, or "" when it is no URL.
func logURLOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return audit.LogURL(u)
}

// copyFile copies src to a new file dst, readable by the browser.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
