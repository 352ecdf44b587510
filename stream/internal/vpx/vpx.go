// Package vpx is a small cgo binding to libvpx's VP8 encoder (and a decoder,
// used by tests to check what the encoder produced).
//
// The encoder is set up for screen content sent in real time: one pass, CBR,
// no look-ahead, a fixed speed, one thread, error resilient, a 90 kHz time base.
package vpx

/*
#cgo pkg-config: vpx
#include <stdlib.h>
#include <string.h>
#include <vpx/vpx_encoder.h>
#include <vpx/vpx_decoder.h>
#include <vpx/vp8cx.h>
#include <vpx/vp8dx.h>

typedef struct {
	vpx_codec_ctx_t codec;
	vpx_codec_enc_cfg_t cfg; // as last applied, for SetBitrate
	int w, h;
} gb_vp8enc;

static const char *gb_vp8enc_open(gb_vp8enc *e, int w, int h, int kbps, int cpu_used) {
	vpx_codec_enc_cfg_t cfg;
	if (vpx_codec_enc_config_default(vpx_codec_vp8_cx(), &cfg, 0) != VPX_CODEC_OK) {
		return "vpx_codec_enc_config_default failed";
	}
	cfg.g_w = w;
	cfg.g_h = h;
	cfg.g_timebase.num = 1;
	cfg.g_timebase.den = 90000;
	cfg.g_threads = 1;
	cfg.g_pass = VPX_RC_ONE_PASS;
	cfg.g_lag_in_frames = 0;
	cfg.g_error_resilient = VPX_ERROR_RESILIENT_DEFAULT;
	cfg.rc_end_usage = VPX_CBR;
	cfg.rc_target_bitrate = kbps;
	cfg.rc_min_quantizer = 2;
	cfg.rc_max_quantizer = 56;
	cfg.rc_undershoot_pct = 100;
	cfg.rc_overshoot_pct = 15;
	cfg.rc_buf_initial_sz = 500;
	cfg.rc_buf_optimal_sz = 600;
	cfg.rc_buf_sz = 1000;
	// A dropped frame may be the only one a click produced.
	cfg.rc_dropframe_thresh = 0;
	cfg.rc_resize_allowed = 0;
	// Keyframes only when asked for (connect, PLI/FIR).
	cfg.kf_mode = VPX_KF_DISABLED;
	if (vpx_codec_enc_init(&e->codec, vpx_codec_vp8_cx(), &cfg, 0) != VPX_CODEC_OK) {
		return "vpx_codec_enc_init failed";
	}
	if (vpx_codec_control(&e->codec, VP8E_SET_CPUUSED, cpu_used) != VPX_CODEC_OK ||
	    vpx_codec_control(&e->codec, VP8E_SET_SCREEN_CONTENT_MODE, 1) != VPX_CODEC_OK ||
	    vpx_codec_control(&e->codec, VP8E_SET_STATIC_THRESHOLD, 1) != VPX_CODEC_OK ||
	    vpx_codec_control(&e->codec, VP8E_SET_NOISE_SENSITIVITY, 0) != VPX_CODEC_OK ||
	    vpx_codec_control(&e->codec, VP8E_SET_TOKEN_PARTITIONS, VP8_ONE_TOKENPARTITION) != VPX_CODEC_OK) {
		vpx_codec_destroy(&e->codec);
		return "vpx_codec_control failed";
	}
	e->cfg = cfg;
	e->w = w;
	e->h = h;
	return NULL;
}

// gb_vp8enc_encode encodes one frame whose planes live in Go memory; the
// vpx_image_t wrapping them is on the C stack and libvpx copies the frame
// into its own buffers (no look-ahead), so no Go pointer outlives the call.
// On success *out/*out_len point at the frame inside libvpx, valid until the
// next call.
static vpx_codec_err_t gb_vp8enc_encode(gb_vp8enc *e,
		unsigned char *y, unsigned char *u, unsigned char *v, int sy, int suv,
		int64_t pts, unsigned long duration, int force_kf,
		const void **out, size_t *out_len, int *key) {
	vpx_image_t img;
	memset(&img, 0, sizeof img);
	vpx_img_wrap(&img, VPX_IMG_FMT_I420, e->w, e->h, 1, y);
	img.planes[VPX_PLANE_Y] = y;
	img.planes[VPX_PLANE_U] = u;
	img.planes[VPX_PLANE_V] = v;
	img.stride[VPX_PLANE_Y] = sy;
	img.stride[VPX_PLANE_U] = suv;
	img.stride[VPX_PLANE_V] = suv;
	vpx_enc_frame_flags_t flags = force_kf ? VPX_EFLAG_FORCE_KF : 0;
	vpx_codec_err_t err = vpx_codec_encode(&e->codec, &img, pts, duration, flags, VPX_DL_REALTIME);
	*out = NULL;
	*out_len = 0;
	*key = 0;
	if (err != VPX_CODEC_OK) {
		return err;
	}
	vpx_codec_iter_t iter = NULL;
	const vpx_codec_cx_pkt_t *pkt;
	while ((pkt = vpx_codec_get_cx_data(&e->codec, &iter)) != NULL) {
		if (pkt->kind == VPX_CODEC_CX_FRAME_PKT && *out == NULL) {
			*out = pkt->data.frame.buf;
			*out_len = pkt->data.frame.sz;
			*key = (pkt->data.frame.flags & VPX_FRAME_IS_KEY) != 0;
		}
	}
	return VPX_CODEC_OK;
}

// gb_vp8enc_set_bitrate changes the CBR target of a running encoder; libvpx
// applies it from the next frame, without a keyframe.
static vpx_codec_err_t gb_vp8enc_set_bitrate(gb_vp8enc *e, int kbps) {
	vpx_codec_enc_cfg_t cfg = e->cfg;
	cfg.rc_target_bitrate = kbps;
	vpx_codec_err_t err = vpx_codec_enc_config_set(&e->codec, &cfg);
	if (err == VPX_CODEC_OK) {
		e->cfg = cfg;
	}
	return err;
}

static const char *gb_vpx_err(gb_vp8enc *e) {
	const char *d = vpx_codec_error_detail(&e->codec);
	return d ? d : vpx_codec_error(&e->codec);
}

static vpx_codec_err_t gb_vp8dec_open(vpx_codec_ctx_t *d) {
	vpx_codec_dec_cfg_t cfg = {1, 0, 0};
	return vpx_codec_dec_init(d, vpx_codec_vp8_dx(), &cfg, 0);
}

static vpx_image_t *gb_vp8dec_decode(vpx_codec_ctx_t *d, const unsigned char *data, unsigned int size, vpx_codec_err_t *err) {
	*err = vpx_codec_decode(d, data, size, NULL, 0);
	if (*err != VPX_CODEC_OK) {
		return NULL;
	}
	vpx_codec_iter_t iter = NULL;
	return vpx_codec_get_frame(d, &iter);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/glovebox/glovebox/stream/internal/i420"
)

// EncoderConfig sets up an Encoder.
type EncoderConfig struct {
	Width, Height int // frame size, both even
	BitrateKbps   int // CBR target, kbit/s
	CPUUsed       int // libvpx speed, -16..16; negative values are a fixed speed
}

// Encoder is a VP8 encoder for frames of one size. It is not safe for
// concurrent use.
type Encoder struct {
	e    *C.gb_vp8enc
	w, h int
	kbps int
	out  []byte
}

// NewEncoder opens a VP8 encoder; Close frees it.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	if cfg.Width < 2 || cfg.Height < 2 || cfg.Width%2 != 0 || cfg.Height%2 != 0 {
		return nil, fmt.Errorf("vp8 encoder: bad size %dx%d", cfg.Width, cfg.Height)
	}
	if cfg.BitrateKbps <= 0 {
		return nil, fmt.Errorf("vp8 encoder: bad bitrate %d kbit/s", cfg.BitrateKbps)
	}
	e := (*C.gb_vp8enc)(C.calloc(1, C.sizeof_gb_vp8enc))
	if e == nil {
		return nil, errors.New("vp8 encoder: out of memory")
	}
	if msg := C.gb_vp8enc_open(e, C.int(cfg.Width), C.int(cfg.Height), C.int(cfg.BitrateKbps), C.int(cfg.CPUUsed)); msg != nil {
		detail := C.GoString(C.gb_vpx_err(e))
		C.free(unsafe.Pointer(e))
		return nil, fmt.Errorf("vp8 encoder: %s: %s", C.GoString(msg), detail)
	}
	return &Encoder{e: e, w: cfg.Width, h: cfg.Height, kbps: cfg.BitrateKbps}, nil
}

// SetBitrate changes the CBR target, in kbit/s, from the next frame on.
func (e *Encoder) SetBitrate(kbps int) error {
	if e.e == nil {
		return errors.New("vp8 set bitrate: encoder closed")
	}
	if kbps <= 0 {
		return fmt.Errorf("vp8 set bitrate: bad bitrate %d kbit/s", kbps)
	}
	if kbps == e.kbps {
		return nil
	}
	if rc := C.gb_vp8enc_set_bitrate(e.e, C.int(kbps)); rc != C.VPX_CODEC_OK {
		return fmt.Errorf("vp8 set bitrate: %s", C.GoString(C.gb_vpx_err(e.e)))
	}
	e.kbps = kbps
	return nil
}

// Bitrate returns the current CBR target, in kbit/s.
func (e *Encoder) Bitrate() int { return e.kbps }

// Size returns the frame size the encoder was opened for.
func (e *Encoder) Size() (w, h int) { return e.w, e.h }

// Encode encodes img (whose visible size must match the encoder's) with
// presentation time pts and duration, both in 1/90000 s. The returned frame
// is valid until the next call; it is nil when libvpx produced no frame.
func (e *Encoder) Encode(img *i420.Image, pts int64, duration uint64, forceKey bool) (frame []byte, key bool, err error) {
	if e.e == nil {
		return nil, false, errors.New("vp8 encode: encoder closed")
	}
	if img.Width != e.w || img.Height != e.h {
		return nil, false, fmt.Errorf("vp8 encode: frame %dx%d, encoder %dx%d", img.Width, img.Height, e.w, e.h)
	}
	var (
		out    unsafe.Pointer
		outLen C.size_t
		isKey  C.int
		force  C.int
	)
	if forceKey {
		force = 1
	}
	rc := C.gb_vp8enc_encode(e.e,
		(*C.uchar)(unsafe.Pointer(&img.Y[0])), (*C.uchar)(unsafe.Pointer(&img.U[0])), (*C.uchar)(unsafe.Pointer(&img.V[0])),
		C.int(img.StrideY), C.int(img.StrideUV), C.int64_t(pts), C.ulong(duration), force,
		&out, &outLen, &isKey)
	if rc != C.VPX_CODEC_OK {
		return nil, false, fmt.Errorf("vp8 encode: %s", C.GoString(C.gb_vpx_err(e.e)))
	}
	if out == nil {
		return nil, false, nil
	}
	n := int(outLen)
	if cap(e.out) < n {
		e.out = make([]byte, n, n+n/2)
	}
	e.out = e.out[:n]
	copy(e.out, unsafe.Slice((*byte)(out), n))
	return e.out, isKey != 0, nil
}

// Close frees the encoder; it is safe to call twice.
func (e *Encoder) Close() {
	if e.e != nil {
		C.vpx_codec_destroy(&e.e.codec)
		C.free(unsafe.Pointer(e.e))
		e.e = nil
	}
}

// Decoder is a VP8 decoder. It is not safe for concurrent use.
type Decoder struct {
	d *C.vpx_codec_ctx_t
}

// NewDecoder opens a VP8 decoder; Close frees it.
func NewDecoder() (*Decoder, error) {
	d := (*C.vpx_codec_ctx_t)(C.calloc(1, C.sizeof_vpx_codec_ctx_t))
	if d == nil {
		return nil, errors.New("vp8 decoder: out of memory")
	}
	if rc := C.gb_vp8dec_open(d); rc != C.VPX_CODEC_OK {
		C.free(unsafe.Pointer(d))
		return nil, fmt.Errorf("vp8 decoder: %s", C.GoString(C.vpx_codec_err_to_string(rc)))
	}
	return &Decoder{d: d}, nil
}

// Decode decodes one VP8 frame into dst (copied, so dst stays valid).
func (d *Decoder) Decode(frame []byte, dst *i420.Image) error {
	if d.d == nil {
		return errors.New("vp8 decode: decoder closed")
	}
	if len(frame) == 0 {
		return errors.New("vp8 decode: empty frame")
	}
	var rc C.vpx_codec_err_t
	img := C.gb_vp8dec_decode(d.d, (*C.uchar)(unsafe.Pointer(&frame[0])), C.uint(len(frame)), &rc)
	if rc != C.VPX_CODEC_OK {
		return fmt.Errorf("vp8 decode: %s", C.GoString(C.vpx_codec_err_to_string(rc)))
	}
	if img == nil {
		return errors.New("vp8 decode: no frame")
	}
	w, h := int(img.d_w), int(img.d_h)
	dst.Reset(w, h)
	copyPlane(dst.Y, dst.StrideY, img.planes[0], int(img.stride[0]), w, h)
	copyPlane(dst.U, dst.StrideUV, img.planes[1], int(img.stride[1]), (w+1)/2, (h+1)/2)
	copyPlane(dst.V, dst.StrideUV, img.planes[2], int(img.stride[2]), (w+1)/2, (h+1)/2)
	return nil
}

func copyPlane(dst []byte, dstStride int, src *C.uchar, srcStride, w, h int) {
	s := unsafe.Slice((*byte)(unsafe.Pointer(src)), (h-1)*srcStride+w)
	for row := range h {
		copy(dst[row*dstStride:row*dstStride+w], s[row*srcStride:row*srcStride+w])
	}
}

// Close frees the decoder; it is safe to call twice.
func (d *Decoder) Close() {
	if d.d != nil {
		C.vpx_codec_destroy(d.d)
		C.free(unsafe.Pointer(d.d))
		d.d = nil
	}
}
