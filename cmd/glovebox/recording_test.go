package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestRecordingEndToEnd: under record: true, a real tab's video, as the
// user's Chromium was sent it, is in a WebM file that tab_end names, in a
// 0750 directory as a 0640 file; ffprobe reads its duration (the span the
// user received video, at least) and every frame sent, and a real Chromium
// plays it to ended with that duration. (TestRecording in stream checks the
// duration to the second against frames of known capture times.)
func TestRecordingEndToEnd(t *testing.T) {
	site, g, dir, bctx := recordingGlovebox(t, "ffprobe", nil)
	tctx, closeTab := chromedp.NewContext(bctx)
	defer closeTab()
	opened := time.Now()
	if err := chromedp.Do(tctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		for _, src := range []string{recordPeers, firstFrameAt} {
			if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src}); err != nil {
				return err
			}
		}
		return nil
	}), chromedp.Navigate(site.URL+"/animated")); err != nil {
		t.Fatalf("navigate the user's browser: %v", err)
	}

	// Two seconds' worth of the animation, by the frames the viewer showed.
	waitFor(t, 60*time.Second, "60 frames shown", func() (bool, string) {
		c, err := readViewer(tctx)
		if err != nil {
			return false, err.Error()
		}
		return c.Frames >= 60, fmt.Sprintf("%+v", c)
	})
	// From the first frame the user's browser received to its hanging up
	// (no frame goes after that): what the recording should last.
	watched, err := chromedp.Run(tctx, chromedp.Evaluate[float64](`(() => {
		for (const pc of (window.__gbPCs || [])) pc.close();
		return (performance.now() - window.__gbFirstFrame) / 1000;
	})()`))
	if err != nil || !(watched > 0) {
		t.Fatalf("the user's browser received video for %v s: %v", watched, err)
	}
	end := closeAndTabEnd(t, g, closeTab)

	file, _ := end["recording"].(string)
	if file == "" || end["recording_error"] != "" {
		t.Fatalf("tab_end recording %q, recording_error %q", file, end["recording_error"])
	}
	if filepath.Dir(file) != dir || !strings.HasPrefix(filepath.Base(file), "glovebox-") || filepath.Ext(file) != ".webm" ||
		!strings.Contains(file, fmt.Sprint(end["tab"])) {
		t.Errorf("recording %s: want a glovebox-*-%v-*.webm in %s", file, end["tab"], dir)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("recording file: %v %v, want mode 0640", fi, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("recording directory: %v %v, want mode 0750", fi, err)
	}

	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "format=duration:stream=codec_name,nb_read_frames,width,height", "-of", "json", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	var probe struct {
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
		Streams []struct {
			Codec  string `json:"codec_name"`
			Frames string `json:"nb_read_frames"`
			Width  int    `json:"width"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &probe); err != nil || len(probe.Streams) != 1 {
		t.Fatalf("ffprobe output %v: %s", err, out)
	}
	duration, _ := strconv.ParseFloat(probe.Format.Duration, 64)
	frames, _ := strconv.Atoi(probe.Streams[0].Frames)
	if probe.Streams[0].Codec != "vp8" || float64(frames) < num(end, "frames_sent") || probe.Streams[0].Width == 0 {
		t.Errorf("ffprobe: %+v, want vp8 with the %v frames sent", probe.Streams[0], end["frames_sent"])
	}
	// The recording holds all the user got (from the first frame sent,
	// which the page's 10 ms poll of its stats sees some 0.5 s late), and
	// nothing from before the tab was asked for.
	if lifetime := time.Since(opened).Seconds(); duration < watched-1 || duration > lifetime {
		t.Errorf("ffprobe: %.3f s; the user received video for %.3f s, of a tab open %.3f s", duration, watched, lifetime)
	}

	played := playRecording(t, file)
	if played < duration-1 || played > duration+1 {
		t.Errorf("Chromium played %.3f s, ffprobe says %.3f s", played, duration)
	}
	t.Logf("the user received video for %.2f s; recording %s: %d frames, %.3f s (ffprobe), %.3f s (Chromium); tab_end frames_sent %v",
		watched, filepath.Base(file), frames, duration, played, end["frames_sent"])
}

// firstFrameAt notes in the landing page (window.__gbFirstFrame, on
// performance.now()'s clock) when its first video frame came, polling its
// peer connections' stats every 10 ms (recordPeers keeps them).
const firstFrameAt = `(() => {
	const poll = async () => {
		for (const pc of (window.__gbPCs || [])) {
			let got = false;
			(await pc.getStats()).forEach(r => { if (r.type === 'inbound-rtp' && r.kind === 'video' && r.framesReceived > 0) got = true; });
			if (got) { window.__gbFirstFrame = performance.now(); return; }
		}
		setTimeout(poll, 10);
	};
	poll();
})()`

// playRecording plays the file in a <video> of a real Chromium (not the
// user's: no proxy) and returns its duration once it has ended.
func playRecording(t *testing.T, path string) float64 {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><video id=v src="/file" muted playsinline></video><script>
window.state = {ended: false, duration: 0, err: null};
const v = document.getElementById('v');
v.onended = () => { state.ended = true; state.duration = v.duration; };
v.onerror = () => { state.err = 'media error ' + (v.error && v.error.code) + ': ' + (v.error && v.error.message); };
v.play().catch(e => { state.err = String(e); });
</script>`)
	})
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })
	web := httptest.NewServer(mux)
	defer web.Close()
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // only our own local page is loaded
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
	)...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(web.URL)); err != nil {
		t.Fatalf("navigate the player: %v", err)
	}
	type state struct {
		Ended    bool    `json:"ended"`
		Duration float64 `json:"duration"`
		Err      *string `json:"err"`
	}
	var st state
	waitFor(t, 60*time.Second, "the recording to play to its end", func() (bool, string) {
		var err error
		if st, err = chromedp.Run(ctx, chromedp.Evaluate[state]("window.state")); err != nil {
			return false, err.Error()
		}
		if st.Err != nil {
			t.Fatalf("Chromium cannot play %s: %s", filepath.Base(path), *st.Err)
		}
		return st.Ended, fmt.Sprintf("%+v", st)
	})
	return st.Duration
}

// recordingGlovebox starts a Glovebox that records every tab into dir,
// and the user's browser; tool (ffprobe, ffmpeg) is what the test reads
// the recording with. mutate, if set, changes the configuration further.
func recordingGlovebox(t *testing.T, tool string, mutate func(*Config)) (*testSite, *glovebox, string, context.Context) {
	t.Helper()
	needChromium(t)
	if _, err := exec.LookPath(tool); err != nil {
		missing(t, "%s not installed (make test installs ffmpeg)", tool)
	}
	site := newTestSite(t)
	dir := filepath.Join(t.TempDir(), "recordings")
	g := startGlovebox(t, func(c *Config) {
		c.Proxy.Policy.Defaults.Record = true
		c.Recording.Dir = dir
		if mutate != nil {
			mutate(c)
		}
	})
	return site, g, dir, userBrowser(t, g.addr)
}

// TestRecordingSound: the recording of a tab that plays sound has it: an
// Opus track in which ffmpeg finds the page's 440 Hz tone.
func TestRecordingSound(t *testing.T) {
	site, g, dir, bctx := recordingGlovebox(t, "ffmpeg", nil)
	tctx, closeTab := chromedp.NewContext(bctx)
	defer closeTab()
	if err := chromedp.Do(tctx, chromedp.Navigate(site.URL+"/sound")); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, tctx, 700, 400, soundColour, 60*time.Second)
	// The user's click plays the tone (and unmutes the landing page).
	if err := chromedp.Do(tctx, chromedp.MouseClickXY(400, 300)); err != nil {
		t.Fatal(err)
	}
	waitTone(t, tctx, "before the tab closes")
	end := closeAndTabEnd(t, g, closeTab)
	file, _ := end["recording"].(string)
	if file == "" || end["recording_error"] != "" || filepath.Dir(file) != dir {
		t.Fatalf("tab_end recording %q (want it in %s), recording_error %q", file, dir, end["recording_error"])
	}
	// The tone's level, through a narrow band-pass at 440 Hz and at 3 kHz.
	level := func(hz int) float64 {
		out, err := exec.Command("ffmpeg", "-v", "info", "-nostats", "-i", file, "-map", "0:a",
			"-af", fmt.Sprintf("bandpass=f=%d:width_type=q:w=10,volumedetect", hz), "-f", "null", "-").CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
		_, after, ok := strings.Cut(string(out), "max_volume: ")
		if !ok {
			t.Fatalf("ffmpeg found no audio:\n%s", out)
		}
		v, err := strconv.ParseFloat(strings.Fields(after)[0], 64)
		if err != nil {
			t.Fatalf("ffmpeg max_volume %q", after)
		}
		return v
	}
	tone, far := level(440), level(3000)
	if tone < -40 || tone-far < 20 {
		t.Errorf("the recording's sound: %.1f dB at 440 Hz, %.1f dB at 3 kHz; want the tone well above the rest", tone, far)
	}
	t.Logf("recording %s: %.1f dB at 440 Hz, %.1f dB at 3 kHz", filepath.Base(file), tone, far)
}

// TestRecordingUnwritable: a recording directory that cannot be made stops
// no tab: it shows as usual, and tab_end says the recording failed.
func TestRecordingUnwritable(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	notDir := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGlovebox(t, func(c *Config) {
		c.Proxy.Policy.Defaults.Record = true
		c.Recording.Dir = filepath.Join(notDir, "recordings")
	})
	bctx := userBrowser(t, g.addr)
	tctx, closeTab := openIsolated(t, bctx, site.URL+"/")
	defer closeTab()
	waitForColour(t, tctx, 400, 300, rgb{0, 160, 0}, 60*time.Second)
	end := closeAndTabEnd(t, g, closeTab)
	if end["recording"] != "" || !strings.Contains(fmt.Sprint(end["recording_error"]), "not a directory") {
		t.Errorf("tab_end recording %q, recording_error %q; want none, and why", end["recording"], end["recording_error"])
	}
	if end["reason"] != "closed by user" || num(end, "frames_sent") < 1 {
		t.Errorf("tab_end %v: the tab did not go on as usual", end)
	}
}

// TestRecordingH264: a tab sent as H.264 is recorded as H.264 in Matroska,
// which ffprobe decodes whole and a real Chromium plays to its end.
func TestRecordingH264(t *testing.T) {
	site, g, dir, bctx := recordingGlovebox(t, "ffprobe", func(c *Config) { c.Stream.Codecs = []string{"h264"} })
	tctx, closeTab := openIsolated(t, bctx, site.URL+"/animated")
	defer closeTab()
	waitFor(t, 60*time.Second, "30 frames shown", func() (bool, string) {
		c, err := readViewer(tctx)
		return err == nil && c.Frames >= 30, fmt.Sprintf("%+v %v", c, err)
	})
	end := closeAndTabEnd(t, g, closeTab)
	file, _ := end["recording"].(string)
	if filepath.Ext(file) != ".mkv" || filepath.Dir(file) != dir || end["codec"] != "h264" || end["recording_error"] != "" {
		t.Fatalf("tab_end codec %v, recording %q, recording_error %q; want an h264 .mkv in %s", end["codec"], file, end["recording_error"], dir)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "format=duration:stream=codec_name,nb_read_frames", "-of", "csv=p=0", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	// "h264,71\n2.345000\n"
	fields := strings.FieldsFunc(string(out), func(r rune) bool { return r == ',' || r == '\n' })
	if len(fields) != 3 || fields[0] != "h264" {
		t.Fatalf("ffprobe: %q", out)
	}
	frames, _ := strconv.Atoi(fields[1])
	duration, _ := strconv.ParseFloat(fields[2], 64)
	if float64(frames) < num(end, "frames_sent") || duration <= 0 {
		t.Errorf("ffprobe: %d frames, %.3f s; tab_end frames_sent %v", frames, duration, end["frames_sent"])
	}
	played := playRecording(t, file)
	if played < duration-1 || played > duration+1 {
		t.Errorf("Chromium played %.3f s, ffprobe says %.3f s", played, duration)
	}
	t.Logf("recording %s: %d frames, %.3f s (ffprobe), %.3f s (Chromium)", filepath.Base(file), frames, duration, played)
}
