package tjpeg

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"testing"

	"github.com/glovebox/glovebox/stream/internal/i420"
)

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func solidYCbCr(w, h int, y, cb, cr uint8) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for i := range img.Y {
		img.Y[i] = y
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = cb, cr
	}
	return img
}

func near(a, b float64) bool { return math.Abs(a-b) <= 3 }

func TestDecode(t *testing.T) {
	grey := image.NewGray(image.Rect(0, 0, 64, 48))
	for i := range grey.Pix {
		grey.Pix[i] = 200
	}
	rgba := image.NewRGBA(image.Rect(0, 0, 33, 17))
	for x := range 33 {
		for y := range 17 {
			rgba.Set(x, y, color.RGBA{R: 255, A: 255})
		}
	}
	ry, rcb, rcr := color.RGBToYCbCr(255, 0, 0)
	tests := []struct {
		name          string
		img           image.Image
		w, h          int
		wantY, wantCb float64
		wantCr        float64
	}{
		{"420 solid", solidYCbCr(320, 240, 81, 90, 240), 320, 240, 81, 90, 240},
		{"420 odd size cropped", solidYCbCr(321, 241, 41, 240, 110), 320, 240, 41, 240, 110},
		{"grey via rgb", grey, 64, 48, 200, 128, 128},
		{"rgba odd via 420", rgba, 32, 16, float64(ry), float64(rcb), float64(rcr)},
	}
	d, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var dst i420.Image
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := d.Decode(encodeJPEG(t, tt.img), &dst); err != nil {
				t.Fatal(err)
			}
			if dst.Width != tt.w || dst.Height != tt.h {
				t.Fatalf("size %dx%d, want %dx%d", dst.Width, dst.Height, tt.w, tt.h)
			}
			y, u, v := dst.Mean()
			if !near(y, tt.wantY) || !near(u, tt.wantCb) || !near(v, tt.wantCr) {
				t.Fatalf("mean YUV %.1f %.1f %.1f, want %.0f %.0f %.0f", y, u, v, tt.wantY, tt.wantCb, tt.wantCr)
			}
		})
	}
}

func TestDecodeBad(t *testing.T) {
	d, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var dst i420.Image
	good := encodeJPEG(t, solidYCbCr(64, 64, 100, 100, 100))
	for name, data := range map[string][]byte{
		"empty":   nil,
		"garbage": []byte("definitely not a jpeg"),
		"header":  good[:20],
	} {
		if err := d.Decode(data, &dst); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := d.Decode(encodeJPEG(t, solidYCbCr(1, 1, 0, 0, 0)), &dst); !errors.Is(err, ErrTooLarge) {
		t.Errorf("1x1: %v, want ErrTooLarge", err)
	}
	// The decoder still works after errors.
	if err := d.Decode(good, &dst); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d.Close()
}
