package h264

import (
	"bytes"
	"math"
	"testing"

	"github.com/glovebox/glovebox/stream/internal/i420"
)

// nalTypes lists the NAL unit types of an Annex B frame.
func nalTypes(frame []byte) []byte {
	var types []byte
	for i := 0; i+3 < len(frame); i++ {
		if bytes.Equal(frame[i:i+3], []byte{0, 0, 1}) {
			types = append(types, frame[i+3]&0x1f)
			i += 3
		}
	}
	return types
}

func TestRoundTrip(t *testing.T) {
	enc, err := NewEncoder(EncoderConfig{Width: 320, Height: 240, BitrateKbps: 1000})
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
	colours := [][3]byte{{81, 90, 240}, {145, 54, 34}, {41, 240, 110}, {41, 240, 110}, {200, 128, 128}}
	for i, c := range colours {
		img.Fill(c[0], c[1], c[2])
		frame, key, err := enc.Encode(&img, int64(i)*3000, 3000, i == 4)
		if err != nil {
			t.Fatal(err)
		}
		if len(frame) == 0 {
			t.Fatalf("frame %d: empty", i)
		}
		// IDR on the first frame and when asked for only, with SPS and PPS.
		wantKey := i == 0 || i == 4
		if key != wantKey {
			t.Errorf("frame %d: key %v, want %v", i, key, wantKey)
		}
		types := nalTypes(frame)
		if hasIDR := bytes.IndexByte(types, 5) >= 0; hasIDR != wantKey {
			t.Errorf("frame %d: nal types %v, idr %v", i, types, hasIDR)
		}
		if wantKey && (bytes.IndexByte(types, 7) < 0 || bytes.IndexByte(types, 8) < 0) {
			t.Errorf("frame %d: keyframe without SPS/PPS: %v", i, types)
		}
		if sps := bytes.Index(frame, []byte{0, 0, 1, 0x67}); sps >= 0 && frame[sps+4] != 66 {
			t.Errorf("frame %d: profile_idc %d, want 66 (baseline)", i, frame[sps+4])
		}
		if err := dec.Decode(frame, &out); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if out.Width != 320 || out.Height != 240 {
			t.Fatalf("decoded %dx%d", out.Width, out.Height)
		}
		y, u, v := out.Mean()
		if math.Abs(y-float64(c[0])) > 8 || math.Abs(u-float64(c[1])) > 8 || math.Abs(v-float64(c[2])) > 8 {
			t.Errorf("frame %d: mean %.0f %.0f %.0f, want %v", i, y, u, v, c)
		}
	}
	must(t, enc.SetBitrate(500))

	img.Reset(64, 64)
	if _, _, err := enc.Encode(&img, 9000, 3000, false); err == nil {
		t.Error("size mismatch: no error")
	}
	if _, err := NewEncoder(EncoderConfig{Width: 33, Height: 32, BitrateKbps: 1}); err == nil {
		t.Error("odd width: no error")
	}
	enc.Close()
	enc.Close()
	dec.Close()
	dec.Close()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
