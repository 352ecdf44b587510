package stream

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/glovebox/glovebox/stream/internal/i420"
	"github.com/glovebox/glovebox/stream/internal/vpx"
)

func TestMain(m *testing.M) {
	base := runtime.NumGoroutine()
	code := m.Run()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		// go test -fuzz's coordinator has called signal.Notify, whose
		// goroutine stays for the life of the process.
		base++
	}
	if code == 0 {
		if err := settleGoroutines(base, 10*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// settleGoroutines waits for the goroutine count to fall back to base:
// pion's callbacks run on short-lived goroutines, so give them time.
func settleGoroutines(base int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return nil
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Errorf("goroutine leak: %d goroutines, %d before the tests:\n%s", n, base, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testLog is silent unless STREAM_TEST_LOG=1: pion logs from goroutines
// that outlive a test, where t.Log would panic.
func testLog() *slog.Logger {
	if os.Getenv("STREAM_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newTestServer(t *testing.T, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{Loopback: true}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewServer(cfg, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("server close: %v", err)
		}
	})
	return s
}

func newTestPeer(t *testing.T, s *Server, opts PeerOptions) *Peer {
	t.Helper()
	p, err := s.NewPeer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Colours as Y, Cb, Cr.
var (
	red   = [3]byte{81, 90, 240}
	green = [3]byte{145, 54, 34}
	blue  = [3]byte{41, 240, 110}
	grey  = [3]byte{128, 128, 128}
)

func solidJPEG(t testing.TB, w, h int, c [3]byte) []byte {
	t.Helper()
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for i := range img.Y {
		img.Y[i] = c[0]
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = c[1], c[2]
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rxFrame is one VP8 frame as the client received and decoded it.
type rxFrame struct {
	ts      uint32
	ssrc    uint32
	key     bool
	size    int
	w, h    int
	y, u, v float64 // mean colour
	err     error   // decode error
}

func (f rxFrame) is(c [3]byte) bool {
	const tol = 12
	return f.err == nil && math.Abs(f.y-float64(c[0])) < tol &&
		math.Abs(f.u-float64(c[1])) < tol && math.Abs(f.v-float64(c[2])) < tol
}

func (f rxFrame) String() string {
	return fmt.Sprintf("frame ts=%d key=%v %dx%d %d bytes yuv=%.0f/%.0f/%.0f err=%v",
		f.ts, f.key, f.w, f.h, f.size, f.y, f.u, f.v, f.err)
}

// testClient is a real pion peer playing the browser's part: it offers a
// recvonly VP8 transceiver and the "glovebox" data channel, reassembles and
// decodes the VP8 frames it receives.
type testClient struct {
	pc     *webrtc.PeerConnection
	dc     *webrtc.DataChannel
	frames chan rxFrame
	msgs   chan webrtc.DataChannelMessage
	open   chan struct{}

	playoutOK, playoutBad atomic.Int64
	packets               atomic.Int64
	audio                 chan *rtp.Packet // the audio track's packets (clientOpts.audio)
	audioPT               chan uint8       // the audio track's negotiated payload type, once
	srs                   chan *rtcp.SenderReport
}

type clientOpts struct {
	tcpOnly   bool
	codec     string // default VP8
	noVideo   bool
	noChannel bool
	// audio adds a recvonly Opus transceiver, as the landing page does.
	audio bool
	// lose, if set, drops the incoming RTP packets it returns true for,
	// before any interceptor (NACK) sees them: packets lost on the way.
	lose func(*rtp.Header) bool
}

// loseFactory makes the interceptor of clientOpts.lose.
type loseFactory struct{ lose func(*rtp.Header) bool }

func (f loseFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &loseInterceptor{lose: f.lose}, nil
}

type loseInterceptor struct {
	interceptor.NoOp
	lose func(*rtp.Header) bool
}

func (l *loseInterceptor) BindRemoteStream(_ *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attrs, err := r.Read(b, a)
			if err != nil {
				return n, attrs, err
			}
			var h rtp.Header
			if _, err := h.Unmarshal(b[:n]); err == nil && l.lose(&h) {
				continue
			}
			return n, attrs, nil
		}
	})
}

func newTestClient(t *testing.T, o clientOpts) *testClient {
	t.Helper()
	me := &webrtc.MediaEngine{}
	codec := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
		PayloadType:        100, // not ours: the server must use the offer's
	}
	if o.codec != "" {
		codec.MimeType = o.codec
	}
	must(t, me.RegisterCodec(codec, webrtc.RTPCodecTypeVideo))
	must(t, me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: PlayoutDelayURI}, webrtc.RTPCodecTypeVideo))
	if o.audio {
		must(t, me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
				SDPFmtpLine: "minptime=10;useinbandfec=1"},
			PayloadType: 109, // not ours: the server must use the offer's
		}, webrtc.RTPCodecTypeAudio))
	}
	ir := &interceptor.Registry{}
	if o.lose != nil {
		ir.Add(loseFactory{o.lose}) // first: nearest the network
	}
	must(t, webrtc.RegisterDefaultInterceptors(me, ir))
	se := webrtc.SettingEngine{LoggerFactory: newPionLoggerFactory(testLog())}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if o.lose != nil {
		// A packet lose drops has been through SRTP, which would refuse a
		// copy sent again as a replay; one lost on the way never arrived.
		se.DisableSRTPReplayProtection(true)
	}
	if o.tcpOnly {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	must(t, err)
	c := &testClient{
		pc:      pc,
		frames:  make(chan rxFrame, 512),
		msgs:    make(chan webrtc.DataChannelMessage, 64),
		open:    make(chan struct{}),
		audio:   make(chan *rtp.Packet, 4096),
		audioPT: make(chan uint8, 1),
		srs:     make(chan *rtcp.SenderReport, 256),
	}
	t.Cleanup(func() { _ = pc.Close() })
	if !o.noVideo {
		_, err = pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
			webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		must(t, err)
	}
	if o.audio {
		_, err = pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio,
			webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		must(t, err)
	}
	if !o.noChannel {
		ordered := true
		c.dc, err = pc.CreateDataChannel(DataChannelLabel, &webrtc.DataChannelInit{Ordered: &ordered})
		must(t, err)
		c.dc.OnOpen(func() { close(c.open) })
		c.dc.OnMessage(func(m webrtc.DataChannelMessage) { c.msgs <- m })
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) { c.readTrack(tr, recv) })
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// offer returns a non-trickle offer (candidates included), as the landing
// page sends it.
func (c *testClient) offer(t *testing.T) string {
	t.Helper()
	offer, err := c.pc.CreateOffer(nil)
	must(t, err)
	gathered := webrtc.GatheringCompletePromise(c.pc)
	must(t, c.pc.SetLocalDescription(offer))
	select {
	case <-gathered:
	case <-time.After(10 * time.Second):
		t.Fatal("client gathering timed out")
	}
	return c.pc.LocalDescription().SDP
}

func (c *testClient) accept(t *testing.T, answer string) {
	t.Helper()
	must(t, c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}))
}

// connect runs the offer/answer exchange with p.
func (c *testClient) connect(t *testing.T, p *Peer) string {
	t.Helper()
	answer, err := p.Answer(testCtx(t), c.offer(t))
	must(t, err)
	c.accept(t, answer)
	return answer
}

// readTrack reassembles VP8 frames from RTP (dropping incomplete ones) and
// decodes them in order.
func (c *testClient) readTrack(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	go func() {
		for {
			pkts, _, err := recv.ReadRTCP()
			if err != nil {
				return
			}
			for _, pkt := range pkts {
				if sr, ok := pkt.(*rtcp.SenderReport); ok {
					select {
					case c.srs <- sr:
					default:
					}
				}
			}
		}
	}()
	if tr.Kind() == webrtc.RTPCodecTypeAudio {
		c.audioPT <- uint8(tr.PayloadType())
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			select {
			case c.audio <- pkt:
			default:
			}
		}
	}
	var playoutID uint8
	for _, e := range recv.GetParameters().HeaderExtensions {
		if e.URI == PlayoutDelayURI {
			playoutID = uint8(e.ID)
		}
	}
	dec, err := vpx.NewDecoder()
	if err != nil {
		panic(err)
	}
	defer dec.Close()
	var (
		img     i420.Image
		cur     []byte
		curTS   uint32
		nextSeq uint16
		inFrame bool
	)
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		c.packets.Add(1)
		if ext := pkt.GetExtension(playoutID); playoutID != 0 && bytes.Equal(ext, []byte{0, 0, 0}) {
			c.playoutOK.Add(1)
		} else {
			c.playoutBad.Add(1)
		}
		var vp8 codecs.VP8Packet
		payload, err := vp8.Unmarshal(pkt.Payload)
		if err != nil {
			inFrame = false
			continue
		}
		switch {
		case vp8.S == 1 && vp8.PID == 0:
			cur, curTS, inFrame = cur[:0], pkt.Timestamp, true
		case !inFrame || pkt.SequenceNumber != nextSeq || pkt.Timestamp != curTS:
			inFrame = false
		}
		nextSeq = pkt.SequenceNumber + 1
		if !inFrame {
			continue
		}
		cur = append(cur, payload...)
		if !pkt.Marker {
			continue
		}
		inFrame = false
		f := rxFrame{ts: curTS, ssrc: pkt.SSRC, key: cur[0]&1 == 0, size: len(cur)}
		if f.err = dec.Decode(cur, &img); f.err == nil {
			f.w, f.h = img.Width, img.Height
			f.y, f.u, f.v = img.Mean()
		}
		select {
		case c.frames <- f:
		default:
		}
	}
}

// nextFrame returns the next frame received, failing after wait.
func (c *testClient) nextFrame(t *testing.T, wait time.Duration) rxFrame {
	t.Helper()
	select {
	case f := <-c.frames:
		return f
	case <-time.After(wait):
		t.Fatalf("no video frame within %v", wait)
		return rxFrame{}
	}
}

// waitFrame returns the first frame matching ok, failing after wait; frames
// skipped are passed to skipped (may be nil).
func (c *testClient) waitFrame(t *testing.T, wait time.Duration, ok func(rxFrame) bool, skipped func(rxFrame)) rxFrame {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case f := <-c.frames:
			if ok(f) {
				return f
			}
			if skipped != nil {
				skipped(f)
			}
		case <-deadline:
			t.Fatalf("no matching video frame within %v", wait)
		}
	}
}

func (c *testClient) drainFrames() {
	for {
		select {
		case <-c.frames:
		default:
			return
		}
	}
}

func waitChan(t *testing.T, ch <-chan struct{}, wait time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatalf("timed out after %v waiting for %s", wait, what)
	}
}

// closing reports whether Close has begun on p (it closes the slot first).
func closing(p *Peer) bool {
	p.slotMu.Lock()
	defer p.slotMu.Unlock()
	return p.slotClosed
}
