package main

import "testing"

// BenchmarkAudioCPU is what an audio stream adds: the server's and the
// remote browser's CPU (its sound device included) on the sound test page
// playing its tone, against the same page with its audio running silent,
// which sends no audio at all. The difference of the two is the stream's
// cost: Opus encoding, RTP, the FIFO's reads, and Chromium's and
// PulseAudio's mixing of a non-zero signal.
func BenchmarkAudioCPU(b *testing.B) {
	needChromium(b)
	site := newTestSite(b)
	for _, page := range []struct{ name, url string }{
		{"silent", site.URL + "/sound"},
		{"tone", site.URL + "/sound?tone"},
	} {
		b.Run(page.name, func(b *testing.B) { benchTabCPU(b, page.url) })
	}
}
