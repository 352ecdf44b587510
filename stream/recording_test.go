package stream

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/glovebox/glovebox/internal/testenv"
	"github.com/glovebox/glovebox/stream/record"
)

// probe is what ffprobe says of a recording.
type probe struct {
	Duration float64
	Streams  map[string]probeStream // by codec_type
}

type probeStream struct {
	Codec   string
	Frames  int // frames decoded (video) or packets read (audio)
	Width   int
	Height  int
	Channel int
}

// ffprobe reads path with Debian's ffprobe, decoding every frame.
func ffprobe(t *testing.T, path string) probe {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		testenv.Missing(t, "ffprobe not installed (apt install ffmpeg)")
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-count_packets",
		"-show_entries", "format=duration:stream=codec_type,codec_name,nb_read_frames,nb_read_packets,width,height,channels",
		"-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var raw struct {
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
		Streams []struct {
			Type     string `json:"codec_type"`
			Name     string `json:"codec_name"`
			Frames   string `json:"nb_read_frames"`
			Packets  string `json:"nb_read_packets"`
			Width    int    `json:"width"`
			Height   int    `json:"height"`
			Channels int    `json:"channels"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	p := probe{Streams: map[string]probeStream{}}
	p.Duration, _ = strconv.ParseFloat(raw.Format.Duration, 64)
	for _, s := range raw.Streams {
		n, _ := strconv.Atoi(s.Frames)
		if s.Type == "audio" {
			n, _ = strconv.Atoi(s.Packets)
		}
		p.Streams[s.Type] = probeStream{Codec: s.Name, Frames: n, Width: s.Width, Height: s.Height, Channel: s.Channels}
	}
	return p
}

// playerPage plays /file to its end and reports its duration.
const playerPage = `<!doctype html>
<video id=v src="/file" muted playsinline></video>
<script>
window.state = {ended: false, duration: 0, err: null, w: 0, h: 0};
const v = document.getElementById('v');
v.onended = () => { state.ended = true; state.duration = v.duration; state.w = v.videoWidth; state.h = v.videoHeight; };
v.onerror = () => { state.err = 'media error ' + (v.error && v.error.code) + ': ' + (v.error && v.error.message); };
v.play().catch(e => { state.err = String(e); });
</script>`

// playInChromium plays the recording at path in a real Chromium's <video>
// and returns the duration it reports once it has ended.
func playInChromium(t *testing.T, path string) (duration float64, w, h int) {
	t.Helper()
	browser, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Missing(t, "chromium not installed")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, playerPage)
	})
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })
	web := httptest.NewServer(mux)
	defer web.Close()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"), // nothing leaves the machine
	}
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // only our own local page is loaded
	}
	actx, cancelA := chromedp.NewExecAllocator(t.Context(), append(chromedp.DefaultExecAllocatorOptions[:], opts...)...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(web.URL)); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	type state struct {
		Ended    bool    `json:"ended"`
		Duration float64 `json:"duration"`
		Err      *string `json:"err"`
		W        int     `json:"w"`
		H        int     `json:"h"`
	}
	// ended comes once the recording has played through, at its own pace.
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := chromedp.Run(ctx, chromedp.Evaluate[state]("window.state"))
		if err != nil {
			t.Fatalf("read player state: %v", err)
		}
		if st.Err != nil {
			t.Fatalf("Chromium cannot play %s: %s", filepath.Base(path), *st.Err)
		}
		if st.Ended {
			return st.Duration, st.W, st.H
		}
		if time.Now().After(deadline) {
			t.Fatalf("Chromium never reached the end of %s: %+v", filepath.Base(path), st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRecording: a peer with a Recorder records what it sends: the file
// (WebM, VP8 and Opus) has every frame sent, ffprobe reads its duration and
// frames, and a real Chromium plays it to its end with the duration the
// frames' capture times span.
func TestRecording(t *testing.T) {
	testenv.SkipShort(t, "starts Chromium")
	store := record.NewStore(record.Config{Dir: filepath.Join(t.TempDir(), "rec")}, testLog())
	must(t, store.Prepare())
	rec := store.Start("tab1", true)
	s := newTestServer(t, nil)
	p := newTestPeer(t, s, PeerOptions{Audio: true, Recorder: rec})
	c := newTestClient(t, clientOpts{audio: true})
	c.connect(t, p)
	waitChan(t, c.open, 20*time.Second, "data channel open")

	// 3 s of a page changing every 200 ms, by the frames' capture times:
	// each frame waits for the one before to arrive, not for the clock.
	colours := [][3]byte{red, green, blue, grey}
	t0 := time.Now()
	const steps = 15
	for i := 0; i <= steps; i++ {
		col := colours[i%len(colours)]
		p.Submit(solidJPEG(t, 320, 240, col), t0.Add(time.Duration(i)*200*time.Millisecond), nil)
		if i == 1 {
			// A second of a tone from 200 ms on, on the same clock.
			f := &audioFeed{p: p, t0: t0.Add(200 * time.Millisecond)}
			f.write(1000, 8000, 1000)
		}
		c.waitFrame(t, 10*time.Second, func(f rxFrame) bool { return f.is(col) }, nil)
	}
	// After Close: an idle refresh may still go out (and be recorded)
	// until the encoder stops.
	must(t, p.Close())
	sent := p.Stats().FramesSent
	res := rec.Close()
	if res.Err != nil || res.Path == "" {
		t.Fatalf("recording: %+v", res)
	}
	if res.Frames != int64(sent) {
		t.Errorf("recording has %d frames, the peer sent %d", res.Frames, sent)
	}
	info, err := os.Stat(res.Path)
	must(t, err)
	if filepath.Ext(res.Path) != ".webm" || info.Mode().Perm() != 0o640 || info.Size() != res.Bytes {
		t.Errorf("recording %s: mode %v, %d bytes (result says %d)", res.Path, info.Mode(), info.Size(), res.Bytes)
	}
	if d, err := os.Stat(filepath.Dir(res.Path)); err != nil || d.Mode().Perm() != 0o750 {
		t.Errorf("recording directory: %v %v", d.Mode(), err)
	}

	const want = 3.0 // seconds between the first frame and the last
	pr := ffprobe(t, res.Path)
	v, a := pr.Streams["video"], pr.Streams["audio"]
	if pr.Duration < want-1 || pr.Duration > want+1 {
		t.Errorf("ffprobe: duration %.3f s, want %.0f ± 1", pr.Duration, want)
	}
	if v.Codec != "vp8" || v.Frames != int(res.Frames) || v.Width != 320 || v.Height != 240 {
		t.Errorf("ffprobe: video %+v, want vp8 320x240 with %d frames", v, res.Frames)
	}
	// The track has no gap: 20 ms packets from the first frame to the last
	// block, silence where the tone was not.
	if a.Codec != "opus" || a.Frames < 140 || a.Frames != int(res.AudioPackets) {
		t.Errorf("ffprobe: audio %+v, want opus with %d packets (about 150)", a, res.AudioPackets)
	}
	// Every block decodes, the silence that fills the audio track too.
	if out, err := exec.Command("ffmpeg", "-v", "error", "-xerror", "-i", res.Path, "-f", "null", "-").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("ffmpeg decoding the recording: %v\n%s", err, out)
	}
	t.Logf("recording: %d frames, %d audio packets, %d bytes, %v; ffprobe %.3f s", res.Frames, res.AudioPackets, res.Bytes, res.Duration, pr.Duration)

	d, w, h := playInChromium(t, res.Path)
	if d < want-1 || d > want+1 || w != 320 || h != 240 {
		t.Errorf("Chromium played %.3f s at %dx%d, want %.0f ± 1 s at 320x240", d, w, h, want)
	}
}
