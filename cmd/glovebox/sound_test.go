package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/glovebox/glovebox/proxy/policy"
)

// soundColour is sound.html's background.
var soundColour = rgb{200, 0, 120}

// heard is what the user's page measures of the sound it receives.
type heard struct {
	Err         string  // why nothing was measured
	AudioTracks int     // audio tracks in the video element's stream
	VideoTracks int     // video tracks in the same stream
	Muted       bool    // the video element's muted
	Button      bool    // the "click for sound" button shows
	Tone        float64 // dB at 440 Hz, from an AnalyserNode on the received track
	Far         float64 // dB at 3 kHz, where the tone has nothing
}

// listen measures, in the user's landing page, the received audio track with
// a WebAudio AnalyserNode (made once, on the first call).
func listen(ctx context.Context) (heard, error) {
	const js = `(() => {
		const v = document.getElementById('glovebox-screen');
		const b = document.getElementById('glovebox-sound');
		const s = v && v.srcObject;
		if (!s) return { Err: 'no stream' };
		const r = { AudioTracks: s.getAudioTracks().length, VideoTracks: s.getVideoTracks().length,
			Muted: v.muted, Button: !!b && !b.hidden, Tone: -200, Far: -200 };
		if (!r.AudioTracks) return r;
		if (!window.__soundTest) {
			const ac = new AudioContext();
			const an = ac.createAnalyser();
			an.fftSize = 4096;
			ac.createMediaStreamSource(new MediaStream([s.getAudioTracks()[0]])).connect(an);
			window.__soundTest = { ac, an };
		}
		const { ac, an } = window.__soundTest;
		// Made before the user's first click, it starts suspended where
		// the browser wants a gesture; after the click it may run.
		if (ac.state === 'suspended') ac.resume();
		const d = new Float32Array(an.frequencyBinCount);
		an.getFloatFrequencyData(d);
		const bin = (hz) => Math.round(hz * an.fftSize / ac.sampleRate);
		let tone = -200;
		for (let i = bin(440) - 2; i <= bin(440) + 2; i++) tone = Math.max(tone, d[i]);
		r.Tone = tone;
		r.Far = Math.max(-200, d[bin(3000)]);
		if (ac.state !== 'running') r.Err = 'analyser context ' + ac.state;
		return r;
	})()`
	return chromedp.Run(ctx, chromedp.Evaluate[heard](js))
}

// tabOf waits for the tab_start of the tab that opened url's path.
func tabOf(t *testing.T, g *glovebox, path string) string {
	t.Helper()
	var tab string
	waitFor(t, 60*time.Second, "tab_start of "+path, func() (bool, string) {
		for _, e := range g.audit.events() {
			if u, _ := e["url"].(string); e["event"] == "tab_start" && strings.Contains(u, path) {
				tab, _ = e["tab"].(string)
				return true, ""
			}
		}
		return false, ""
	})
	return tab
}

// audioPackets is the tab's glovebox_tab_audio_packets_total.
func audioPackets(t *testing.T, admin, tab string) float64 {
	t.Helper()
	v, _, ok := seriesValue(scrapeMetrics(t, admin), "glovebox_tab_audio_packets_total", tab)
	if !ok {
		t.Fatalf("no glovebox_tab_audio_packets_total for tab %s", tab)
	}
	return v
}

// readsFIFO reports whether this process (Glovebox in the test) has a
// browser's sound device open.
func readsFIFO() bool {
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if l, _ := os.Readlink("/proc/self/fd/" + fd.Name()); strings.HasSuffix(l, "/audio.fifo") {
			return true
		}
	}
	return false
}

// openSound opens page (a path of sound.html) in the user's browser through
// g and waits for its video, then for its audio to have run two seconds,
// and checks the gain it reports.
func openSound(t *testing.T, g *glovebox, site *testSite, page, gain string) context.Context {
	t.Helper()
	ctx := userBrowser(t, g.addr)
	if err := chromedp.Do(ctx, chromedp.Navigate(site.URL+page)); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, ctx, 700, 400, soundColour, 60*time.Second)
	waitFor(t, 60*time.Second, "the remote page's audio to run", func() (bool, string) {
		r := site.lastReport("playing")
		return r != "", r
	})
	if got := site.lastReport("playing"); got != gain {
		t.Fatalf("the page's gain is %s, want %s", got, gain)
	}
	return ctx
}

// waitTone waits for the user's page to hear a 440 Hz tone well above
// silence, and returns what it heard.
func waitTone(t *testing.T, ctx context.Context, what string) heard {
	t.Helper()
	var h heard
	waitFor(t, 60*time.Second, "the tone at 440 Hz in the user's page "+what, func() (bool, string) {
		var err error
		h, err = listen(ctx)
		return err == nil && h.Err == "" && h.Tone > -50 && h.Tone-h.Far > 20, fmt.Sprintf("%+v %v", h, err)
	})
	return h
}

// TestSound is issue 11's sound: a silent remote page, whose audio runs,
// sends no audio packet, though the user's page has the audio track, in
// the video's own stream; once the page plays a 440 Hz tone (on the user's
// click, which unmutes the landing page too), the user's page hears it at
// 440 Hz, well above silence.
func TestSound(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	g := startGlovebox(t, func(c *Config) { c.Admin.Listen = admin })
	ctx := openSound(t, g, site, "/sound", "0") // silent
	tab := tabOf(t, g, "/sound")
	var h heard
	waitFor(t, 60*time.Second, "the audio track in the video's stream", func() (bool, string) {
		var err error
		h, err = listen(ctx)
		return err == nil && h.AudioTracks == 1 && h.VideoTracks == 1, fmt.Sprintf("%+v %v", h, err)
	})
	if !readsFIFO() {
		t.Error("Glovebox does not read the browser's sound device")
	}
	// Two seconds of digital silence have gone through the sound device.
	if n := audioPackets(t, admin, tab); n != 0 {
		t.Errorf("a silent page sent %v audio packets, want 0", n)
	}

	// The user's click reaches the remote page, which plays its tone.
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(400, 300)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the remote page's tone", func() (bool, string) {
		r := site.lastReport("tone")
		return r != "", r
	})
	h = waitTone(t, ctx, "after the click")
	t.Logf("heard: %+v", h)
	if h.Muted || h.Button {
		t.Errorf("the landing page is still muted (%v) or asks for a click (%v) after the user's click", h.Muted, h.Button)
	}
	if n := audioPackets(t, admin, tab); n == 0 {
		t.Error("the tone was heard but the tab counts no audio packets")
	}
}

// TestSoundOffByPolicy: a rule with audio: false gives the tab no audio
// track, and Glovebox does not read the sound device of its browser,
// while the remote page plays a tone.
func TestSoundOffByPolicy(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	g := startGlovebox(t, func(c *Config) {
		c.Admin.Listen = admin
		c.Proxy.Policy.Rules = append(c.Proxy.Policy.Rules,
			policy.Rule{Name: "quiet", Host: "127.0.0.1", Action: policy.ActionIsolate, Audio: new(false)})
	})
	ctx := openSound(t, g, site, "/sound?tone", "0.5")
	tab := tabOf(t, g, "/sound")
	h, err := listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.AudioTracks != 0 || h.VideoTracks != 1 || h.Button {
		t.Errorf("with audio off the user's page has %d audio tracks (button %v), want none beside the video", h.AudioTracks, h.Button)
	}
	if readsFIFO() {
		t.Error("Glovebox reads the sound device of a tab whose rule has audio off")
	}
	if n := audioPackets(t, admin, tab); n != 0 {
		t.Errorf("a tab with audio off sent %v audio packets", n)
	}
}

// TestSoundClickForSound: when the user's browser refuses sound without a
// gesture, the landing page plays the video muted and shows "click for
// sound"; the user's first click unmutes it and the tone is heard.
func TestSoundClickForSound(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startGlovebox(t, nil)
	ctx := userBrowser(t, g.addr, chromedp.Flag("autoplay-policy", "document-user-activation-required"))
	if err := chromedp.Do(ctx, chromedp.Navigate(site.URL+"/sound?tone")); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, ctx, 700, 400, soundColour, 60*time.Second)
	var h heard
	waitFor(t, 60*time.Second, "the click-for-sound button", func() (bool, string) {
		var err error
		h, err = listen(ctx)
		return err == nil && h.AudioTracks == 1 && h.Button, fmt.Sprintf("%+v %v", h, err)
	})
	if !h.Muted {
		t.Errorf("the landing page shows the button but is not muted: %+v", h)
	}
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(400, 300)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the tone heard after the click", func() (bool, string) {
		var err error
		h, err = listen(ctx)
		return err == nil && h.Err == "" && !h.Muted && !h.Button && h.Tone > -50 && h.Tone-h.Far > 20, fmt.Sprintf("%+v %v", h, err)
	})
}

// TestSoundContainerd: the tone of a page in a containerd-isolated tab, whose
// browser was started warm (before any rule was known) and plays into a
// sound device in its own container, reaches the user's page.
func TestSoundContainerd(t *testing.T) {
	needChromium(t)
	site := newTestSite(t)
	g := startContainerdGlovebox(t, site, 1, nil)
	waitFor(t, 60*time.Second, "a warm container", func() (bool, string) {
		return g.pool.Stats().Ready == 1, fmt.Sprintf("%+v", g.pool.Stats())
	})
	ctx := openSound(t, g, site, "/sound?tone", "0.5")
	t.Logf("heard: %+v", waitTone(t, ctx, "from the container"))
	for _, e := range g.audit.events() {
		if e["event"] == "tab_start" && e["warm"] != true {
			t.Errorf("the tab's browser was not a warm one: %v", e)
		}
	}
}

// TestSoundOffAfterHandoff: a tab heard on one site whose remote page moves
// to a site whose rule has audio off stops being heard: the landing page
// it is handed over to gets no audio track, and Glovebox stops reading the
// browser's sound device, while the new page plays its tone.
func TestSoundOffAfterHandoff(t *testing.T) {
	needChromium(t)
	loud, quiet := newTestSite(t), newTestSite(t) // two origins: two ports
	g := startGlovebox(t, func(c *Config) {
		c.Proxy.Policy.Rules = append([]policy.Rule{{Name: "quiet", URLRegex: "^" + regexp.QuoteMeta(quiet.URL) + "/",
			Action: policy.ActionIsolate, Audio: new(false)}}, c.Proxy.Policy.Rules...)
	})
	ctx := userBrowser(t, g.addr)
	start := loud.URL + "/sound?tone&next=" + url.QueryEscape(quiet.URL+"/sound?tone")
	if err := chromedp.Do(ctx, chromedp.Navigate(start)); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, ctx, 700, 400, soundColour, 60*time.Second)
	waitTone(t, ctx, "on the first site")
	if !readsFIFO() {
		t.Fatal("Glovebox does not read the sound device on the first site")
	}

	// The click takes the remote page to the quiet site, and the user's
	// tab follows it there.
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(400, 300)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the landing page on the quiet site", func() (bool, string) {
		loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.origin`))
		return err == nil && loc == quiet.URL, loc
	})
	waitFor(t, 60*time.Second, "the quiet site's tone to play", func() (bool, string) {
		r := quiet.lastReport("playing")
		return r == "0.5", r
	})
	waitForColour(t, ctx, 700, 400, soundColour, 60*time.Second)
	h, err := listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.AudioTracks != 0 || h.VideoTracks != 1 {
		t.Errorf("on the quiet site the user's page has %d audio tracks, want none beside the video", h.AudioTracks)
	}
	if readsFIFO() {
		t.Error("Glovebox still reads the sound device of a tab on a site with audio off")
	}
}
