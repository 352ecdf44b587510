package render

import (
	"log/slog"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
)

// TestFrameSizeFilter feeds frames to a tab with no browser: frames of
// another size than the viewport are acked and dropped, the others handed
// on with an Ack that counts once.
func TestFrameSizeFilter(t *testing.T) {
	var got []Frame
	tab := &Tab{opt: Options{OnFrame: func(f Frame) { got = append(got, f) }}, log: slog.New(slog.DiscardHandler), width: 400, height: 300}
	tab.acks.signal = make(chan struct{}, 1)
	frame := func(w, h float64) *page.EventScreencastFrame {
		return &page.EventScreencastFrame{Data: []byte{1}, SessionID: 7, Metadata: &page.ScreencastFrameMetadata{DeviceWidth: w, DeviceHeight: h, Timestamp: 1e9}}
	}
	tab.onFrame(frame(800, 600)) // the window's size, before the override
	tab.onFrame(&page.EventScreencastFrame{SessionID: 7})
	if len(got) != 0 || len(tab.acks.take()) != 2 {
		t.Fatalf("frames of another size: %d handed on, want 0 and 2 acks", len(got))
	}
	tab.onFrame(frame(400, 300))
	if len(got) != 1 || len(tab.acks.pending) != 0 {
		t.Fatalf("frame of the viewport's size: %d handed on, %d acked", len(got), len(tab.acks.pending))
	}
	if want := time.Unix(1e9, 0); !got[0].Captured.Equal(want) {
		t.Errorf("Captured = %v, want %v", got[0].Captured, want)
	}
	got[0].Ack()
	got[0].Ack()
	if acks := tab.acks.take(); len(acks) != 1 || acks[0] != 7 {
		t.Errorf("acks after two Ack calls = %v, want [7]", acks)
	}
	tab.stopped = true
	tab.onFrame(frame(400, 300))
	if len(got) != 1 {
		t.Error("frame handed on after Close")
	}
}
