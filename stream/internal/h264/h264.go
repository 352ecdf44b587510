// Package h264 is a small cgo binding to openh264's encoder (and a decoder,
// used by tests to check what the encoder produced).
//
// The encoder is set up for screen content sent in real time: constrained
// baseline (CAVLC, no B-frames), one spatial and one temporal layer, one
// thread, no frame skipping, constant SPS/PPS ids and an IDR frame only when
// asked for (no periodic intra refresh). Frames come out in Annex B form
// (start codes), as pion's H264Payloader expects.
//
// pion/mediadevices' openh264 wrapper inserted many IDR frames and leaked
// buffers; this one copies each frame out of openh264's own buffer and frees
// nothing it did not allocate.
package h264

/*
#cgo pkg-config: openh264
#include <stdlib.h>
#include <string.h>
#include <wels/codec_api.h>

typedef struct {
	ISVCEncoder *e;
	unsigned char *buf; // the last frame, copied out of openh264's layers
	size_t cap;
} gb_h264enc;

static const char *gb_h264enc_open(gb_h264enc *out, int w, int h, int bps, float fps) {
	ISVCEncoder *e = NULL;
	if (WelsCreateSVCEncoder(&e) != 0 || e == NULL) {
		return "WelsCreateSVCEncoder failed";
	}
	int quiet = WELS_LOG_ERROR;
	(*e)->SetOption(e, ENCODER_OPTION_TRACE_LEVEL, &quiet);
	SEncParamExt p;
	memset(&p, 0, sizeof p);
	(*e)->GetDefaultParams(e, &p);
	// Not SCREEN_CONTENT_REAL_TIME: it forces scene-change detection on,
	// which turns every large change (a click that repaints the page) into
	// an IDR frame.
	p.iUsageType = CAMERA_VIDEO_REAL_TIME;
	p.iPicWidth = w;
	p.iPicHeight = h;
	p.iTargetBitrate = bps;
	p.iMaxBitrate = UNSPECIFIED_BIT_RATE;
	p.iRCMode = RC_BITRATE_MODE;
	p.fMaxFrameRate = fps;
	p.iTemporalLayerNum = 1;
	p.iSpatialLayerNum = 1;
	p.iComplexityMode = LOW_COMPLEXITY;
	// Keyframes only when asked for (connect, PLI/FIR).
	p.uiIntraPeriod = 0;
	p.iNumRefFrame = 1;
	p.eSpsPpsIdStrategy = CONSTANT_ID;
	p.bPrefixNalAddingCtrl = false;
	p.bEnableSSEI = false;
	p.iEntropyCodingModeFlag = 0; // CAVLC: constrained baseline
	// A skipped frame may be the only one a click produced.
	p.bEnableFrameSkip = false;
	p.bEnableLongTermReference = false;
	p.iMultipleThreadIdc = 1;
	p.bEnableDenoise = false;
	p.bEnableBackgroundDetection = true; // cheap skipping of unchanged blocks
	p.bEnableAdaptiveQuant = false;
	p.bEnableSceneChangeDetect = false; // it would insert IDR frames of its own
	p.bEnableFrameCroppingFlag = true;
	p.iMinQp = 10;
	p.iMaxQp = 42;
	SSpatialLayerConfig *l = &p.sSpatialLayers[0];
	l->iVideoWidth = w;
	l->iVideoHeight = h;
	l->fFrameRate = fps;
	l->iSpatialBitrate = bps;
	l->iMaxSpatialBitrate = UNSPECIFIED_BIT_RATE;
	l->uiProfileIdc = PRO_BASELINE;
	l->uiLevelIdc = LEVEL_3_1; // raised by openh264 when the size needs it
	l->sSliceArgument.uiSliceMode = SM_SINGLE_SLICE;
	if ((*e)->InitializeExt(e, &p) != 0) {
		WelsDestroySVCEncoder(e);
		return "InitializeExt failed";
	}
	int fmt = videoFormatI420;
	if ((*e)->SetOption(e, ENCODER_OPTION_DATAFORMAT, &fmt) != 0) {
		(*e)->Uninitialize(e);
		WelsDestroySVCEncoder(e);
		return "set data format failed";
	}
	out->e = e;
	return NULL;
}

static void gb_h264enc_close(gb_h264enc *g) {
	(*g->e)->Uninitialize(g->e);
	WelsDestroySVCEncoder(g->e);
	free(g->buf);
	free(g);
}

static int gb_h264enc_bitrate(gb_h264enc *g, int bps) {
	ISVCEncoder *e = g->e;
	SBitrateInfo b;
	memset(&b, 0, sizeof b);
	b.iLayer = SPATIAL_LAYER_ALL;
	b.iBitrate = bps;
	return (*e)->SetOption(e, ENCODER_OPTION_BITRATE, &b);
}

// gb_h264enc_encode encodes one frame whose planes live in Go memory; the
// SSourcePicture pointing at them is on the C stack and openh264 copies the
// frame before returning, so no Go pointer outlives the call. The frame's
// NAL units, start codes included, are copied into g->buf, *n bytes (0:
// openh264 skipped the frame), valid until the next call.
static int gb_h264enc_encode(gb_h264enc *g, int w, int h,
		unsigned char *y, unsigned char *u, unsigned char *v, int sy, int suv,
		long long ms, int force_idr, size_t *n, int *idr) {
	ISVCEncoder *e = g->e;
	if (force_idr) {
		(*e)->ForceIntraFrame(e, true);
	}
	SSourcePicture pic;
	memset(&pic, 0, sizeof pic);
	pic.iColorFormat = videoFormatI420;
	pic.iPicWidth = w;
	pic.iPicHeight = h;
	pic.iStride[0] = sy;
	pic.iStride[1] = suv;
	pic.iStride[2] = suv;
	pic.pData[0] = y;
	pic.pData[1] = u;
	pic.pData[2] = v;
	pic.uiTimeStamp = ms;
	SFrameBSInfo info;
	memset(&info, 0, sizeof info);
	int rc = (*e)->EncodeFrame(e, &pic, &info);
	*n = 0;
	*idr = info.eFrameType == videoFrameTypeIDR;
	if (rc != cmResultSuccess || info.eFrameType == videoFrameTypeSkip) {
		return rc;
	}
	size_t total = 0;
	for (int i = 0; i < info.iLayerNum; i++) {
		const SLayerBSInfo *l = &info.sLayerInfo[i];
		for (int j = 0; j < l->iNalCount; j++) {
			total += l->pNalLengthInByte[j];
		}
	}
	if (total > g->cap) {
		unsigned char *b = realloc(g->buf, total + total / 2);
		if (b == NULL) {
			return -1;
		}
		g->buf = b;
		g->cap = total + total / 2;
	}
	total = 0;
	for (int i = 0; i < info.iLayerNum; i++) {
		const SLayerBSInfo *l = &info.sLayerInfo[i];
		size_t size = 0;
		for (int j = 0; j < l->iNalCount; j++) {
			size += l->pNalLengthInByte[j];
		}
		memcpy(g->buf + total, l->pBsBuf, size);
		total += size;
	}
	*n = total;
	return rc;
}

static ISVCDecoder *gb_h264dec_open(void) {
	ISVCDecoder *d = NULL;
	if (WelsCreateDecoder(&d) != 0 || d == NULL) {
		return NULL;
	}
	SDecodingParam p;
	memset(&p, 0, sizeof p);
	p.sVideoProperty.eVideoBsType = VIDEO_BITSTREAM_AVC;
	if ((*d)->Initialize(d, &p) != 0) {
		WelsDestroyDecoder(d);
		return NULL;
	}
	return d;
}

static void gb_h264dec_close(ISVCDecoder *d) {
	(*d)->Uninitialize(d);
	WelsDestroyDecoder(d);
}

// gb_h264dec_decode decodes one access unit; planes[] point into the
// decoder's buffers, valid until the next call.
static int gb_h264dec_decode(ISVCDecoder *d, const unsigned char *src, int n,
		unsigned char **planes, int *w, int *h, int *sy, int *suv) {
	SBufferInfo info;
	memset(&info, 0, sizeof info);
	planes[0] = planes[1] = planes[2] = NULL;
	int rc = (*d)->DecodeFrameNoDelay(d, src, n, planes, &info);
	if (rc != 0) {
		return rc;
	}
	if (info.iBufferStatus != 1) {
		return -1;
	}
	*w = info.UsrData.sSystemBuffer.iWidth;
	*h = info.UsrData.sSystemBuffer.iHeight;
	*sy = info.UsrData.sSystemBuffer.iStride[0];
	*suv = info.UsrData.sSystemBuffer.iStride[1];
	return 0;
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
	BitrateKbps   int // target, kbit/s
}

// Encoder is an H.264 encoder for frames of one size. It is not safe for
// concurrent use.
type Encoder struct {
	e    *C.gb_h264enc
	w, h int
	kbps int
	out  []byte
}

// NewEncoder opens an H.264 encoder; Close frees it.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	if cfg.Width < 16 || cfg.Height < 16 || cfg.Width%2 != 0 || cfg.Height%2 != 0 {
		return nil, fmt.Errorf("h264 encoder: bad size %dx%d", cfg.Width, cfg.Height)
	}
	if cfg.BitrateKbps <= 0 {
		return nil, fmt.Errorf("h264 encoder: bad bitrate %d kbit/s", cfg.BitrateKbps)
	}
	e := (*C.gb_h264enc)(C.calloc(1, C.sizeof_gb_h264enc))
	if e == nil {
		return nil, errors.New("h264 encoder: out of memory")
	}
	// 60 fps is the most a screencast gives; openh264 budgets bits per
	// frame from it, and frames come irregularly anyway.
	if msg := C.gb_h264enc_open(e, C.int(cfg.Width), C.int(cfg.Height), C.int(cfg.BitrateKbps*1000), 60); msg != nil {
		C.free(unsafe.Pointer(e))
		return nil, fmt.Errorf("h264 encoder: %s", C.GoString(msg))
	}
	return &Encoder{e: e, w: cfg.Width, h: cfg.Height, kbps: cfg.BitrateKbps}, nil
}

// Size returns the frame size the encoder was opened for.
func (e *Encoder) Size() (w, h int) { return e.w, e.h }

// SetBitrate changes the target bitrate, in kbit/s; the same bitrate again
// costs nothing.
func (e *Encoder) SetBitrate(kbps int) error {
	if e.e == nil {
		return errors.New("h264 set bitrate: encoder closed")
	}
	if kbps <= 0 {
		return fmt.Errorf("h264 set bitrate: bad bitrate %d kbit/s", kbps)
	}
	if kbps == e.kbps {
		return nil
	}
	if rc := C.gb_h264enc_bitrate(e.e, C.int(kbps*1000)); rc != 0 {
		return fmt.Errorf("h264 set bitrate: error %d", int(rc))
	}
	e.kbps = kbps
	return nil
}

// Encode encodes img (whose visible size must match the encoder's) with
// presentation time pts in 1/90000 s (duration is not used: openh264 paces
// its rate control by the timestamps). The returned frame, in Annex B form,
// is valid until the next call; it is nil when openh264 produced nothing.
func (e *Encoder) Encode(img *i420.Image, pts int64, _ uint64, forceKey bool) (frame []byte, key bool, err error) {
	if e.e == nil {
		return nil, false, errors.New("h264 encode: encoder closed")
	}
	if img.Width != e.w || img.Height != e.h {
		return nil, false, fmt.Errorf("h264 encode: frame %dx%d, encoder %dx%d", img.Width, img.Height, e.w, e.h)
	}
	var force C.int
	if forceKey {
		force = 1
	}
	var n C.size_t
	var idr C.int
	rc := C.gb_h264enc_encode(e.e, C.int(e.w), C.int(e.h),
		(*C.uchar)(unsafe.Pointer(&img.Y[0])), (*C.uchar)(unsafe.Pointer(&img.U[0])), (*C.uchar)(unsafe.Pointer(&img.V[0])),
		C.int(img.StrideY), C.int(img.StrideUV), C.longlong(pts/90),
		force, &n, &idr)
	if rc != 0 {
		return nil, false, fmt.Errorf("h264 encode: error %d", int(rc))
	}
	if n == 0 {
		return nil, false, nil
	}
	if cap(e.out) < int(n) {
		e.out = make([]byte, int(n), int(n)+int(n)/2)
	}
	e.out = e.out[:n]
	copy(e.out, unsafe.Slice((*byte)(unsafe.Pointer(e.e.buf)), int(n)))
	return e.out, idr != 0, nil
}

// Close frees the encoder; it is safe to call twice.
func (e *Encoder) Close() {
	if e.e != nil {
		C.gb_h264enc_close(e.e)
		e.e = nil
	}
}

// Decoder is an H.264 decoder. It is not safe for concurrent use.
type Decoder struct {
	d *C.ISVCDecoder
}

// NewDecoder opens an H.264 decoder; Close frees it.
func NewDecoder() (*Decoder, error) {
	d := C.gb_h264dec_open()
	if d == nil {
		return nil, errors.New("h264 decoder: open failed")
	}
	return &Decoder{d: d}, nil
}

// Decode decodes one access unit (Annex B) into dst (copied).
func (d *Decoder) Decode(frame []byte, dst *i420.Image) error {
	if d.d == nil {
		return errors.New("h264 decode: decoder closed")
	}
	if len(frame) == 0 {
		return errors.New("h264 decode: empty frame")
	}
	planes := (*[3]*C.uchar)(C.calloc(3, C.size_t(unsafe.Sizeof(uintptr(0)))))
	defer C.free(unsafe.Pointer(planes))
	src := C.CBytes(frame)
	defer C.free(src)
	var w, h, sy, suv C.int
	if rc := C.gb_h264dec_decode(d.d, (*C.uchar)(src), C.int(len(frame)), &planes[0], &w, &h, &sy, &suv); rc != 0 {
		return fmt.Errorf("h264 decode: error %d", int(rc))
	}
	dst.Reset(int(w), int(h))
	copyPlane(dst.Y, dst.StrideY, planes[0], int(sy), int(w), int(h))
	copyPlane(dst.U, dst.StrideUV, planes[1], int(suv), int(w+1)/2, int(h+1)/2)
	copyPlane(dst.V, dst.StrideUV, planes[2], int(suv), int(w+1)/2, int(h+1)/2)
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
		C.gb_h264dec_close(d.d)
		d.d = nil
	}
}
