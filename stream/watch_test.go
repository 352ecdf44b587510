package stream

import (
	"errors"
	"testing"
	"time"
)

// TestWatch: a watcher of a peer gets the frames the peer's user gets, as
// they were encoded (the same RTP times, no second encode), starting with a
// keyframe; it cannot watch before the user's codec is known, and closes
// with the peer.
func TestWatch(t *testing.T) {
	srv := newTestServer(t, nil)
	peer := newTestPeer(t, srv, PeerOptions{})
	t0 := time.Unix(1_700_000_000, 0)

	early := newTestClient(t, clientOpts{noChannel: true})
	if _, _, err := peer.Watch(testCtx(t), early.offer(t)); !errors.Is(err, ErrNoVideo) {
		t.Fatalf("watch before the user connected: %v, want ErrNoVideo", err)
	}

	user := newTestClient(t, clientOpts{})
	user.connect(t, peer)
	peer.Submit(solidJPEG(t, 320, 240, red), t0, nil)
	user.waitFrame(t, 10*time.Second, func(f rxFrame) bool { return f.is(red) }, nil)
	encoded := peer.Stats().FramesEncoded

	watcher := newTestClient(t, clientOpts{noChannel: true})
	w, answer, err := peer.Watch(testCtx(t), watcher.offer(t))
	if err != nil {
		t.Fatal(err)
	}
	watcher.accept(t, answer)
	if peer.Watchers() != 1 {
		t.Errorf("Watchers() = %d", peer.Watchers())
	}
	first := watcher.nextFrame(t, 10*time.Second)
	if !first.key || !first.is(red) {
		t.Fatalf("the watcher's first frame: %v, want a red keyframe", first)
	}
	peer.Submit(solidJPEG(t, 320, 240, blue), t0.Add(time.Second), nil)
	ub := user.waitFrame(t, 5*time.Second, func(f rxFrame) bool { return f.is(blue) }, nil)
	wb := watcher.waitFrame(t, 5*time.Second, func(f rxFrame) bool { return f.is(blue) }, nil)
	if ub.ts != wb.ts {
		t.Errorf("RTP time: user %d, watcher %d: want the same frame", ub.ts, wb.ts)
	}
	// One encode for both: the frames encoded since the watcher came are
	// the user's frames (the keyframe it asked for, then the blue one),
	// not twice as many.
	st := peer.Stats()
	if n := st.FramesEncoded - encoded; n > st.FramesSent {
		t.Errorf("%d frames encoded for %d sent", n, st.FramesSent)
	}

	peer.Close()
	waitChan(t, w.Done(), 10*time.Second, "the watcher to close with the peer")
	if err := w.Close(); err != nil {
		t.Logf("close after the peer: %v", err)
	}
}
