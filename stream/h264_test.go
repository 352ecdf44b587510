package stream

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/glovebox/glovebox/internal/testenv"
	"github.com/glovebox/glovebox/stream/internal/i420"
	"github.com/glovebox/glovebox/stream/internal/tjpeg"
	"github.com/pion/webrtc/v4"
)

// h264OnlyViewer is viewerPage with the video transceiver limited to H.264
// (packetization-mode 1) by setCodecPreferences, which also reports the
// codec the browser decodes.
var h264OnlyViewer = strings.NewReplacer(
	`pc.addTransceiver('video', {direction: 'recvonly'});`,
	`const tr = pc.addTransceiver('video', {direction: 'recvonly'});
    const h264 = RTCRtpReceiver.getCapabilities('video').codecs.filter(c =>
      c.mimeType === 'video/H264' && /packetization-mode=1/.test(c.sdpFmtpLine || ''));
    if (!h264.length) { state.err = 'no-h264'; return; }
    tr.setCodecPreferences(h264);`,
	`(await pc.getStats()).forEach(r => {`,
	`const stats = await pc.getStats(); stats.forEach(r => {`,
	`state.keyframes = r.keyFramesDecoded || 0;`,
	`state.keyframes = r.keyFramesDecoded || 0;
          const c = r.codecId && stats.get(r.codecId);
          state.codec = c ? c.mimeType : '';`).Replace(viewerPage)

// TestChromiumH264 checks that a browser offering only H.264 gets H.264:
// the answer carries no VP8, Chromium decodes H.264 (its stats say so) and
// shows the right colour, then the next one after a change.
func TestChromiumH264(t *testing.T) {
	testenv.SkipShort(t, "starts Chromium")
	browser, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Missing(t, "chromium not installed")
	}
	page := h264OnlyViewer
	if !strings.Contains(page, "setCodecPreferences") || !strings.Contains(page, "state.codec") ||
		!strings.Contains(page, "const stats") {
		t.Fatal("viewer page did not take the H.264 edits: update the replacements")
	}
	srv := newTestServer(t, nil)
	peer := newTestPeer(t, srv, PeerOptions{})
	answers := make(chan string, 1)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, page)
	})
	mux.HandleFunc("POST /offer", func(w http.ResponseWriter, r *http.Request) {
		offer, _ := io.ReadAll(r.Body)
		if strings.Contains(string(offer), "VP8/90000") {
			http.Error(w, "the viewer offered VP8", http.StatusBadRequest)
			return
		}
		answer, err := peer.Answer(r.Context(), string(offer))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		answers <- answer
		_, _ = io.WriteString(w, answer)
	})
	web := httptest.NewServer(mux)
	defer web.Close()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser),
		// WebRTC on loopback only (media.md, pitfall 8).
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"), // nothing leaves the machine
	}
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // only our own local page is loaded
	}
	ctx, cancel := chromedp.NewContext(t.Context(), chromedp.WithAllocatorOptions(opts...))
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(web.URL)); err != nil {
		t.Fatalf("navigate: %v", err)
	}

	type state struct {
		viewerState
		Codec string `json:"codec"`
	}
	wait := func(what string, ok func(state) bool) state {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, err := chromedp.Run(ctx, chromedp.Evaluate[state]("window.state"))
			if err != nil {
				t.Fatalf("read viewer state: %v", err)
			}
			if st.Err != nil {
				if *st.Err == "no-h264" {
					testenv.Missing(t, "this Chromium cannot receive H.264")
				}
				t.Fatalf("viewer: %s", *st.Err)
			}
			if ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("viewer never showed %s: %+v", what, st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	peer.Submit(solidJPEG(t, 320, 240, red), time.Now(), nil)
	st := wait("red", func(s state) bool {
		return s.Frames > 0 && len(s.RGB) == 3 && s.RGB[0] > 200 && s.RGB[1] < 60 && s.RGB[2] < 60
	})
	if st.Codec != "video/H264" {
		t.Errorf("viewer decodes %q, want video/H264", st.Codec)
	}
	if st.W != 320 || st.H != 240 || st.Keyframes < 1 {
		t.Errorf("viewer %+v, want 320x240 and a keyframe", st)
	}
	select {
	case answer := <-answers:
		if !strings.Contains(answer, "H264/90000") || strings.Contains(answer, "VP8/90000") {
			t.Errorf("answer does not carry H.264 alone:\n%s", answer)
		}
	default:
		t.Error("no answer recorded")
	}
	if got := peer.track.mime(); got != "video/H264" {
		t.Errorf("track bound to %q", got)
	}

	// A change after the keyframe: a P-frame decodes too.
	peer.Submit(solidJPEG(t, 320, 240, blue), time.Now(), nil)
	wait("blue", func(s state) bool {
		return len(s.RGB) == 3 && s.RGB[2] > 200 && s.RGB[0] < 60 && s.RGB[1] < 60
	})
}

func TestPickCodec(t *testing.T) {
	vp8 := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, PayloadType: 96}
	h264 := func(pt webrtc.PayloadType, fmtp string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/h264", SDPFmtpLine: fmtp}, PayloadType: pt}
	}
	mode0 := h264(102, "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f")
	mode1 := h264(103, "level-asymmetry-allowed=1; packetization-mode=1;profile-level-id=42e01f")
	for _, tc := range []struct {
		name   string
		offer  []webrtc.RTPCodecParameters
		prefs  []string
		wantPT webrtc.PayloadType // 0: none
	}{
		{"vp8 preferred", []webrtc.RTPCodecParameters{mode1, vp8}, DefaultCodecs, 96},
		{"h264 preferred", []webrtc.RTPCodecParameters{vp8, mode1}, []string{CodecH264, CodecVP8}, 103},
		{"h264 only configured", []webrtc.RTPCodecParameters{vp8, mode1}, []string{CodecH264}, 103},
		{"vp8 only configured, h264 offered", []webrtc.RTPCodecParameters{mode1}, []string{CodecVP8}, 0},
		{"h264 mode 1", []webrtc.RTPCodecParameters{mode0, mode1}, DefaultCodecs, 103},
		{"h264 mode 0 only", []webrtc.RTPCodecParameters{mode0}, DefaultCodecs, 0},
		{"none", nil, DefaultCodecs, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := pickCodec(tc.offer, tc.prefs)
			if ok != (tc.wantPT != 0) || c.PayloadType != tc.wantPT {
				t.Errorf("pickCodec = %d, %v; want %d", c.PayloadType, ok, tc.wantPT)
			}
		})
	}
}

// BenchmarkEncodeH264_720p is BenchmarkEncode720p's scrolling page through
// openh264 instead of libvpx, for comparison.
func BenchmarkEncodeH264_720p(b *testing.B) {
	frames := pageFrames(b, 30)
	dec, err := tjpeg.NewDecoder()
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	enc, err := newFrameEncoder(webrtc.MimeTypeH264, 1280, 720, DefaultMaxBitrate/1000)
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	var img i420.Image
	var encodeTime time.Duration
	var outBytes, n int
	for b.Loop() {
		if err := dec.Decode(frames[n%len(frames)], &img); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		frame, _, err := enc.Encode(&img, int64(n)*3000, 3000, n == 0)
		if err != nil {
			b.Fatal(err)
		}
		encodeTime += time.Since(t0)
		outBytes += len(frame)
		n++
	}
	b.ReportMetric(float64(encodeTime.Microseconds())/1000/float64(n), "encode-ms/frame")
	b.ReportMetric(float64(outBytes)/1000/float64(n), "kB/frame")
}
