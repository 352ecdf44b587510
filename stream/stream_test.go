package stream

import (
	"bytes"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

func TestVideo(t *testing.T) {
	srv := newTestServer(t, nil)
	peer := newTestPeer(t, srv, PeerOptions{})

	t0 := time.Unix(1_700_000_000, 0)
	var submitted, decodedCalls atomic.Int64
	submit := func(jpeg []byte, at time.Duration, cb func()) {
		submitted.Add(1)
		peer.Submit(jpeg, t0.Add(at), func() {
			decodedCalls.Add(1)
			if cb != nil {
				cb()
			}
		})
	}

	// A frame before the browser connects is decoded at once but not sent;
	// connecting then sends it as a keyframe, with no new frame needed.
	first := make(chan struct{})
	submit(solidJPEG(t, 320, 240, red), 0, func() { close(first) })
	waitChan(t, first, 5*time.Second, "decoded callback of a frame before connection")
	if st := peer.Stats(); st.FramesDecoded != 1 || st.FramesEncoded != 0 || st.Width != 320 || st.Height != 240 {
		t.Fatalf("before connection: %+v", st)
	}

	c := newTestClient(t, clientOpts{})
	answer := c.connect(t, peer)
	if !strings.Contains(answer, "VP8/90000") || !strings.Contains(answer, PlayoutDelayURI) {
		t.Fatalf("answer lacks VP8 or playout-delay:\n%s", answer)
	}
	if strings.Contains(answer, "H264") || strings.Contains(answer, "a=rtpmap:96 ") {
		t.Fatalf("answer has codecs it should not (or ignored the offer's payload type):\n%s", answer)
	}

	f0 := c.nextFrame(t, 10*time.Second)
	if !f0.key || !f0.is(red) || f0.w != 320 || f0.h != 240 {
		t.Fatalf("first frame: %v, want a red 320x240 keyframe", f0)
	}

	// RTP timestamps follow capture times on the 90 kHz clock.
	submit(solidJPEG(t, 320, 240, blue), 500*time.Millisecond, nil)
	f1 := c.waitFrame(t, 5*time.Second, func(f rxFrame) bool { return f.is(blue) }, nil)
	if d := f1.ts - f0.ts; d != 45000 {
		t.Errorf("timestamp delta for +500 ms = %d, want 45000", d)
	}
	if f1.key {
		t.Errorf("second frame is a keyframe, want a delta frame")
	}
	submit(solidJPEG(t, 320, 240, green), 1500*time.Millisecond, nil)
	f2 := c.waitFrame(t, 5*time.Second, func(f rxFrame) bool { return f.is(green) }, nil)
	if d := f2.ts - f0.ts; d != 135000 {
		t.Errorf("timestamp delta for +1500 ms = %d, want 135000", d)
	}

	// Latest wins: while the encoder is busy (held in a decoded callback),
	// newer frames replace the waiting one, whose callback runs at once.
	hold, held := make(chan struct{}), make(chan struct{})
	submit(solidJPEG(t, 320, 240, grey), 2*time.Second, func() { close(held); <-hold })
	waitChan(t, held, 5*time.Second, "encoder to pick up the held frame")
	var calls [3]atomic.Int64
	for i, col := range [][3]byte{red, red, blue} {
		submit(solidJPEG(t, 320, 240, col), 2*time.Second+time.Duration(i+1)*100*time.Millisecond,
			func() { calls[i].Add(1) })
	}
	if calls[0].Load() != 1 || calls[1].Load() != 1 || calls[2].Load() != 0 {
		t.Fatalf("replaced frames' callbacks: %d %d %d, want 1 1 0", calls[0].Load(), calls[1].Load(), calls[2].Load())
	}
	close(hold)
	sawRed := false
	c.waitFrame(t, 5*time.Second, func(f rxFrame) bool { return f.is(blue) }, func(f rxFrame) {
		sawRed = sawRed || f.is(red)
	})
	if sawRed {
		t.Error("a replaced (red) frame was sent")
	}
	if calls[2].Load() != 1 {
		t.Errorf("callback of the frame that won: %d calls", calls[2].Load())
	}

	if got, want := decodedCalls.Load(), submitted.Load(); got != want {
		t.Errorf("decoded callbacks: %d for %d frames", got, want)
	}
	st := peer.Stats()
	if st.FramesIn != uint64(submitted.Load()) || st.FramesDropped != 2 || st.FramesDecoded != st.FramesIn-2 {
		t.Errorf("stats %+v: want FramesIn %d, FramesDropped 2, FramesDecoded FramesIn-2", st, submitted.Load())
	}
	if st.Keyframes < 1 || st.FramesEncoded < 4 || st.BytesSent == 0 || st.PacketsSent == 0 || st.EncodeTime <= 0 || st.DecodeTime <= 0 {
		t.Errorf("stats %+v", st)
	}
	if c.playoutOK.Load() == 0 || c.playoutBad.Load() != 0 {
		t.Errorf("playout-delay 0/0 on %d packets, missing or wrong on %d", c.playoutOK.Load(), c.playoutBad.Load())
	}
}

func TestFrameSizeChange(t *testing.T) {
	srv := newTestServer(t, nil)
	peer := newTestPeer(t, srv, PeerOptions{})
	c := newTestClient(t, clientOpts{})
	c.connect(t, peer)
	now := time.Now()
	peer.Submit(solidJPEG(t, 320, 240, red), now, nil)
	if f := c.nextFrame(t, 10*time.Second); !f.key || f.w != 320 {
		t.Fatalf("first frame %v", f)
	}
	// Odd sizes are cropped to even ones; a new size restarts the encoder
	// with a keyframe.
	peer.Submit(solidJPEG(t, 161, 121, blue), now.Add(100*time.Millisecond), nil)
	f := c.waitFrame(t, 5*time.Second, func(f rxFrame) bool { return f.is(blue) }, nil)
	if !f.key || f.w != 160 || f.h != 120 {
		t.Fatalf("after resize: %v, want a 160x120 keyframe", f)
	}
	// A frame that is not a JPEG is dropped; the callback still runs.
	called := make(chan struct{})
	peer.Submit([]byte("not a jpeg"), now.Add(200*time.Millisecond), func() { close(called) })
	waitChan(t, called, 5*time.Second, "decoded callback of a bad frame")
	peer.Submit(solidJPEG(t, 160, 120, green), now.Add(300*time.Millisecond), nil)
	c.waitFrame(t, 5*time.Second, func(f rxFrame) bool { return f.is(green) }, nil)
	if st := peer.Stats(); st.FramesDropped != 1 || st.FramesDecoded != 3 {
		t.Errorf("stats %+v: want 1 dropped, 3 decoded", st)
	}
}

func TestKeyframeRequest(t *testing.T) {
	srv := newTestServer(t, nil)
	peer := newTestPeer(t, srv, PeerOptions{})
	c := newTestClient(t, clientOpts{})
	c.connect(t, peer)
	peer.Submit(solidJPEG(t, 320, 240, green), time.Now(), nil)
	f0 := c.nextFrame(t, 10*time.Second)
	if !f0.key || !f0.is(green) {
		t.Fatalf("first frame %v", f0)
	}

	// A static page: no new frames, yet the last image is refreshed as a
	// small delta frame about once a second. (The last packet sent again
	// followUp after the frame is a duplicate the client drops.)
	start := time.Now()
	refresh := c.nextFrame(t, 3*time.Second)
	if refresh.key || !refresh.is(green) || time.Since(start) < idleRefresh/2 {
		t.Errorf("idle refresh %v after %v, want a green delta frame after about %v", refresh, time.Since(start), idleRefresh)
	}

	for _, tc := range []struct {
		name string
		pkt  rtcp.Packet
	}{
		{"PLI", &rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: f0.ssrc}},
		{"FIR", &rtcp.FullIntraRequest{SenderSSRC: 1, MediaSSRC: f0.ssrc,
			FIR: []rtcp.FIREntry{{SSRC: f0.ssrc, SequenceNumber: 1}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// FIR comes right after PLI's keyframe, inside minKeyInterval:
			// it is served when that ends, well within waitFrame's time.
			before := peer.Stats().Keyframes
			c.drainFrames()
			must(t, c.pc.WriteRTCP([]rtcp.Packet{tc.pkt}))
			f := c.waitFrame(t, 3*time.Second, func(f rxFrame) bool { return f.key }, nil)
			if !f.is(green) || f.ts <= f0.ts {
				t.Errorf("keyframe after %s: %v", tc.name, f)
			}
			// The server counts the keyframe once its last packet is written,
			// which may be just after the client has it.
			deadline := time.Now().Add(time.Second)
			for peer.Stats().Keyframes == before && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if got := peer.Stats().Keyframes; got != before+1 {
				t.Errorf("keyframes %d -> %d", before, got)
			}
		})
	}
}

// TestLostLastPacket: when the last packet of a frame on a quiet page is
// lost, nothing later shows the browser the gap; the packet sent again
// followUp after the frame completes it, with the frame's own timestamp (an
// idle refresh would be a new frame, a second later).
func TestLostLastPacket(t *testing.T) {
	srv := newTestServer(t, nil)
	peer := newTestPeer(t, srv, PeerOptions{})
	var mu sync.Mutex
	var firstTS uint32
	var dropped []uint16
	c := newTestClient(t, clientOpts{lose: func(h *rtp.Header) bool {
		mu.Lock()
		defer mu.Unlock()
		if firstTS == 0 {
			firstTS = h.Timestamp // the keyframe's
		}
		// The first copy of the last packet of the first frame after it.
		if h.Timestamp != firstTS && h.Marker && len(dropped) == 0 {
			dropped = append(dropped, h.SequenceNumber)
			return true
		}
		return false
	}})
	c.connect(t, peer)
	peer.Submit(solidJPEG(t, 320, 240, green), time.Now(), nil)
	if f0 := c.nextFrame(t, 10*time.Second); !f0.key || !f0.is(green) {
		t.Fatalf("first frame %v", f0)
	}
	peer.Submit(solidJPEG(t, 320, 240, blue), time.Now(), nil)
	f := c.nextFrame(t, 5*time.Second)
	mu.Lock()
	lost := slices.Clone(dropped)
	mu.Unlock()
	if len(lost) != 1 {
		t.Fatalf("the client dropped %v, want the blue frame's last packet", lost)
	}
	if !f.is(blue) || f.key {
		t.Fatalf("frame after the lost packet %v, want the blue delta frame", f)
	}
	if f.ts == firstTS || f.ts-firstTS > 90000/2 {
		t.Errorf("blue frame at RTP time %d, keyframe at %d: want the change's own frame, not a refresh a second later", f.ts, firstTS)
	}
}

func TestDataChannel(t *testing.T) {
	srv := newTestServer(t, nil)
	msgs := make(chan []byte, 16)
	msgErrs := make(chan error, 16)
	opened := make(chan struct{})
	peer := newTestPeer(t, srv, PeerOptions{
		MaxMessage:     1024,
		OnMessage:      func(m []byte) { msgs <- m },
		OnMessageError: func(err error) { msgErrs <- err },
		OnOpen:         func() { close(opened) },
	})
	if err := peer.Send([]byte("early")); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("Send before connect: %v, want ErrNotOpen", err)
	}
	c := newTestClient(t, clientOpts{})
	c.connect(t, peer)
	waitChan(t, opened, 10*time.Second, "OnOpen")
	waitChan(t, c.open, 10*time.Second, "client channel open")

	must(t, peer.Send([]byte(`{"type":"title","title":"héllo"}`)))
	select {
	case m := <-c.msgs:
		if !m.IsString || string(m.Data) != `{"type":"title","title":"héllo"}` {
			t.Errorf("client got %q (string %v)", m.Data, m.IsString)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("client got no message")
	}

	garbage := []byte{0x00, 0xff, 0xfe, 'x', 0x80}
	must(t, c.dc.SendText(`{"type":"click","x":1}`))
	must(t, c.dc.Send(bytes.Repeat([]byte("A"), 4096))) // over MaxMessage: dropped
	must(t, c.dc.Send(garbage))
	must(t, c.dc.SendText(strings.Repeat("b", 1024))) // exactly MaxMessage: kept
	want := [][]byte{[]byte(`{"type":"click","x":1}`), garbage, bytes.Repeat([]byte("b"), 1024)}
	for i, w := range want {
		select {
		case m := <-msgs:
			if !bytes.Equal(m, w) {
				t.Errorf("message %d: %q, want %q", i, m, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d not delivered", i)
		}
	}
	select {
	case err := <-msgErrs:
		if !errors.Is(err, ErrMessageTooLarge) {
			t.Errorf("message error %v, want ErrMessageTooLarge", err)
		}
	case <-time.After(time.Second):
		t.Error("oversized message not reported")
	}
	select {
	case err := <-msgErrs:
		t.Errorf("extra message error: %v", err)
	default:
	}

	// After the browser goes away, Send says so.
	must(t, c.pc.Close())
	waitChan(t, peer.Done(), 15*time.Second, "peer done")
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := peer.Send([]byte("late"))
		if errors.Is(err, ErrNotOpen) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Send after close: %v, want ErrNotOpen", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBadOffer(t *testing.T) {
	srv := newTestServer(t, nil)
	tests := []struct {
		name  string
		offer func(t *testing.T) string
	}{
		{"garbage", func(*testing.T) string { return "hello, I am not SDP" }},
		{"empty", func(*testing.T) string { return "" }},
		{"no codec we send", func(t *testing.T) string { return newTestClient(t, clientOpts{codec: webrtc.MimeTypeVP9}).offer(t) }},
		// packetization-mode 0 (no fmtp) would need NAL units under the MTU.
		{"H.264 mode 0 only", func(t *testing.T) string { return newTestClient(t, clientOpts{codec: webrtc.MimeTypeH264}).offer(t) }},
		{"no video", func(t *testing.T) string { return newTestClient(t, clientOpts{noVideo: true}).offer(t) }},
		{"truncated", func(t *testing.T) string {
			o := newTestClient(t, clientOpts{}).offer(t)
			return o[:len(o)/3]
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := newTestPeer(t, srv, PeerOptions{})
			_, err := peer.Answer(testCtx(t), tt.offer(t))
			if !errors.Is(err, ErrBadOffer) {
				t.Fatalf("Answer: %v, want ErrBadOffer", err)
			}
		})
	}

	t.Run("only a codec left out of stream.codecs", func(t *testing.T) {
		h264Only := newTestServer(t, func(c *Config) { c.Codecs = []string{CodecH264} })
		peer := newTestPeer(t, h264Only, PeerOptions{})
		_, err := peer.Answer(testCtx(t), newTestClient(t, clientOpts{}).offer(t)) // VP8 alone
		if !errors.Is(err, ErrBadOffer) || !strings.Contains(err.Error(), "send H.264") || strings.Contains(err.Error(), "VP8") {
			t.Fatalf("Answer: %v, want ErrBadOffer naming H.264 alone", err)
		}
	})

	t.Run("twice", func(t *testing.T) {
		peer := newTestPeer(t, srv, PeerOptions{})
		c := newTestClient(t, clientOpts{})
		offer := c.offer(t)
		if _, err := peer.Answer(testCtx(t), offer); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Answer(testCtx(t), offer); err == nil {
			t.Fatal("second Answer: no error")
		}
	})
}

func TestClose(t *testing.T) {
	t.Run("by client", func(t *testing.T) {
		srv := newTestServer(t, nil)
		peer := newTestPeer(t, srv, PeerOptions{})
		c := newTestClient(t, clientOpts{})
		c.connect(t, peer)
		peer.Submit(solidJPEG(t, 64, 64, red), time.Now(), nil)
		c.nextFrame(t, 10*time.Second)
		must(t, c.pc.Close())
		waitChan(t, peer.Done(), 15*time.Second, "Done after the client closed")
		if err := peer.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := peer.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		called := false
		peer.Submit(solidJPEG(t, 64, 64, red), time.Now(), func() { called = true })
		if !called {
			t.Error("Submit after Close did not call decoded")
		}
	})

	t.Run("pending frame", func(t *testing.T) {
		srv := newTestServer(t, nil)
		peer := newTestPeer(t, srv, PeerOptions{})
		hold, held := make(chan struct{}), make(chan struct{})
		peer.Submit(solidJPEG(t, 64, 64, red), time.Now(), func() { close(held); <-hold })
		waitChan(t, held, 5*time.Second, "held frame")
		var waiting atomic.Int64
		peer.Submit(solidJPEG(t, 64, 64, red), time.Now(), func() { waiting.Add(1) })
		// Let the held callback return once Close has begun.
		var began atomic.Bool
		go func() {
			defer close(hold)
			deadline := time.Now().Add(5 * time.Second)
			for !closing(peer) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			began.Store(closing(peer))
		}()
		must(t, peer.Close())
		if !began.Load() {
			t.Fatal("Close had not begun when the held callback returned")
		}
		// Either the encoder goroutine, let go, decodes the pending frame on
		// its way out, or Close drops it: both call its callback, once,
		// before Close returns, which is what Close promises.
		if waiting.Load() != 1 {
			t.Errorf("pending frame's callback called %d times at Close", waiting.Load())
		}
	})

	t.Run("before answer", func(t *testing.T) {
		srv := newTestServer(t, nil)
		peer, err := srv.NewPeer(PeerOptions{})
		must(t, err)
		must(t, peer.Close())
		must(t, peer.Close())
		waitChan(t, peer.Done(), time.Second, "Done")
		if _, err := peer.Answer(testCtx(t), newTestClient(t, clientOpts{}).offer(t)); !errors.Is(err, ErrClosed) {
			t.Errorf("Answer after Close: %v, want ErrClosed", err)
		}
	})

	t.Run("server", func(t *testing.T) {
		srv, err := NewServer(Config{Loopback: true, TCPPort: -1}, testLog())
		must(t, err)
		if srv.TCPAddr() != nil {
			t.Error("ICE-TCP listening though tcp_port is -1")
		}
		peer, err := srv.NewPeer(PeerOptions{})
		must(t, err)
		must(t, srv.Close())
		waitChan(t, peer.Done(), time.Second, "Done after server Close")
		must(t, srv.Close())
		if _, err := srv.NewPeer(PeerOptions{}); err == nil {
			t.Error("NewPeer after server Close: no error")
		}
	})

	t.Run("bad options", func(t *testing.T) {
		srv := newTestServer(t, nil)
		if _, err := srv.NewPeer(PeerOptions{MaxMessage: MaxMessageLimit + 1}); err == nil {
			t.Error("MaxMessage over the limit: no error")
		}
	})
}

func TestICETCP(t *testing.T) {
	srv := newTestServer(t, nil)
	peer := newTestPeer(t, srv, PeerOptions{})
	c := newTestClient(t, clientOpts{tcpOnly: true})
	answer := c.connect(t, peer)
	if !strings.Contains(answer, "tcptype passive") {
		t.Fatalf("answer has no passive TCP candidate:\n%s", answer)
	}
	peer.Submit(solidJPEG(t, 320, 240, blue), time.Now(), nil)
	f := c.nextFrame(t, 15*time.Second)
	if !f.key || !f.is(blue) {
		t.Fatalf("first frame over TCP: %v", f)
	}
	pair, err := c.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	must(t, err)
	if pair == nil || pair.Local.Protocol != webrtc.ICEProtocolTCP || int(pair.Remote.Port) != srv.TCPAddr().(*net.TCPAddr).Port {
		t.Fatalf("selected pair %v, want TCP to port %v", pair, srv.TCPAddr())
	}
}

func TestNAT1To1(t *testing.T) {
	srv := newTestServer(t, func(c *Config) { c.NAT1To1IPs = []string{"203.0.113.7"} })
	peer := newTestPeer(t, srv, PeerOptions{})
	answer, err := peer.Answer(testCtx(t), newTestClient(t, clientOpts{}).offer(t))
	must(t, err)
	var cands []string
	for _, l := range strings.Split(answer, "\n") {
		if strings.HasPrefix(l, "a=candidate:") {
			cands = append(cands, strings.TrimSpace(l))
		}
	}
	if len(cands) == 0 {
		t.Fatalf("no candidates in answer:\n%s", answer)
	}
	for _, c := range cands {
		if !strings.Contains(c, " 203.0.113.7 ") {
			t.Errorf("candidate not rewritten to the public address: %s", c)
		}
	}
}
