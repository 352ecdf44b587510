package tab

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// soundChunk is the most PCM read from the sound device at once: the pipe
// sink writes about 21 ms at a time (4 KiB), so a read rarely fills it.
const soundChunk = 16 << 10

// soundReader reads the tab's browser's sound device
// (isolate.Browser.AudioPath) while the tab runs and its policy lets the
// user hear it, and hands each chunk, stamped with the time it came, to
// the tab's current peer; while none is attached the PCM is read and
// dropped, so that a peer that comes later gets no stale sound. When the
// policy forbids sound, or the browser has no sound device, nothing is
// read: what the page plays stays in the browser's sandbox (the pipe sink
// drops it once the FIFO is full).
type soundReader struct {
	mu   sync.Mutex
	tab  *Tab // set by start, nil again after end
	stop func()
}

// start is the tab's browser being up: reading starts if policy allows.
func (r *soundReader) start(t *Tab) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tab = t
	r.apply()
}

// end is the tab ending: reading stops, for good.
func (r *soundReader) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop != nil {
		r.stop()
		r.stop = nil
	}
	r.tab = nil
}

// apply starts or stops reading to match the tab's audio. r.mu is held.
func (r *soundReader) apply() {
	t := r.tab
	switch {
	case t == nil:
	case t.audio.Load() && r.stop == nil:
		r.stop = t.readSound()
	case !t.audio.Load() && r.stop != nil:
		r.stop()
		r.stop = nil
	}
}

// SetAudio says whether the user may hear the tab from now on: when its
// remote page has moved to a site whose rule says otherwise (a hand-over).
// Off stops reading the sound device at once; peers attached from then on
// get an audio track or not to match.
func (t *Tab) SetAudio(on bool) {
	t.audio.Store(on)
	t.sound.mu.Lock()
	defer t.sound.mu.Unlock()
	t.sound.apply()
}

// readSound starts the reader of the browser's sound device and returns
// the func that stops it and waits for it.
func (t *Tab) readSound() (stop func()) {
	if t.browser.AudioPath == "" {
		return func() {}
	}
	// The sound device holds the FIFO open for writing, so opening it
	// does not block; O_NONBLOCK puts it in Go's poller, so that Close
	// ends a Read under way.
	f, err := os.OpenFile(t.browser.AudioPath, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.log.Warn("open sound device: the tab stays silent", "err", err)
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, soundChunk)
		for {
			n, err := f.Read(buf)
			now := time.Now()
			if n > 0 {
				if loud(buf[:n]) {
					t.loudAt.Store(now.UnixNano())
				}
				if p := t.currentPeer(); p != nil {
					p.WriteAudio(buf[:n], now)
				}
			}
			if err != nil {
				if !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) {
					t.log.Warn("read sound device", "err", err)
				}
				return
			}
		}
	}()
	return func() {
		f.Close()
		<-done
	}
}
