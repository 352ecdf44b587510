package tab

import (
	"context"
	"encoding/binary"
	"time"
)

// What a tab does while its user cannot see it (Config.Hidden). The landing
// page says when it is hidden or shown (Page Visibility: another tab in
// front, the window minimised, a phone's screen off); a hidden tab's
// browser captures no frames and, frozen, runs none of the page's script,
// so it costs next to no CPU. Shown again, it sends a fresh frame.

// The values of Config.Hidden.
const (
	HiddenFreeze = "freeze"
	HiddenPause  = "pause"
	HiddenStream = "stream"
)

// quietFor is how long the page must have played nothing the user could
// hear before a hidden tab is frozen: a frozen page's sound stops.
const quietFor = 3 * time.Second

// setVisible applies the landing page's visibility.
func (t *Tab) setVisible(ctx context.Context, on bool) error {
	mode := t.m.cfg.Hidden
	if mode == HiddenStream {
		return nil
	}
	p := t.currentPeer()
	if on {
		if p != nil {
			p.SetVideoPaused(false)
		}
		return t.page.Show(ctx)
	}
	if p == nil || p.Watchers() > 0 {
		// Gone, or an operator is shadowing the tab: the picture goes on
		// for them.
		return nil
	}
	freeze := mode == HiddenFreeze && !t.audible() && !t.page.HasPopups()
	t.log.Debug("tab hidden", "frozen", freeze)
	if err := t.page.Hide(ctx, freeze); err != nil {
		return err
	}
	p.SetVideoPaused(true)
	return nil
}

// showForNewPeer shows the tab to a landing page that has just attached (a
// reload, a hand-over): its picture must not wait for a message it may not
// send. It is queued whether or not the tab is hidden now: a hide of the
// landing page that went may still be in the queue, and this comes after
// it (showing a shown tab does nothing). One that is hidden says so once
// its channel is open, after this.
func (t *Tab) showForNewPeer() {
	select {
	case t.inputs <- clientMsg{T: "visible", On: true}:
	default:
		t.log.Warn("the input queue is full: a hidden tab is not shown to its new landing page")
	}
}

// audible reports whether the user has heard the page lately.
func (t *Tab) audible() bool {
	return time.Since(time.Unix(0, t.loudAt.Load())) < quietFor
}

// loud reports whether s16le PCM holds anything above a whisper (about
// -60 dBFS): a page that runs its audio graph on silence is not playing.
func loud(pcm []byte) bool {
	for i := 0; i+1 < len(pcm); i += 2 {
		v := int16(binary.LittleEndian.Uint16(pcm[i:]))
		if v > 32 || v < -32 {
			return true
		}
	}
	return false
}
