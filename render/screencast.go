package render

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
)

// Frame is one screencast image of the viewport.
type Frame struct {
	// Data is the JPEG image, already base64-decoded. Its size in pixels
	// is the viewport's in CSS px times the smaller of Options.Scale and
	// the scale factor of the browser's screen. Headless Chromium
	// captures at its screen's factor, which is 1 unless it was started
	// with --force-device-scale-factor, whatever the emulated one is.
	Data []byte
	// Captured is when Chromium drew the frame (its swap time), or when
	// the frame arrived if Chromium gave none.
	Captured time.Time
	// Ack tells Chromium the consumer is ready for the next frame. Call it
	// exactly once, after the frame has been decoded: Chromium keeps only a
	// few frames unacknowledged, so acking after decode paces the capture to
	// what the consumer can take. It does not block and is safe from any
	// goroutine; later calls do nothing.
	Ack func()
}

// acker sends the screencast acks from its own goroutine: the listener that
// receives the frames must not run commands. Its queue is unbounded so that
// Ack never blocks nor drops one (Chromium counts them), but holds no more
// than the few frames Chromium keeps in flight.
type acker struct {
	mu      sync.Mutex
	pending []int64
	signal  chan struct{} // capacity 1
}

func (a *acker) push(session int64) {
	a.mu.Lock()
	a.pending = append(a.pending, session)
	a.mu.Unlock()
	select {
	case a.signal <- struct{}{}:
	default:
	}
}

func (a *acker) take() []int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pending
	a.pending = nil
	return p
}

func (t *Tab) ackLoop() {
	defer t.wg.Done()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.acks.signal:
		}
		for _, session := range t.acks.take() {
			err := t.call(t.ctx, page.CommandScreencastFrameAck, page.ScreencastFrameAckParams{SessionID: session})
			if err != nil && t.ctx.Err() == nil {
				t.log.Debug("screencast ack", "err", err)
			}
		}
	}
}

// startScreencast starts the screencast at the viewport's size in device
// pixels. Every frame (everyNthFrame 1): skipping can lose the only frame a
// click produces.
func (t *Tab) startScreencast(ctx context.Context, w, h int, scale float64) error {
	q := int64(t.opt.Quality)
	err := t.call(ctx, page.CommandStartScreencast, page.StartScreencastParams{
		Format:        page.StartScreencastFormatJpeg,
		Quality:       &q,
		MaxWidth:      int64(math.Round(float64(w) * scale)),
		MaxHeight:     int64(math.Round(float64(h) * scale)),
		EveryNthFrame: 1,
	})
	if err != nil {
		return fmt.Errorf("start screencast: %w", err)
	}
	return nil
}

// Resize sets a new viewport and device scale factor and restarts the
// screencast at the new size. Frames of the old size that are still on
// their way are dropped.
func (t *Tab) Resize(ctx context.Context, width, height int, scale float64) error {
	if scale == 0 {
		scale = 1
	}
	if err := checkViewport(width, height, scale); err != nil {
		return err
	}
	t.resizeMu.Lock()
	defer t.resizeMu.Unlock()
	if err := t.setMetrics(ctx, width, height, scale); err != nil {
		return err
	}
	if t.hidden.on {
		// Show starts it again, at the size in effect then.
		return nil
	}
	if err := t.call(ctx, page.CommandStopScreencast, nil); err != nil {
		return fmt.Errorf("stop screencast: %w", err)
	}
	return t.startScreencast(ctx, width, height, scale)
}

// onFrame hands a frame on, or acks it at once when nobody takes it.
//
// The first frames can come at the window's size before the viewport
// override applies, and frames of the old size still come after a Resize
// (notes/media.md, pitfall 6). They are dropped, so that every frame a
// consumer gets has the viewport's size: its encoder then never changes size
// by surprise. Chromium sends a frame of the right size as soon as the
// override has applied, as the change repaints the page.
func (t *Tab) onFrame(ev *page.EventScreencastFrame) {
	session := ev.SessionID
	md := ev.Metadata
	t.mu.Lock()
	w, h := t.width, t.height
	t.mu.Unlock()
	if md == nil || math.Round(md.DeviceWidth) != float64(w) || math.Round(md.DeviceHeight) != float64(h) {
		if md != nil {
			t.log.Debug("drop frame of another size", "frame_width", md.DeviceWidth, "frame_height", md.DeviceHeight, "width", w, "height", h)
		}
		t.acks.push(session)
		return
	}
	captured := time.Now()
	if md.Timestamp > 0 {
		captured = timeOf(md.Timestamp)
	}
	var once sync.Once
	f := Frame{
		Data:     ev.Data,
		Captured: captured,
		Ack:      func() { once.Do(func() { t.acks.push(session) }) },
	}
	t.cbMu.Lock()
	defer t.cbMu.Unlock()
	if t.stopped {
		return
	}
	if t.framed != nil {
		t.frameOnce.Do(func() { close(t.framed) })
	}
	if t.opt.OnFrame == nil {
		f.Ack()
		return
	}
	t.opt.OnFrame(f)
}

// timeOf converts a protocol time in seconds since the epoch.
func timeOf(ts cdp.TimeSinceEpoch) time.Time {
	sec, frac := math.Modf(float64(ts))
	return time.Unix(int64(sec), int64(frac*1e9))
}
