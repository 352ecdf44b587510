// Package opus is a small cgo binding to libopus's encoder (and a decoder,
// used by tests to check what the encoder produced).
//
// The encoder is set up for a browser's sound sent in real time: 48 kHz,
// interleaved signed 16-bit samples, the "audio" application (music and
// speech alike, as a web page plays both), variable bitrate with in-band
// forward error correction for a lossy link.
package opus

/*
#cgo pkg-config: opus
#include <stdlib.h>
#include <opus.h>

// The encoder's controls are variadic macros, which cgo cannot call.
static int gb_opus_enc_setup(OpusEncoder *e, int bitrate, int complexity) {
	int err;
	if ((err = opus_encoder_ctl(e, OPUS_SET_BITRATE(bitrate))) != OPUS_OK) return err;
	if ((err = opus_encoder_ctl(e, OPUS_SET_COMPLEXITY(complexity))) != OPUS_OK) return err;
	if ((err = opus_encoder_ctl(e, OPUS_SET_INBAND_FEC(1))) != OPUS_OK) return err;
	if ((err = opus_encoder_ctl(e, OPUS_SET_PACKET_LOSS_PERC(5))) != OPUS_OK) return err;
	return opus_encoder_ctl(e, OPUS_SET_VBR(1));
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// SampleRate is the only rate the package is used at: WebRTC's Opus clock.
const SampleRate = 48000

// maxPacket bounds one encoded packet (libopus's recommended buffer).
const maxPacket = 4000

// EncoderConfig sets up an Encoder.
type EncoderConfig struct {
	Channels    int // 1 or 2, interleaved
	BitrateBps  int // target bitrate, bits/s
	Complexity  int // 0 (fastest) to 10 (best)
	FrameLength int // samples per channel in each frame: 120, 240, 480, 960, 1920 or 2880
}

// Encoder is an Opus encoder. It is not safe for concurrent use.
type Encoder struct {
	e        *C.OpusEncoder
	channels int
	frame    int
	out      []byte
}

// NewEncoder opens an encoder; Close frees it.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	if cfg.Channels != 1 && cfg.Channels != 2 {
		return nil, fmt.Errorf("opus encoder: %d channels: want 1 or 2", cfg.Channels)
	}
	switch cfg.FrameLength {
	case 120, 240, 480, 960, 1920, 2880:
	default:
		return nil, fmt.Errorf("opus encoder: frame of %d samples: not an Opus frame size at 48 kHz", cfg.FrameLength)
	}
	if cfg.BitrateBps < 6000 || cfg.BitrateBps > 510000 {
		return nil, fmt.Errorf("opus encoder: bitrate %d: want 6000-510000 bits/s", cfg.BitrateBps)
	}
	var rc C.int
	e := C.opus_encoder_create(SampleRate, C.int(cfg.Channels), C.OPUS_APPLICATION_AUDIO, &rc)
	if rc != C.OPUS_OK || e == nil {
		return nil, fmt.Errorf("opus encoder: %s", C.GoString(C.opus_strerror(rc)))
	}
	if rc := C.gb_opus_enc_setup(e, C.int(cfg.BitrateBps), C.int(min(max(cfg.Complexity, 0), 10))); rc != C.OPUS_OK {
		C.opus_encoder_destroy(e)
		return nil, fmt.Errorf("opus encoder: %s", C.GoString(C.opus_strerror(rc)))
	}
	return &Encoder{e: e, channels: cfg.Channels, frame: cfg.FrameLength, out: make([]byte, maxPacket)}, nil
}

// FrameLength is the samples per channel of the frames Encode takes.
func (e *Encoder) FrameLength() int { return e.frame }

// Encode encodes one frame of interleaved samples (FrameLength per
// channel). The packet is valid until the next call.
func (e *Encoder) Encode(pcm []int16) ([]byte, error) {
	if e.e == nil {
		return nil, errors.New("opus encode: encoder closed")
	}
	if len(pcm) != e.frame*e.channels {
		return nil, fmt.Errorf("opus encode: %d samples, want %d", len(pcm), e.frame*e.channels)
	}
	n := C.opus_encode(e.e, (*C.opus_int16)(unsafe.Pointer(&pcm[0])), C.int(e.frame),
		(*C.uchar)(unsafe.Pointer(&e.out[0])), C.opus_int32(len(e.out)))
	if n < 0 {
		return nil, fmt.Errorf("opus encode: %s", C.GoString(C.opus_strerror(n)))
	}
	return e.out[:n], nil
}

// Close frees the encoder; it is safe to call twice.
func (e *Encoder) Close() {
	if e.e != nil {
		C.opus_encoder_destroy(e.e)
		e.e = nil
	}
}

// Decoder is an Opus decoder. It is not safe for concurrent use.
type Decoder struct {
	d        *C.OpusDecoder
	channels int
}

// NewDecoder opens a decoder for channels (1 or 2) at 48 kHz; Close frees it.
func NewDecoder(channels int) (*Decoder, error) {
	if channels != 1 && channels != 2 {
		return nil, fmt.Errorf("opus decoder: %d channels: want 1 or 2", channels)
	}
	var rc C.int
	d := C.opus_decoder_create(SampleRate, C.int(channels), &rc)
	if rc != C.OPUS_OK || d == nil {
		return nil, fmt.Errorf("opus decoder: %s", C.GoString(C.opus_strerror(rc)))
	}
	return &Decoder{d: d, channels: channels}, nil
}

// Decode decodes one packet into pcm (interleaved, room for the longest
// frame: 5760 samples per channel) and returns the samples per channel.
func (d *Decoder) Decode(packet []byte, pcm []int16) (int, error) {
	if d.d == nil {
		return 0, errors.New("opus decode: decoder closed")
	}
	if len(packet) == 0 || len(pcm) < d.channels {
		return 0, errors.New("opus decode: empty packet or buffer")
	}
	n := C.opus_decode(d.d, (*C.uchar)(unsafe.Pointer(&packet[0])), C.opus_int32(len(packet)),
		(*C.opus_int16)(unsafe.Pointer(&pcm[0])), C.int(len(pcm)/d.channels), 0)
	if n < 0 {
		return 0, fmt.Errorf("opus decode: %s", C.GoString(C.opus_strerror(n)))
	}
	return int(n), nil
}

// Close frees the decoder; it is safe to call twice.
func (d *Decoder) Close() {
	if d.d != nil {
		C.opus_decoder_destroy(d.d)
		d.d = nil
	}
}
