package vpx

import (
	"math"
	"testing"

	"github.com/glovebox/glovebox/stream/internal/i420"
)

func TestRoundTrip(t *testing.T) {
	enc, err := NewEncoder(EncoderConfig{Width: 320, Height: 240, BitrateKbps: 1000, CPUUsed: -6})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()

	var img, out i420.Image
	img.Reset(320, 240)
	colours := [][3]byte{{81, 90, 240}, {145, 54, 34}, {41, 240, 110}}
	for i, c := range colours {
		img.Fill(c[0], c[1], c[2])
		frame, key, err := enc.Encode(&img, int64(i)*3000, 3000, i == 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(frame) == 0 {
			t.Fatalf("frame %d: empty", i)
		}
		if wantKey := i != 1; key != wantKey {
			t.Errorf("frame %d: key %v, want %v", i, key, wantKey)
		}
		if isKey := frame[0]&1 == 0; isKey != key {
			t.Errorf("frame %d: bitstream key bit %v, flag %v", i, isKey, key)
		}
		if err := dec.Decode(frame, &out); err != nil {
			t.Fatal(err)
		}
		if out.Width != 320 || out.Height != 240 {
			t.Fatalf("decoded %dx%d", out.Width, out.Height)
		}
		y, u, v := out.Mean()
		if math.Abs(y-float64(c[0])) > 8 || math.Abs(u-float64(c[1])) > 8 || math.Abs(v-float64(c[2])) > 8 {
			t.Errorf("frame %d: mean %.0f %.0f %.0f, want %v", i, y, u, v, c)
		}
	}

	img.Reset(64, 64)
	if _, _, err := enc.Encode(&img, 9000, 3000, false); err == nil {
		t.Error("size mismatch: no error")
	}
	if _, err := NewEncoder(EncoderConfig{Width: 3, Height: 2, BitrateKbps: 1}); err == nil {
		t.Error("odd width: no error")
	}
	if err := dec.Decode([]byte{1, 2, 3}, &out); err == nil {
		t.Error("garbage: no error")
	}
	enc.Close()
	enc.Close()
	dec.Close()
	dec.Close()
}

// TestSetBitrate checks that a lower target makes smaller frames of the
// same busy content without a keyframe.
func TestSetBitrate(t *testing.T) {
	const w, h = 320, 240
	enc, err := NewEncoder(EncoderConfig{Width: w, Height: h, BitrateKbps: 2000, CPUUsed: -6})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var img i420.Image
	img.Reset(w, h)
	noise := uint32(1)
	run := func(from, n int) (total int) {
		for i := from; i < from+n; i++ {
			for j := range img.Y {
				noise = noise*1664525 + 1013904223
				img.Y[j] = byte(j%w+i) + byte(noise>>28) // moving gradient, a little noise
			}
			frame, key, err := enc.Encode(&img, int64(i)*3000, 3000, false)
			if err != nil {
				t.Fatal(err)
			}
			if key && i > 0 {
				t.Errorf("frame %d: unexpected keyframe", i)
			}
			if i >= from+n/2 { // after the rate control settled
				total += len(frame)
			}
		}
		return total
	}
	high := run(0, 30)
	if err := enc.SetBitrate(200); err != nil {
		t.Fatal(err)
	}
	if got := enc.Bitrate(); got != 200 {
		t.Errorf("Bitrate() = %d, want 200", got)
	}
	low := run(30, 30)
	if low*2 > high {
		t.Errorf("bytes of 15 frames: %d at 200 kbit/s, %d at 2000 kbit/s; want at most half", low, high)
	}
	if err := enc.SetBitrate(0); err == nil {
		t.Error("SetBitrate(0): no error")
	}
}
