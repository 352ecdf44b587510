package stream

import (
	"strings"
	"testing"
	"time"
)

// waitStats polls the peer's stats until ok holds, failing after wait.
func waitStats(t *testing.T, p *Peer, wait time.Duration, what string, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		st := p.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %+v", wait, what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEarlyKeyframe: an image that comes after the answer but before the
// browser is connected is encoded as a keyframe at once, and that keyframe
// is what the browser gets first, not encoded again. A newer image before
// the connection replaces it, and the frames after decode.
func TestEarlyKeyframe(t *testing.T) {
	srv := newTestServer(t, nil)
	peer := newTestPeer(t, srv, PeerOptions{})
	c := newTestClient(t, clientOpts{})
	answer, err := peer.Answer(testCtx(t), c.offer(t))
	must(t, err)

	now := time.Now()
	peer.Submit(solidJPEG(t, 320, 240, red), now, nil)
	waitStats(t, peer, 5*time.Second, "an early keyframe", func(s Stats) bool { return s.FramesEncoded == 1 })
	peer.Submit(solidJPEG(t, 320, 240, blue), now.Add(100*time.Millisecond), nil)
	waitStats(t, peer, 5*time.Second, "an early keyframe of the newer image", func(s Stats) bool { return s.FramesEncoded == 2 })
	if st := peer.Stats(); st.FramesSent != 0 || st.Keyframes != 0 {
		t.Fatalf("sent before the browser connected: %+v", st)
	}

	c.accept(t, answer)
	f0 := c.nextFrame(t, 10*time.Second)
	if !f0.key || !f0.is(blue) || f0.err != nil {
		t.Fatalf("first frame %v, want the blue keyframe", f0)
	}
	// The early keyframe went as it was: nothing was encoded for it.
	waitStats(t, peer, 2*time.Second, "the early keyframe counted as sent", func(s Stats) bool {
		return s.FramesSent >= 1 && s.FramesEncoded == 2+s.FramesSent-1
	})
	peer.Submit(solidJPEG(t, 320, 240, green), now.Add(300*time.Millisecond), nil)
	f1 := c.waitFrame(t, 5*time.Second, func(f rxFrame) bool { return f.is(green) }, nil)
	if f1.key || f1.err != nil {
		t.Errorf("frame after the early keyframe: %v, want a delta frame that decodes", f1)
	}
	if d := f1.ts - f0.ts; d != 18000 {
		t.Errorf("timestamp delta for +200 ms = %d, want 18000", d)
	}
}

// TestRefreshOnFirstMessage: the browser's first data-channel message (its
// page has a video element for the track by then) brings a frame of the
// current image at once, without waiting for the idle refresh; later
// messages do not.
func TestRefreshOnFirstMessage(t *testing.T) {
	srv := newTestServer(t, nil)
	peer := newTestPeer(t, srv, PeerOptions{})
	c := newTestClient(t, clientOpts{})
	c.connect(t, peer)
	waitChan(t, c.open, 10*time.Second, "client channel open")
	peer.Submit(solidJPEG(t, 320, 240, red), time.Now(), nil)
	if f := c.nextFrame(t, 10*time.Second); !f.key || !f.is(red) {
		t.Fatalf("first frame %v", f)
	}
	// Nothing to wait for before the message: the keyframe's last packet,
	// sent again followUp after it, is a duplicate that SRTP's replay
	// protection drops (no frame), and the idle refresh is a second away.
	c.drainFrames()

	must(t, c.dc.SendText(`{"t":"resize"}`))
	if f := c.nextFrame(t, idleRefresh/2); f.err != nil || !f.is(red) {
		t.Errorf("frame after the first message: %v", f)
	}
	c.drainFrames()
	must(t, c.dc.SendText(`{"t":"resize"}`))
	select {
	case f := <-c.frames:
		t.Errorf("a second message brought a frame too: %v", f)
	case <-time.After(idleRefresh / 2):
	}
}

// TestOfferWithoutCandidates: an offer that goes before the browser has
// gathered any candidate (as the landing page sends it) connects over UDP
// and over ICE-TCP: the browser's own checks make its address known.
func TestOfferWithoutCandidates(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		t.Run(map[bool]string{false: "udp", true: "tcp"}[tcp], func(t *testing.T) {
			srv := newTestServer(t, nil)
			peer := newTestPeer(t, srv, PeerOptions{})
			c := newTestClient(t, clientOpts{tcpOnly: tcp})
			offer, err := c.pc.CreateOffer(nil)
			must(t, err)
			if strings.Contains(offer.SDP, "a=candidate") {
				t.Fatalf("the offer has candidates:\n%s", offer.SDP)
			}
			must(t, c.pc.SetLocalDescription(offer))
			answer, err := peer.Answer(testCtx(t), offer.SDP)
			must(t, err)
			c.accept(t, answer)
			peer.Submit(solidJPEG(t, 320, 240, blue), time.Now(), nil)
			if f := c.nextFrame(t, 15*time.Second); !f.key || !f.is(blue) {
				t.Fatalf("first frame: %v", f)
			}
			waitChan(t, c.open, 10*time.Second, "client channel open")
		})
	}
}
