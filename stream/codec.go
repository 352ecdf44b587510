package stream

import (
	"fmt"
	"strings"

	"github.com/glovebox/glovebox/stream/internal/h264"
	"github.com/glovebox/glovebox/stream/internal/i420"
	"github.com/glovebox/glovebox/stream/internal/vpx"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// The video codecs, in the default order of preference: VP8 first (libvpx
// encodes screen content well and every browser decodes it), H.264 for
// clients that offer only it or want hardware decode (Safari/iOS, battery).
// stream.codecs changes the order or leaves one out.
const (
	// h264PayloadType is what we register for H.264; as for VP8, the
	// negotiated type is the browser's.
	h264PayloadType = 102
	// h264FMTP is constrained baseline, level 3.1, non-interleaved
	// packetization (FU-A/STAP-A), what openh264 produces and every
	// WebRTC browser decodes.
	h264FMTP = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
)

// Codec names as the configuration spells them (stream.codecs).
const (
	CodecVP8  = "vp8"
	CodecH264 = "h264"
)

// DefaultCodecs is the default order of preference.
var DefaultCodecs = []string{CodecVP8, CodecH264}

// codecMimes maps configured codec names to their MIME types.
var codecMimes = map[string]string{CodecVP8: webrtc.MimeTypeVP8, CodecH264: webrtc.MimeTypeH264}

// codecName is the configuration's name of a negotiated MIME type.
func codecName(mime string) string {
	for n, m := range codecMimes {
		if strings.EqualFold(m, mime) {
			return n
		}
	}
	return strings.ToLower(mime)
}

// registerVideoCodecs registers the codecs we send, in the order of prefs
// (names as in DefaultCodecs), so that a browser offering several gets the
// first of ours it takes.
func registerVideoCodecs(me *webrtc.MediaEngine, prefs []string) error {
	fir := []webrtc.RTCPFeedback{{Type: "ccm", Parameter: "fir"}}
	all := map[string]webrtc.RTPCodecParameters{
		CodecVP8: {
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: clockRate, RTCPFeedback: fir},
			PayloadType:        vp8PayloadType,
		},
		CodecH264: {
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeH264, ClockRate: clockRate, SDPFmtpLine: h264FMTP, RTCPFeedback: fir,
			},
			PayloadType: h264PayloadType,
		},
	}
	for _, name := range prefs {
		c, ok := all[name]
		if !ok {
			return fmt.Errorf("register codec: unknown codec %q", name)
		}
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return fmt.Errorf("register %s: %w", c.MimeType, err)
		}
	}
	return nil
}

// pickCodec chooses among the negotiated codecs the one we send: the first
// of prefs the browser takes (H.264 only with packetization-mode 1).
func pickCodec(negotiated []webrtc.RTPCodecParameters, prefs []string) (webrtc.RTPCodecParameters, bool) {
	for _, name := range prefs {
		mime := codecMimes[name]
		for _, c := range negotiated {
			if strings.EqualFold(c.MimeType, mime) && (mime != webrtc.MimeTypeH264 || h264PacketizationMode1(c.SDPFmtpLine)) {
				return c, true
			}
		}
	}
	return webrtc.RTPCodecParameters{}, false
}

func h264PacketizationMode1(fmtp string) bool {
	for _, p := range strings.Split(fmtp, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "packetization-mode") {
			return strings.TrimSpace(v) == "1"
		}
	}
	return false
}

// offerSendable reports whether a video section of an offer lists a codec
// of prefs we can send: VP8, or H.264 with packetization-mode 1.
func offerSendable(md *sdp.MediaDescription, prefs []string) bool {
	want := map[string]bool{}
	for _, n := range prefs {
		want[n] = true
	}
	h264PTs := map[string]bool{}
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		// "96 VP8/90000"
		pt, codec, ok := strings.Cut(a.Value, " ")
		if !ok {
			continue
		}
		switch c := strings.ToUpper(codec); {
		case strings.HasPrefix(c, "VP8/") && want[CodecVP8]:
			return true
		case strings.HasPrefix(c, "H264/") && want[CodecH264]:
			h264PTs[pt] = true
		}
	}
	for _, a := range md.Attributes {
		if a.Key != "fmtp" {
			continue
		}
		if pt, params, ok := strings.Cut(a.Value, " "); ok && h264PTs[pt] && h264PacketizationMode1(params) {
			return true
		}
	}
	return false
}

// frameEncoder is what the encoder goroutine needs of a codec.
type frameEncoder interface {
	// Size returns the frame size the encoder was opened for.
	Size() (w, h int)
	// Encode encodes img with presentation time pts (90 kHz); the frame is
	// valid until the next call, nil when the encoder produced none.
	Encode(img *i420.Image, pts int64, duration uint64, forceKey bool) (frame []byte, key bool, err error)
	// SetBitrate changes the target bitrate.
	SetBitrate(kbps int) error
	// Close frees the encoder.
	Close()
}

// newFrameEncoder opens an encoder for the negotiated codec mime.
func newFrameEncoder(mime string, w, h, kbps int) (frameEncoder, error) {
	if strings.EqualFold(mime, webrtc.MimeTypeH264) {
		return h264.NewEncoder(h264.EncoderConfig{Width: w, Height: h, BitrateKbps: kbps})
	}
	return vpx.NewEncoder(vpx.EncoderConfig{Width: w, Height: h, BitrateKbps: kbps, CPUUsed: vp8CPUUsed})
}
