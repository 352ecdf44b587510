package opus

import (
	"fmt"
	"math"
	"testing"
)

// tone returns n frames of a stereo sine of freq Hz at amplitude amp.
func tone(freq float64, amp float64, start, n int) []int16 {
	pcm := make([]int16, 2*n)
	for i := range n {
		v := int16(amp * math.Sin(2*math.Pi*freq*float64(start+i)/SampleRate))
		pcm[2*i], pcm[2*i+1] = v, v
	}
	return pcm
}

// power is the Goertzel power of freq in the left channel of pcm,
// normalised by the number of samples.
func power(pcm []int16, freq float64) float64 {
	k := 2 * math.Cos(2*math.Pi*freq/SampleRate)
	var s1, s2 float64
	n := len(pcm) / 2
	for i := range n {
		s := float64(pcm[2*i]) + k*s1 - s2
		s2, s1 = s1, s
	}
	return (s1*s1 + s2*s2 - k*s1*s2) / float64(n*n)
}

func TestRoundTrip(t *testing.T) {
	enc, err := NewEncoder(EncoderConfig{Channels: 2, BitrateBps: 64000, Complexity: 5, FrameLength: 960})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := NewDecoder(2)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()

	var decoded []int16
	buf := make([]int16, 2*5760)
	for f := range 50 { // one second
		pkt, err := enc.Encode(tone(1000, 8000, f*960, 960))
		if err != nil {
			t.Fatal(err)
		}
		if len(pkt) < 3 || len(pkt) > 1000 {
			t.Fatalf("frame %d: packet of %d bytes", f, len(pkt))
		}
		n, err := dec.Decode(pkt, buf)
		if err != nil {
			t.Fatal(err)
		}
		if n != 960 {
			t.Fatalf("frame %d: decoded %d samples, want 960", f, n)
		}
		decoded = append(decoded, buf[:2*n]...)
	}
	// After the codec's start-up, the tone is there and little else.
	tail := decoded[2*4800:]
	at, off := power(tail, 1000), power(tail, 3000)
	if want := power(tone(1000, 8000, 0, 4800), 1000) / 4; at < want {
		t.Errorf("power at 1 kHz %.0f, want at least %.0f", at, want)
	}
	if off > at/1000 {
		t.Errorf("power at 3 kHz %.1f against %.0f at 1 kHz", off, at)
	}

	if _, err := enc.Encode(make([]int16, 100)); err == nil {
		t.Error("short frame: no error")
	}
	if _, err := dec.Decode([]byte{0xff, 0xff, 0xff, 0xff}, buf); err == nil {
		t.Error("garbage: no error")
	}
	for _, cfg := range []EncoderConfig{
		{Channels: 3, BitrateBps: 64000, FrameLength: 960},
		{Channels: 2, BitrateBps: 64000, FrameLength: 1000},
		{Channels: 2, BitrateBps: 100, FrameLength: 960},
	} {
		if e, err := NewEncoder(cfg); err == nil {
			e.Close()
			t.Errorf("%+v: no error", cfg)
		}
	}
	enc.Close()
	if _, err := enc.Encode(tone(1000, 8000, 0, 960)); err == nil {
		t.Error("closed encoder: no error")
	}
}

// BenchmarkEncode is the encoder's cost per 20 ms stereo frame of a tone:
// 50 of them are one second of sound.
func BenchmarkEncode(b *testing.B) {
	for _, complexity := range []int{5, 10} {
		b.Run(fmt.Sprintf("complexity=%d", complexity), func(b *testing.B) {
			enc, err := NewEncoder(EncoderConfig{Channels: 2, BitrateBps: 64000, Complexity: complexity, FrameLength: 960})
			if err != nil {
				b.Fatal(err)
			}
			defer enc.Close()
			frames := make([][]int16, 50)
			for i := range frames {
				frames[i] = tone(440*float64(1+i%3), 8000, i*960, 960)
			}
			for i := 0; b.Loop(); i++ {
				if _, err := enc.Encode(frames[i%len(frames)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)*50/1e9*100, "%core")
		})
	}
}
