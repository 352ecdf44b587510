package stream

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/glovebox/glovebox/internal/testenv"
)

// viewerPage plays the part of the landing page: a recvonly video
// transceiver and the "glovebox" channel, a non-trickle offer POSTed to
// /offer; it echoes channel messages and reports what it shows.
const viewerPage = `<!doctype html>
<video id=v autoplay muted playsinline></video><canvas id=c width=64 height=48></canvas>
<script>
window.state = {frames: 0, keyframes: 0, w: 0, h: 0, rgb: null, msgs: [], err: null, conn: ''};
(async () => {
  try {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('video', {direction: 'recvonly'});
    const dc = pc.createDataChannel('glovebox', {ordered: true});
    dc.onmessage = e => { state.msgs.push(e.data); dc.send('echo:' + e.data); };
    pc.onconnectionstatechange = () => { state.conn = pc.connectionState; };
    const v = document.getElementById('v');
    pc.ontrack = e => { v.srcObject = new MediaStream([e.track]); };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise(r => {
      if (pc.iceGatheringState === 'complete') return r();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r();
    });
    const resp = await fetch('/offer', {method: 'POST', body: pc.localDescription.sdp});
    if (!resp.ok) throw new Error('answer: ' + await resp.text());
    await pc.setRemoteDescription({type: 'answer', sdp: await resp.text()});
    const ctx = document.getElementById('c').getContext('2d', {willReadFrequently: true});
    const tick = async () => {
      (await pc.getStats()).forEach(r => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') {
          state.frames = r.framesDecoded || 0;
          state.keyframes = r.keyFramesDecoded || 0;
        }
      });
      state.w = v.videoWidth; state.h = v.videoHeight;
      if (v.videoWidth) {
        ctx.drawImage(v, 0, 0, 64, 48);
        state.rgb = Array.from(ctx.getImageData(32, 24, 1, 1).data.slice(0, 3));
      }
      setTimeout(tick, 50);
    };
    tick();
  } catch (e) { state.err = String(e); }
})();
</script>`

type viewerState struct {
	Frames    int      `json:"frames"`
	Keyframes int      `json:"keyframes"`
	W         int      `json:"w"`
	H         int      `json:"h"`
	RGB       []int    `json:"rgb"`
	Msgs      []string `json:"msgs"`
	Err       *string  `json:"err"`
	Conn      string   `json:"conn"`
}

// TestChromium checks the whole path against a real browser: Chromium
// accepts the answer, connects over loopback, decodes the VP8 (the colour
// is right) and talks on the data channel.
func TestChromium(t *testing.T) {
	testenv.SkipShort(t, "starts Chromium")
	browser, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Missing(t, "chromium not installed")
	}
	srv := newTestServer(t, nil)
	echoed := make(chan []byte, 8)
	opened := make(chan struct{})
	peer := newTestPeer(t, srv, PeerOptions{
		OnMessage: func(m []byte) { echoed <- m },
		OnOpen:    func() { close(opened) },
	})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, viewerPage)
	})
	mux.HandleFunc("POST /offer", func(w http.ResponseWriter, r *http.Request) {
		offer, _ := io.ReadAll(r.Body)
		answer, err := peer.Answer(r.Context(), string(offer))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
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
		// Only our own local page is loaded; root cannot use the sandbox.
		opts = append(opts, chromedp.NoSandbox)
	}
	ctx, cancel := chromedp.NewContext(t.Context(), chromedp.WithAllocatorOptions(opts...))
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(web.URL)); err != nil {
		t.Fatalf("navigate: %v", err)
	}

	// A page that changes once and then stands still, like most pages.
	peer.Submit(solidJPEG(t, 320, 240, red), time.Now(), nil)

	var st viewerState
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err = chromedp.Run(ctx, chromedp.Evaluate[viewerState]("window.state"))
		if err != nil {
			t.Fatalf("read viewer state: %v", err)
		}
		if st.Err != nil {
			t.Fatalf("viewer: %s", *st.Err)
		}
		if st.Frames > 0 && len(st.RGB) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("viewer shows nothing: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.W != 320 || st.H != 240 || st.Keyframes < 1 {
		t.Errorf("viewer %+v, want 320x240 and a keyframe", st)
	}
	if r, g, b := st.RGB[0], st.RGB[1], st.RGB[2]; r < 200 || g > 60 || b > 60 {
		t.Errorf("viewer shows rgb %v, want red", st.RGB)
	}

	waitChan(t, opened, 10*time.Second, "data channel open")
	must(t, peer.Send([]byte("ping")))
	select {
	case m := <-echoed:
		if string(m) != "echo:ping" {
			t.Errorf("echo %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no echo from the viewer")
	}
}
