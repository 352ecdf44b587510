// Package tjpeg decodes JPEG frames into I420 images with libjpeg-turbo.
//
// Chromium's screencast JPEGs are already YCbCr 4:2:0, so they are
// decompressed straight into the planes with no colour conversion; anything
// else goes through RGB and is re-subsampled by libjpeg-turbo.
package tjpeg

/*
#cgo pkg-config: libturbojpeg
#include <stdlib.h>
#include <turbojpeg.h>

// The plane pointer arrays are built here on the C stack, so that Go never
// stores its pointers in C memory (cgo pointer rules).
static int gb_tj_decode_i420(tjhandle h, const unsigned char *jpeg, unsigned long size,
		unsigned char *y, unsigned char *u, unsigned char *v,
		int w, int sy, int suv, int hgt, int flags) {
	unsigned char *planes[3] = {y, u, v};
	int strides[3] = {sy, suv, suv};
	return tjDecompressToYUVPlanes(h, jpeg, size, planes, w, strides, hgt, flags);
}

static int gb_tj_rgb_to_i420(tjhandle h, const unsigned char *rgb, int w, int pitch, int hgt,
		unsigned char *y, unsigned char *u, unsigned char *v, int sy, int suv, int flags) {
	unsigned char *planes[3] = {y, u, v};
	int strides[3] = {sy, suv, suv};
	return tjEncodeYUVPlanes(h, rgb, w, pitch, hgt, TJPF_RGB, planes, strides, TJSAMP_420, flags);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/glovebox/glovebox/stream/internal/i420"
)

// MaxSide bounds each side of a decoded frame, so that a corrupt or hostile
// header cannot make the decoder allocate gigabytes.
const MaxSide = 8192

// ErrTooLarge is returned for frames wider or taller than MaxSide or smaller than 2×2.
var ErrTooLarge = errors.New("jpeg size out of range")

// Decoder decodes JPEG frames into I420 images. It is not safe for
// concurrent use; one per encoder goroutine.
type Decoder struct {
	dec C.tjhandle
	enc C.tjhandle // for the RGB → 4:2:0 path, created on first use
	rgb []byte
}

// NewDecoder returns a Decoder; Close frees its C state.
func NewDecoder() (*Decoder, error) {
	h := C.tjInitDecompress()
	if h == nil {
		return nil, fmt.Errorf("tjInitDecompress: %s", C.GoString(C.tjGetErrorStr2(nil)))
	}
	return &Decoder{dec: h}, nil
}

// Close frees the decoder; it is safe to call twice.
func (d *Decoder) Close() {
	if d.dec != nil {
		C.tjDestroy(d.dec)
		d.dec = nil
	}
	if d.enc != nil {
		C.tjDestroy(d.enc)
		d.enc = nil
	}
}

// Decode decodes jpeg into dst, resizing dst's planes only when the frame
// size grows. dst's visible size is the JPEG's size cropped to even numbers.
func (d *Decoder) Decode(jpeg []byte, dst *i420.Image) error {
	if d.dec == nil {
		return errors.New("jpeg decode: decoder closed")
	}
	if len(jpeg) == 0 {
		return errors.New("jpeg decode: empty frame")
	}
	src := (*C.uchar)(unsafe.Pointer(&jpeg[0]))
	size := C.ulong(len(jpeg))
	var w, h, subsamp, colorspace C.int
	if C.tjDecompressHeader3(d.dec, src, size, &w, &h, &subsamp, &colorspace) != 0 {
		return d.fail("jpeg header")
	}
	if w < 2 || h < 2 || w > MaxSide || h > MaxSide {
		return fmt.Errorf("jpeg decode: %dx%d: %w", w, h, ErrTooLarge)
	}
	dst.Reset(int(w), int(h))
	y := (*C.uchar)(unsafe.Pointer(&dst.Y[0]))
	u := (*C.uchar)(unsafe.Pointer(&dst.U[0]))
	v := (*C.uchar)(unsafe.Pointer(&dst.V[0]))
	sy, suv := C.int(dst.StrideY), C.int(dst.StrideUV)

	if subsamp == C.TJSAMP_420 && colorspace == C.TJCS_YCbCr {
		if C.gb_tj_decode_i420(d.dec, src, size, y, u, v, w, sy, suv, h, C.TJFLAG_FASTDCT) != 0 {
			return d.fail("jpeg decode")
		}
		return nil
	}

	// Not 4:2:0 (4:4:4, 4:2:2, grey, CMYK…): decode to RGB, then let
	// libjpeg-turbo convert and subsample it properly.
	pitch := int(w) * 3
	if cap(d.rgb) < pitch*int(h) {
		d.rgb = make([]byte, pitch*int(h))
	}
	rgb := d.rgb[:pitch*int(h)]
	prgb := (*C.uchar)(unsafe.Pointer(&rgb[0]))
	if C.tjDecompress2(d.dec, src, size, prgb, w, C.int(pitch), h, C.TJPF_RGB, C.TJFLAG_FASTDCT) != 0 {
		return d.fail("jpeg decode to rgb")
	}
	if d.enc == nil {
		d.enc = C.tjInitCompress()
		if d.enc == nil {
			return fmt.Errorf("tjInitCompress: %s", C.GoString(C.tjGetErrorStr2(nil)))
		}
	}
	if C.gb_tj_rgb_to_i420(d.enc, prgb, w, C.int(pitch), h, y, u, v, sy, suv, 0) != 0 {
		return fmt.Errorf("rgb to i420: %s", d.errStr(d.enc))
	}
	return nil
}

func (d *Decoder) errStr(h C.tjhandle) string {
	return C.GoString(C.tjGetErrorStr2(h))
}

// fail reports the decompressor's error and replaces the handle: after an
// error inside jpeg_read_header, libjpeg-turbo 2.1 leaves the handle in a
// state where the next, valid, JPEG fails too ("Bogus DQT index").
func (d *Decoder) fail(what string) error {
	err := fmt.Errorf("%s: %s", what, d.errStr(d.dec))
	C.tjDestroy(d.dec)
	d.dec = C.tjInitDecompress()
	return err
}
