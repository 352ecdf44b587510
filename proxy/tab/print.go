package tab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"time"

	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/scan"
)

// printTimeout bounds printing a page to PDF.
const printTimeout = 60 * time.Second

// onPagePrint answers the page's own window.print(): the landing page asks
// the user, as a local print dialog would, and the user's Print goes on as
// Ctrl+P does; under print: deny the user is told.
func (t *Tab) onPagePrint() {
	if !t.once(&t.lastPagePrint, 2*time.Second) {
		return // the agent allows one in 2s; a page faking more gets none
	}
	if t.Controls().Print != policy.FileAllow {
		d := download{name: safeFileName(t.page.Title()+".pdf", ""), logURL: logURLOf(t.page.URL()), host: t.host}
		t.auditFile(audit.EventPrint, &d, audit.FileDenied, "policy", "", scan.Verdict{}, "", "")
		t.notice("This page asked to print: printing is not allowed on this site.")
		return
	}
	t.send(serverMsg{T: "print-request"})
}

// print answers the user's Print (Ctrl+P): under print: allow the remote
// page is printed to PDF, which then goes to the user as a download, under
// download's decision (scan, size, deny); under deny the user is told.
// One print at a time.
func (t *Tab) print() {
	c := t.Controls()
	d := download{id: randomHex(8), name: safeFileName(t.page.Title()+".pdf", ""), logURL: logURLOf(t.page.URL()), host: t.host}
	if c.Print != policy.FileAllow {
		t.auditFile(audit.EventPrint, &d, audit.FileDenied, "policy", "", scan.Verdict{}, "", "")
		t.notice("Printing is not allowed on this site.")
		return
	}
	t.mu.Lock()
	busy := t.printing
	t.printing = true
	t.mu.Unlock()
	if busy {
		return
	}
	t.send(downloadMsg(&d, dlChecking, "", ""))
	go func() {
		defer func() {
			t.mu.Lock()
			t.printing = false
			t.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(t.ctx, printTimeout)
		defer cancel()
		pdf, err := t.page.PrintPDF(ctx)
		if err == nil {
			var f *taken
			if f, err = t.m.keep(pdf); err == nil {
				t.decide(d, c, f, audit.EventPrint)
				return
			}
		}
		if t.ctx.Err() == nil {
			t.log.Warn("print", "err", err)
			t.send(downloadMsg(&d, dlFailed, "The page could not be printed.", ""))
		}
	}()
}

// keep writes b as a file of Glovebox's own, for the user.
func (m *Manager) keep(b []byte) (*taken, error) {
	dir, err := m.filesDir()
	if err != nil {
		return nil, err
	}
	out, err := os.CreateTemp(dir, "print-")
	if err != nil {
		return nil, err
	}
	if _, err := out.Write(b); err != nil {
		out.Close()
		os.Remove(out.Name())
		return nil, err
	}
	if err := out.Close(); err != nil {
		os.Remove(out.Name())
		return nil, err
	}
	sum := sha256.Sum256(b)
	return &taken{path: out.Name(), size: int64(len(b)), sha256: hex.EncodeToString(sum[:]), mime: sniffMIME(b[:min(len(b), 512)])}, nil
}
