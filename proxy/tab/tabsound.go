package tab

import (
	"errors"
	"io"
	"os"
	"syscall"
	"time"
)

// soundChunk is the most PCM read from the sound device at once: the pipe
// sink writes about 21 ms at a time (4 KiB), so a read rarely fills it.
const soundChunk = 16 << 10

// readSound reads the browser's sound device (isolate.Browser.AudioPath)
// and hands each chunk, stamped with the time it came, to the tab's
// current peer; while none is attached the PCM is read and dropped, so
// that a peer that comes later does not get stale sound. When the tab's
// policy forbids sound, or the browser has no sound device, nothing is
// read: what the page plays stays in the browser's sandbox (the pipe sink
// drops it once the FIFO is full). The returned func stops the reader and
// waits for it.
func (t *Tab) readSound() (stop func()) {
	if !t.audio || t.browser.AudioPath == "" {
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
