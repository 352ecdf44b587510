package stream

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/glovebox/glovebox/stream/internal/opus"
)

// The sound of a tab: PCM in (WriteAudio), Opus out on an audio track of the
// same media stream as the video, so that the browser plays the two in step.
const (
	// AudioRate is the sample rate WriteAudio takes: Opus's own, so nothing
	// is resampled.
	AudioRate = opus.SampleRate
	// AudioChannels is the channels WriteAudio takes, interleaved.
	AudioChannels = 2
	// audioFrame is one Opus frame: 20 ms, WebRTC's usual packet time.
	audioFrame = AudioRate / 50
	// audioFrameBytes is audioFrame as s16le stereo.
	audioFrameBytes = audioFrame * AudioChannels * 2
	// opusPayloadType is what we register for Opus; the negotiated type is
	// the browser's (111 in Chrome and Firefox).
	opusPayloadType = 111
	// opusFMTP allows stereo both ways and in-band FEC.
	opusFMTP = "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1"
	// opusBitrate is the encoder's target: good for music in stereo, about
	// 8 kB/s while the page plays sound and nothing while it is silent.
	opusBitrate = 64000
	// opusComplexity trades quality for CPU: 5 costs about 0.3 % of a core
	// per stream (BenchmarkEncode in internal/opus), 10 about 0.75 %.
	opusComplexity = 5
	// silenceHangover is how many silent frames still go after sound, so
	// that the decoder's tail plays out rather than stopping dead.
	silenceHangover = 5
	// audioGap is how far WriteAudio's times may stray from the sample
	// count before the clock is taken again from them: a sink that was
	// suspended (no stream in Chromium) and resumes after a pause.
	audioGap = 60 * time.Millisecond
)

// registerAudioCodec registers Opus, the one audio codec we send.
func registerAudioCodec(me *webrtc.MediaEngine) error {
	c := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: AudioRate, Channels: AudioChannels, SDPFmtpLine: opusFMTP,
		},
		PayloadType: opusPayloadType,
	}
	if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
		return fmt.Errorf("register opus: %w", err)
	}
	return nil
}

// offerWantsAudio reports whether an offer has an audio section in which
// we may send Opus (recvonly or sendrecv, not rejected). The landing page
// offers one; older pages and plain clients do not, and get video alone.
func offerWantsAudio(offer string) bool {
	var sd sdp.SessionDescription
	if sd.UnmarshalString(offer) != nil {
		return false
	}
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" || md.MediaName.Port.Value == 0 {
			continue
		}
		if _, ok := md.Attribute("sendonly"); ok {
			continue
		}
		if _, ok := md.Attribute("inactive"); ok {
			continue
		}
		for _, a := range md.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			if _, codec, ok := strings.Cut(a.Value, " "); ok && strings.HasPrefix(strings.ToUpper(codec), "OPUS/48000") {
				return true
			}
		}
	}
	return false
}

// audioSender is a peer's audio path: the Opus encoder, the track and the
// RTP clock. WriteAudio's callers (one at a time) drive it.
type audioSender struct {
	track   *webrtc.TrackLocalStaticRTP
	ssrcVal atomic.Uint32 // the sender's SSRC, set once the track is added
	clock   rtpClock      // capture times to RTP timestamps, for the sender reports

	mu   sync.Mutex
	enc  *opus.Encoder
	buf  []byte // PCM not yet a whole frame
	pcm  []int16
	seq  uint16
	base uint32 // RTP timestamp of t0

	clockSet bool
	t0       time.Time // capture time of the first sample written
	// next is the capture time, in samples since t0, of the first sample
	// of buf: the count runs on as long as the PCM comes without a gap.
	next    int64
	silent  int   // silent frames in a row
	sending bool  // the last frame went out: the next continues its talkspurt
	lastTS  int64 // samples since t0 of the last frame sent
	sentAny bool
	closed  bool
}

func newAudioSender() (*audioSender, error) {
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: AudioRate, Channels: AudioChannels, SDPFmtpLine: opusFMTP,
	}, "audio", "glovebox") // the video's stream: one sync group
	if err != nil {
		return nil, fmt.Errorf("audio track: %w", err)
	}
	enc, err := opus.NewEncoder(opus.EncoderConfig{Channels: AudioChannels, BitrateBps: opusBitrate,
		Complexity: opusComplexity, FrameLength: audioFrame})
	if err != nil {
		return nil, err
	}
	return &audioSender{track: track, enc: enc, clock: rtpClock{rate: AudioRate}, pcm: make([]int16, audioFrame*AudioChannels),
		seq: uint16(rand.Uint32()), base: rand.Uint32()}, nil
}

// ssrc is the audio's SSRC, 0 before the track is added.
func (a *audioSender) ssrc() uint32 { return a.ssrcVal.Load() }

func (a *audioSender) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	a.enc.Close()
}

// WriteAudio hands the peer PCM of the tab's sound: interleaved signed
// 16-bit little-endian samples, AudioChannels channels at AudioRate, whose
// last sample was played at end (when it came out of the browser's sound
// device). The RTP timestamps come from those times, on the same clock as
// the video's capture times, so that the browser lines the two up. Frames
// of digital silence are neither encoded nor sent (after a short tail): a
// silent page costs nothing. Without an audio track (the offer had none,
// or PeerOptions.Audio is off) or before the browser is connected, the PCM
// is dropped. Call it from one goroutine at a time; it does not keep pcm.
func (p *Peer) WriteAudio(pcm []byte, end time.Time) {
	a := p.audio.Load()
	if a == nil || len(pcm) == 0 {
		return
	}
	if !p.connected.Load() {
		a.mu.Lock()
		a.buf, a.sending = a.buf[:0], false
		a.mu.Unlock()
		return
	}
	a.write(p, pcm, end)
}

func (a *audioSender) write(p *Peer, pcm []byte, end time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	pcm = pcm[:len(pcm)/4*4] // whole stereo samples
	n := int64(len(pcm) / 4)
	if !a.clockSet {
		a.clockSet, a.t0 = true, end.Add(-samplesDuration(n))
		a.clock.start(a.t0, a.base)
	}
	// Where this PCM starts by the times given, against where the count
	// says it does.
	start := end.Sub(a.t0).Nanoseconds()*AudioRate/int64(time.Second) - n
	expected := a.next + int64(len(a.buf)/4)
	if d := samplesDuration(start - expected); d > audioGap || d < -audioGap {
		// A pause (the sink was suspended) or a stall: a new talkspurt,
		// on the clock again.
		a.buf, a.next, a.sending = a.buf[:0], start, false
		p.stats.audioResyncs.Add(1)
	}
	a.buf = append(a.buf, pcm...)
	for len(a.buf) >= audioFrameBytes {
		a.frame(p, a.buf[:audioFrameBytes])
		a.buf = a.buf[:copy(a.buf, a.buf[audioFrameBytes:])]
		a.next += audioFrame
	}
}

// frame encodes and sends one frame of PCM starting at sample a.next,
// unless it is silence past the hangover.
func (a *audioSender) frame(p *Peer, b []byte) {
	silent := true
	for i := range a.pcm {
		v := int16(binary.LittleEndian.Uint16(b[2*i:]))
		a.pcm[i] = v
		if v != 0 {
			silent = false
		}
	}
	if silent {
		a.silent++
	} else {
		a.silent = 0
	}
	if a.silent > silenceHangover || (silent && !a.sending) {
		a.sending = false
		return
	}
	start := time.Now()
	pkt, err := a.enc.Encode(a.pcm)
	p.stats.audioEncodeTime.Add(int64(time.Since(start)))
	if err != nil {
		p.log.Warn("encode audio", "err", err)
		a.sending = false
		return
	}
	p.stats.audioFrames.Add(1)
	ts := a.next
	marker := !a.sending // the first packet of a talkspurt (RFC 3551)
	if a.sentAny && ts <= a.lastTS {
		ts = a.lastTS + audioFrame // never backwards, whatever the times said
	}
	h := rtp.Header{Version: 2, Marker: marker, SequenceNumber: a.seq, Timestamp: a.base + uint32(ts)}
	a.seq++
	if err := a.track.WriteRTP(&rtp.Packet{Header: h, Payload: pkt}); err != nil {
		p.log.Debug("write audio", "err", err)
		a.sending = false
		return
	}
	a.lastTS, a.sentAny, a.sending = ts, true, true
	if r := p.opts.Recorder; r != nil {
		r.RecordAudio(pkt, a.t0.Add(samplesDuration(ts)))
	}
	p.stats.audioPackets.Add(1)
	p.stats.audioBytes.Add(uint64(len(pkt)))
}

// samplesDuration is the time n samples last at AudioRate.
func samplesDuration(n int64) time.Duration {
	return time.Duration(n * int64(time.Second) / AudioRate)
}
