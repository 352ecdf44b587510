package stream

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/glovebox/glovebox/stream/internal/i420"
	"github.com/glovebox/glovebox/stream/internal/tjpeg"
	"github.com/glovebox/glovebox/stream/internal/vpx"
)

// pageFrames renders n frames of a synthetic 1280x720 web page scrolling
// down 12 px per frame (text lines, a header, a photo-like block), as
// JPEG quality 80 4:2:0 like Chromium's screencast.
func pageFrames(tb testing.TB, n int) [][]byte {
	tb.Helper()
	const w, h, step = 1280, 720, 12
	page := image.NewRGBA(image.Rect(0, 0, w, h+n*step))
	rng := rand.New(rand.NewPCG(1, 2))
	b := page.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := 0; x < w; x++ {
			page.SetRGBA(x, y, color.RGBA{255, 255, 255, 255})
		}
	}
	fill := func(x0, y0, x1, y1 int, c color.RGBA) {
		for y := max(y0, 0); y < min(y1, b.Max.Y); y++ {
			for x := max(x0, 0); x < min(x1, w); x++ {
				page.SetRGBA(x, y, c)
			}
		}
	}
	fill(0, 0, w, 64, color.RGBA{32, 33, 36, 255})
	for y := 100; y < b.Max.Y-20; y += 22 {
		if y%400 < 22 { // a photo every so often
			for py := y; py < min(y+180, b.Max.Y); py++ {
				for px := 700; px < 1180; px++ {
					page.SetRGBA(px, py, color.RGBA{uint8(px / 5), uint8(py % 256), uint8(120 + rng.IntN(40)), 255})
				}
			}
		}
		x := 80
		for x < 640 { // words: dark rectangles with letter-like gaps
			word := 20 + rng.IntN(60)
			for cx := x; cx < x+word; cx += 7 {
				fill(cx, y+4+rng.IntN(3), cx+5, y+16, color.RGBA{20, 20, 20, 255})
			}
			x += word + 8
		}
		if rng.IntN(5) == 0 {
			fill(80, y+17, 300, y+18, color.RGBA{26, 13, 171, 255}) // a link underline
		}
	}
	frames := make([][]byte, n)
	for i := range frames {
		var buf bytes.Buffer
		sub := page.SubImage(image.Rect(0, i*step, w, i*step+h))
		if err := jpeg.Encode(&buf, sub, &jpeg.Options{Quality: 80}); err != nil {
			tb.Fatal(err)
		}
		frames[i] = buf.Bytes()
	}
	return frames
}

// BenchmarkEncode720p measures the server's per-frame media work: JPEG
// decode (libjpeg-turbo to I420) and VP8 encode (libvpx, realtime settings)
// of a scrolling 720p page.
func BenchmarkEncode720p(b *testing.B) {
	frames := pageFrames(b, 30)
	dec, err := tjpeg.NewDecoder()
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	enc, err := vpx.NewEncoder(vpx.EncoderConfig{Width: 1280, Height: 720, BitrateKbps: DefaultMaxBitrate / 1000, CPUUsed: vp8CPUUsed})
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	var img i420.Image
	var decodeTime, encodeTime time.Duration
	var outBytes, n int
	for b.Loop() {
		t0 := time.Now()
		if err := dec.Decode(frames[n%len(frames)], &img); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		frame, _, err := enc.Encode(&img, int64(n)*3000, 3000, n == 0)
		if err != nil {
			b.Fatal(err)
		}
		encodeTime += time.Since(t1)
		decodeTime += t1.Sub(t0)
		outBytes += len(frame)
		n++
	}
	b.ReportMetric(float64(decodeTime.Microseconds())/1000/float64(n), "decode-ms/frame")
	b.ReportMetric(float64(encodeTime.Microseconds())/1000/float64(n), "encode-ms/frame")
	b.ReportMetric(float64(outBytes)/1000/float64(n), "kB/frame")
	b.ReportMetric(float64(len(frames[0]))/1000, "jpeg-kB")
}

// discardWriter is the far end of a benchmark's video track: it takes the
// packets and drops them, so that step runs without a network.
type discardWriter struct{}

func (discardWriter) WriteRTP(_ *rtp.Header, payload []byte) (int, error) { return len(payload), nil }
func (discardWriter) Write(b []byte) (int, error)                         { return len(b), nil }

// stepPeer is a connected Peer without a peer connection or encoder
// goroutine: the benchmark calls step itself.
func stepPeer(b *testing.B) *Peer {
	b.Helper()
	m, err := newMedia()
	if err != nil {
		b.Fatal(err)
	}
	p := &Peer{log: slog.New(slog.DiscardHandler), wake: make(chan struct{}, 1), media: m}
	p.track = newVideoTrack("video", "glovebox", 1, DefaultCodecs, nil)
	p.track.binding = &trackBinding{ssrc: 1, payloadType: vp8PayloadType, mime: webrtc.MimeTypeVP8, writer: discardWriter{}}
	p.connected.Store(true)
	p.stats.targetBitrate.Store(DefaultMaxBitrate)
	b.Cleanup(m.close)
	return p
}

// BenchmarkStep measures the encoder goroutine's step as it runs in a tab,
// its allocations included: "scroll" hands it a new 720p frame each time
// (decode, decide, and VP8 encode and packetize when the frame is due), "quiet" wakes it on a static page
// between sends, where it only decides that nothing is due.
func BenchmarkStep(b *testing.B) {
	b.Run("scroll", func(b *testing.B) {
		frames := pageFrames(b, 30)
		p := stepPeer(b)
		now := time.Now()
		n := 0
		for b.Loop() {
			now = now.Add(33 * time.Millisecond) // a 30 fps screencast
			p.Submit(frames[n%len(frames)], now, nil)
			p.step(now)
			n++
		}
		// Frames that come sooner than the last one's size allows are held
		// and replaced, as in a tab.
		st := p.Stats()
		if st.FramesDecoded != uint64(n) || st.FramesSent == 0 {
			b.Fatalf("%d frames in: %+v", n, st)
		}
		b.ReportMetric(float64(st.FramesSent)/float64(n), "sent/frame")
	})
	b.Run("quiet", func(b *testing.B) {
		p := stepPeer(b)
		now := time.Now()
		p.Submit(pageFrames(b, 1)[0], now, nil)
		p.step(now)
		sent := p.Stats().FramesSent
		for b.Loop() {
			p.step(now.Add(followUp / 2))
		}
		if st := p.Stats(); st.FramesSent != sent || st.PacketsSent == 0 {
			b.Fatalf("a quiet step sent something: %+v", st)
		}
	})
}
