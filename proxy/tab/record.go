package tab

import (
	"time"

	"github.com/glovebox/glovebox/stream"
	"github.com/glovebox/glovebox/stream/record"
)

// Recorder starts the recordings of the tabs whose rule says record.
// *record.Store satisfies it.
type Recorder interface {
	Start(tab string, audio bool) *record.Recording
}

// startRecording starts the tab's recording if its controls say record
// and it has none yet: when it starts running (a tab never admitted has
// no teardown to close it), or when it is handed to a site whose rule
// records. A recording goes on until the tab ends, whatever
// the sites it shows next.
func (t *Tab) startRecording() {
	if t.m.cfg.Recorder == nil || !t.running.Load() || !t.Controls().Recorded() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.ended:
		return
	default:
	}
	if t.rec.Load() != nil {
		return
	}
	t.rec.Store(t.m.cfg.Recorder.Start(t.id, t.audio.Load()))
	t.log.Info("tab recorded", "component", "record")
	if t.peer != nil {
		// The recording starts with a keyframe (it asks for one too).
		t.peer.RequestKeyframe()
	}
}

// endRecording closes the tab's recording, once its peers are closed, and
// says what became of it for tab_end.
func (t *Tab) endRecording() (file, errText string) {
	t.mu.Lock()
	rec := t.rec.Swap(nil)
	t.mu.Unlock()
	if rec == nil {
		return "", ""
	}
	res := rec.Close()
	if res.Err != nil {
		errText = res.Err.Error()
		t.log.Error("tab recording failed", "component", "record", "file", res.Path, "err", res.Err)
	}
	return res.Path, errText
}

// peerRecorder gives the tab's recording what one of its peers sends,
// while that peer is the tab's: the frames of a peer being replaced
// (another window took the tab) would break the recording's chain.
type peerRecorder struct {
	t    *Tab
	peer **stream.Peer // set before the peer is answered, so before it sends
}

func (r peerRecorder) RecordVideo(codec string, width, height int, frame []byte, captured time.Time, key bool) bool {
	rec := r.t.rec.Load()
	if rec == nil || r.t.currentPeer() != *r.peer {
		return false
	}
	return rec.RecordVideo(codec, width, height, frame, captured, key)
}

func (r peerRecorder) RecordAudio(packet []byte, captured time.Time) {
	if rec := r.t.rec.Load(); rec != nil && r.t.currentPeer() == *r.peer {
		rec.RecordAudio(packet, captured)
	}
}
