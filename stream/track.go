package stream

import (
	"errors"
	"strings"
	"sync"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
)

// PlayoutDelayURI is the RTP header extension that tells Chrome how long it
// may buffer video. Sent as 0/0 on every packet it renders frames at once
// (click-to-photon p95 fell from 307 ms to 28 ms).
const PlayoutDelayURI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"

const (
	// rtpMTU is the largest RTP packet we build (pion's outbound MTU).
	rtpMTU = 1200
	// rtpOverhead is the RTP header plus header extensions: 12 fixed bytes,
	// 4 for the one-byte extension header, 4 for playout-delay and 4 for the
	// transport-wide sequence number TWCC adds, with room to spare.
	rtpOverhead = 12 + 4 + 4 + 4 + 8
	// vp8PayloadType is what we register for VP8; the negotiated type (the
	// browser's) comes from Bind.
	vp8PayloadType = 96
)

var errNotBound = errors.New("video track not bound")

// videoTrack is our own webrtc.TrackLocal: pion's TrackLocalStaticSample
// derives RTP timestamps from the sum of earlier sample durations, which is
// wrong for a screencast whose frames come only on change (Chrome's jitter
// buffer grew to 1.5 s). This one packetizes VP8 or H.264 (whichever was
// negotiated, codec.go) itself and stamps each frame with the 90 kHz clock
// of its capture time.
type videoTrack struct {
	id, streamID string
	prefs        []string // codec names in order of preference

	mu        sync.Mutex
	binding   *trackBinding
	payloader codecs.VP8Payloader
	h264      codecs.H264Payloader
	seq       uint16
	header    rtp.Header
	playout   [3]byte // 12-bit min, 12-bit max, in 10 ms units: both 0
	onBind    func()
	// negotiated is the codec of the last Bind, kept after Unbind.
	negotiated string
	// The last packet written, for resendLast.
	lastHeader  rtp.Header
	lastPayload []byte
	haveLast    bool
}

type trackBinding struct {
	ctxID       string
	ssrc        uint32
	payloadType uint8
	mime        string // webrtc.MimeTypeVP8 or MimeTypeH264
	playoutID   uint8  // 0: not negotiated
	writer      webrtc.TrackLocalWriter
}

var _ webrtc.TrackLocal = (*videoTrack)(nil)

func newVideoTrack(id, streamID string, seq uint16, prefs []string, onBind func()) *videoTrack {
	t := &videoTrack{id: id, streamID: streamID, seq: seq, prefs: prefs, onBind: onBind}
	t.payloader.EnablePictureID = true
	return t
}

// Bind implements webrtc.TrackLocal: it picks the codec (the first of
// t.prefs the browser took) and its negotiated payload type, the SSRC and the
// playout-delay extension id.
func (t *videoTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codec, ok := pickCodec(ctx.CodecParameters(), t.prefs)
	if !ok {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	b := &trackBinding{
		ctxID:       ctx.ID(),
		ssrc:        uint32(ctx.SSRC()),
		payloadType: uint8(codec.PayloadType),
		mime:        codec.MimeType,
		writer:      ctx.WriteStream(),
	}
	for _, ext := range ctx.HeaderExtensions() {
		if ext.URI == PlayoutDelayURI && ext.ID > 0 && ext.ID < 15 {
			b.playoutID = uint8(ext.ID)
		}
	}
	t.mu.Lock()
	t.binding = b
	t.negotiated = codec.MimeType
	t.mu.Unlock()
	if t.onBind != nil {
		t.onBind()
	}
	return codec, nil
}

// Unbind implements webrtc.TrackLocal.
func (t *videoTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.binding != nil && t.binding.ctxID == ctx.ID() {
		t.binding = nil
	}
	return nil
}

// ID implements webrtc.TrackLocal.
func (t *videoTrack) ID() string { return t.id }

// RID implements webrtc.TrackLocal; there is no simulcast.
func (t *videoTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal.
func (t *videoTrack) StreamID() string { return t.streamID }

// Kind implements webrtc.TrackLocal.
func (t *videoTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeVideo }

func (t *videoTrack) bound() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.binding != nil
}

// mime returns the negotiated codec, VP8 before Bind.
func (t *videoTrack) mime() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.binding == nil {
		return webrtc.MimeTypeVP8
	}
	return t.binding.mime
}

// lastMime returns the codec of the last Bind, still after Unbind; "" before.
func (t *videoTrack) lastMime() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.negotiated
}

// ssrc returns the negotiated SSRC, 0 before Bind.
func (t *videoTrack) ssrc() uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.binding == nil {
		return 0
	}
	return t.binding.ssrc
}

// writeFrame packetizes one frame with RTP timestamp ts and writes it.
// It returns the payload bytes and packets written.
func (t *videoTrack) writeFrame(frame []byte, ts uint32) (bytes, packets int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.binding
	if b == nil {
		return 0, 0, errNotBound
	}
	var payloads [][]byte
	if strings.EqualFold(b.mime, webrtc.MimeTypeH264) {
		payloads = t.h264.Payload(rtpMTU-rtpOverhead, frame)
	} else {
		payloads = t.payloader.Payload(rtpMTU-rtpOverhead, frame)
	}
	h := &t.header
	for i, p := range payloads {
		// The header is reused: pion's interceptors copy what they keep.
		*h = rtp.Header{
			Version:        2,
			Marker:         i == len(payloads)-1,
			PayloadType:    b.payloadType,
			SequenceNumber: t.seq,
			Timestamp:      ts,
			SSRC:           b.ssrc,
			Extensions:     h.Extensions[:0],
		}
		t.seq++
		if b.playoutID != 0 {
			if err := h.SetExtension(b.playoutID, t.playout[:]); err != nil {
				return bytes, packets, err
			}
		}
		if _, err := b.writer.WriteRTP(h, p); err != nil {
			t.haveLast = false
			return bytes, packets, err
		}
		bytes += len(p)
		packets++
		if i == len(payloads)-1 {
			t.lastHeader = h.Clone()
			t.lastPayload = append(t.lastPayload[:0], p...)
			t.haveLast = true
		}
	}
	return bytes, packets, nil
}

// resendLast writes the last packet of the last frame again, with the same
// sequence number and timestamp: the browser drops it as a duplicate if it has it, and
// has its frame whole if that packet was lost. A lost last packet is the
// one loss a receiver cannot see (no later packet shows the gap) until
// more video comes. It returns the payload bytes written, 0 if there is no
// packet to resend.
func (t *videoTrack) resendLast() (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.binding
	if b == nil || !t.haveLast {
		return 0, nil
	}
	h := t.lastHeader.Clone() // interceptors may set header extensions
	if _, err := b.writer.WriteRTP(&h, t.lastPayload); err != nil {
		return 0, err
	}
	return len(t.lastPayload), nil
}
