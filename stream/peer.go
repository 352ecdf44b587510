package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

var (
	// ErrBadOffer is wrapped by Answer's errors for an offer that cannot be
	// parsed or offers nothing we can send (no video section with VP8 or H.264).
	ErrBadOffer = errors.New("bad offer")
	// ErrNotOpen is returned by Send before the data channel is open or
	// after it closed.
	ErrNotOpen = errors.New("data channel not open")
	// ErrMessageTooLarge is passed to PeerOptions.OnMessageError for a
	// received message larger than PeerOptions.MaxMessage (it is dropped).
	ErrMessageTooLarge = errors.New("data channel message too large")
	// ErrSendBufferFull is returned by Send when the browser has not
	// acknowledged SendBufferLimit bytes already sent: the message is dropped
	// rather than queued without bound.
	ErrSendBufferFull = errors.New("data channel send buffer full")
	// ErrClosed is returned by Answer after Close.
	ErrClosed = errors.New("peer closed")
)

const (
	// DataChannelLabel is the label of the one data channel the landing page
	// creates; channels with other labels are closed.
	DataChannelLabel = "glovebox"
	// DefaultMaxMessage is PeerOptions.MaxMessage's default.
	DefaultMaxMessage = 64 << 10
	// SendBufferLimit bounds the bytes Send may leave unacknowledged.
	SendBufferLimit = 4 << 20
	// disconnectedGrace is how long ICE may stay disconnected before the
	// peer counts as failed.
	disconnectedGrace = 5 * time.Second
)

// PeerOptions are the per-tab settings and callbacks of a Peer.
type PeerOptions struct {
	// Log receives the peer's logs (give it the tab's attributes); nil means
	// the server's logger.
	Log *slog.Logger
	// OnMessage receives each data-channel message, text or binary, in
	// order, from one goroutine. It must not block long: it holds up the
	// messages behind it. msg is the callee's to keep.
	OnMessage func(msg []byte)
	// OnOpen is called once the data channel is open: Send works from then.
	OnOpen func()
	// MaxMessage is the largest message delivered to OnMessage; larger ones
	// are dropped and reported to OnMessageError. 0 means DefaultMaxMessage;
	// at most MaxMessageLimit.
	MaxMessage int
	// OnMessageError is told about dropped messages (an error wrapping
	// ErrMessageTooLarge); nil logs them instead.
	OnMessageError func(err error)
	// Audio sends the tab's sound (WriteAudio) on an Opus track, when the
	// offer has an audio section. Off, or for an offer without one, the
	// answer has no audio and WriteAudio drops what it is given.
	Audio bool
	// Recorder, if not nil, is given every video frame and audio packet
	// the peer sends (recorder.go): the tab's recording.
	Recorder Recorder
}

// Stats are a Peer's counters since it was created.
type Stats struct {
	FramesIn      uint64        // frames handed to Submit
	FramesDecoded uint64        // frames decoded from JPEG
	FramesEncoded uint64        // video frames encoded, re-encodes of the last image included
	FramesSent    uint64        // video frames written to the track in full
	FramesDropped uint64        // frames replaced before decoding, undecodable, or submitted after Close
	FramesSkipped uint64        // decoded frames replaced before encoding, to keep the frame rate the bitrate allows
	Keyframes     uint64        // keyframes sent
	BytesSent     uint64        // video payload bytes sent in RTP
	PacketsSent   uint64        // RTP packets sent
	EncodeTime    time.Duration // total time spent in the video encoder
	DecodeTime    time.Duration // total time spent in the JPEG decoder
	Width, Height int           // size of the last decoded frame
	TargetBitrate int           // congestion control's current target, bits/s (the encoder gets 90 %)
	MinTarget     int           // lowest target since connected, bits/s (0 before)
	RTT           time.Duration // round-trip time from the last RTCP receiver report with one
	FractionLost  float64       // fraction of packets lost, 0-1, from the last receiver report
	PacketsLost   int64         // cumulative packets lost, from the last receiver report
	Codec         string        // the codec sent ("vp8", "h264"), "" before the browser's offer

	Audio           bool          // an audio track was negotiated
	AudioFrames     uint64        // Opus frames encoded (silence past a short tail is not)
	AudioPackets    uint64        // audio RTP packets sent
	AudioBytes      uint64        // audio payload bytes sent
	AudioEncodeTime time.Duration // total time spent in the Opus encoder
	AudioResyncs    uint64        // times the audio clock was taken again from WriteAudio's times (pauses)
}

type peerStats struct {
	framesIn, framesDecoded, framesEncoded, framesDropped atomic.Uint64
	keyframes, bytesSent, packetsSent                     atomic.Uint64
	framesSent, framesSkipped                             atomic.Uint64
	targetBitrate, minTarget, rtt, fractionLost256        atomic.Int64
	packetsLost                                           atomic.Int64
	encodeTime, decodeTime                                atomic.Int64
	width, height                                         atomic.Int64

	audioFrames, audioPackets, audioBytes, audioResyncs atomic.Uint64
	audioEncodeTime                                     atomic.Int64
}

// Peer is the WebRTC connection of one tab: a video track (VP8 or H.264) fed by Submit
// and the tab's data channel.
type Peer struct {
	srv   *Server
	log   *slog.Logger
	opts  PeerOptions
	pc    *webrtc.PeerConnection
	track *videoTrack
	// audio is set by Answer when the offer takes audio and opts.Audio is on.
	audio atomic.Pointer[audioSender]
	bwe   cc.BandwidthEstimator
	media *media // owned by the encoder goroutine until it exits
	// videoClock maps capture times to the video's RTP timestamps, for
	// the sender reports (senderreport.go).
	videoClock rtpClock

	// The latest-wins slot between Submit and the encoder goroutine.
	slotMu     sync.Mutex
	pending    pendingFrame
	hasPending bool
	slotClosed bool

	mu        sync.Mutex
	closed    bool
	answered  bool
	dc        *webrtc.DataChannel
	discTimer *time.Timer
	watchers  map[*Watcher]struct{} // watch.go

	wake        chan struct{}
	keyRequest  atomic.Bool
	connected   atomic.Bool
	heard       atomic.Bool // a data-channel message has come from the browser
	viewerReady atomic.Bool // ... for the first time, and step has not yet seen it
	paused      atomic.Bool // SetVideoPaused: no video goes out

	done      chan struct{}
	doneOnce  sync.Once
	quit      chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup

	stats peerStats
}

// NewPeer creates the peer of one tab. Its encoder goroutine starts at once,
// so frames may be submitted before Answer; they are decoded (and their
// callbacks called) but only the newest image is kept until the browser is
// connected. The caller must Close the peer.
func (s *Server) NewPeer(opts PeerOptions) (_ *Peer, retErr error) {
	if opts.MaxMessage == 0 {
		opts.MaxMessage = DefaultMaxMessage
	}
	if opts.MaxMessage < 0 || opts.MaxMessage > MaxMessageLimit {
		return nil, fmt.Errorf("new peer: MaxMessage %d out of range (1-%d)", opts.MaxMessage, MaxMessageLimit)
	}
	log := opts.Log
	if log == nil {
		log = s.log
	}
	p := &Peer{
		srv:        s,
		log:        log,
		opts:       opts,
		wake:       make(chan struct{}, 1),
		videoClock: rtpClock{rate: clockRate},
		done:       make(chan struct{}),
		quit:       make(chan struct{}),
	}
	if err := s.addPeer(p); err != nil {
		return nil, fmt.Errorf("new peer: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = p.Close()
		}
	}()
	var err error
	if p.media, err = newMedia(); err != nil {
		return nil, fmt.Errorf("new peer: %w", err)
	}
	p.track = newVideoTrack("video", "glovebox", uint16(rand.Uint32()), s.cfg.codecs(), p.nudge)
	if p.pc, p.bwe, err = s.newPeerConnection(); err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	p.setTarget(p.bwe.GetTargetBitrate())
	p.bwe.OnTargetBitrateChange(p.setTarget)
	p.pc.OnConnectionStateChange(p.onState)
	p.pc.OnDataChannel(p.onDataChannel)

	p.mu.Lock()
	if p.closed { // the server closed meanwhile
		p.mu.Unlock()
		return nil, fmt.Errorf("new peer: %w", ErrClosed)
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go p.run()
	return p, nil
}

// Answer takes the browser's SDP offer (a recvonly or sendrecv video
// transceiver and a data channel, with whatever candidates it has: none is
// needed, as the browser's connectivity checks make its address known as
// a peer-reflexive candidate) and returns the answer with all our
// candidates gathered. Errors for an offer
// that cannot be parsed or used wrap ErrBadOffer. A Peer answers only once.
func (p *Peer) Answer(ctx context.Context, offerSDP string) (answerSDP string, err error) {
	if err := checkOffer(offerSDP, p.srv.cfg.codecs()); err != nil {
		return "", err
	}
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return "", fmt.Errorf("answer: %w", ErrClosed)
	case p.answered:
		p.mu.Unlock()
		return "", errors.New("answer: peer already answered an offer")
	}
	p.answered = true
	p.mu.Unlock()

	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		return "", fmt.Errorf("answer: %w: %w", ErrBadOffer, err)
	}
	// After the remote description, AddTrack takes the browser's video
	// transceiver instead of adding one the answer could not carry.
	sender, err := p.pc.AddTrack(p.track)
	if err != nil {
		return "", fmt.Errorf("answer: add video track: %w", err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return "", fmt.Errorf("answer: %w", ErrClosed)
	}
	p.wg.Add(2)
	p.mu.Unlock()
	go p.readRTCP(sender)
	go p.senderReports()
	if p.opts.Audio && offerWantsAudio(offerSDP) {
		if err := p.addAudio(); err != nil {
			return "", err
		}
	}
	// pion would answer an audio section it has no track for as sendonly:
	// the browser would wait for sound that never comes.
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Kind() == webrtc.RTPCodecTypeAudio && tr.Sender() == nil {
			if err := tr.Stop(); err != nil {
				return "", fmt.Errorf("answer: refuse audio: %w", err)
			}
		}
	}

	return answerGathered(ctx, p.pc, p.done, "answer")
}

// answerGathered makes pc's answer, sets it, and returns it with all our
// candidates gathered; done (the peer closed) or ctx stop the wait. what
// starts its errors.
func answerGathered(ctx context.Context, pc *webrtc.PeerConnection, done <-chan struct{}, what string) (string, error) {
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w: %w", what, ErrBadOffer, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("%s: set local description: %w", what, err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("%s: gather candidates: %w", what, ctx.Err())
	case <-done:
		return "", fmt.Errorf("%s: %w", what, ErrClosed)
	}
	local := pc.LocalDescription()
	if local == nil {
		return "", fmt.Errorf("%s: %w", what, ErrClosed)
	}
	return local.SDP, nil
}

// addAudio adds the audio track, which takes the offer's audio transceiver.
func (p *Peer) addAudio() error {
	a, err := newAudioSender()
	if err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	sender, err := p.pc.AddTrack(a.track)
	if err != nil {
		a.close()
		return fmt.Errorf("answer: add audio track: %w", err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		a.close()
		return fmt.Errorf("answer: %w", ErrClosed)
	}
	if enc := sender.GetParameters().Encodings; len(enc) > 0 {
		a.ssrcVal.Store(uint32(enc[0].SSRC))
	}
	p.audio.Store(a)
	p.wg.Add(1)
	p.mu.Unlock()
	// The interceptors (reports, TWCC) see the audio RTCP only if it is read.
	go func() {
		defer p.wg.Done()
		for {
			if _, _, err := sender.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	return nil
}

// readRTCP reads the receiver's RTCP (after the interceptors have seen it)
// and turns PLI and FIR into keyframes.
func (p *Peer) readRTCP(sender *webrtc.RTPSender) {
	defer p.wg.Done()
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt := pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				p.requestKeyframe()
			case *rtcp.ReceiverReport:
				p.onReceiverReport(pkt.Reports, time.Now())
			}
		}
	}
}

// RequestKeyframe makes the next frame sent a keyframe, re-encoding the last
// image if no new frame comes.
func (p *Peer) RequestKeyframe() { p.requestKeyframe() }

func (p *Peer) requestKeyframe() {
	p.keyRequest.Store(true)
	p.nudge()
}

// SetVideoPaused stops and restarts the video: paused, nothing is encoded
// or sent, not even the idle refresh nor a keyframe the browser asks for
// (a hidden viewer needs none); resumed, the next frame is a keyframe.
// Frames submitted while paused are decoded, so the newest is sent first.
// Sound is not paused.
func (p *Peer) SetVideoPaused(on bool) {
	p.paused.Store(on)
	p.nudge()
}

func (p *Peer) nudge() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Peer) onState(s webrtc.PeerConnectionState) {
	p.log.Debug("peer connection state", "state", s.String())
	switch s {
	case webrtc.PeerConnectionStateConnected:
		p.mu.Lock()
		if p.discTimer != nil {
			p.discTimer.Stop()
			p.discTimer = nil
		}
		p.mu.Unlock()
		p.connected.Store(true)
		p.setTarget(int(p.stats.targetBitrate.Load())) // starts MinTarget
		p.nudge()
	case webrtc.PeerConnectionStateDisconnected:
		p.connected.Store(false)
		p.mu.Lock()
		if p.discTimer == nil && !p.closed {
			p.discTimer = time.AfterFunc(disconnectedGrace, p.disconnectedTooLong)
		}
		p.mu.Unlock()
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		p.connected.Store(false)
		p.markDone()
	}
}

func (p *Peer) disconnectedTooLong() {
	if p.pc.ConnectionState() != webrtc.PeerConnectionStateDisconnected {
		return
	}
	p.log.Info("peer disconnected too long, giving up", "after", disconnectedGrace)
	p.markDone()
	_ = p.pc.Close()
}

func (p *Peer) markDone() {
	p.doneOnce.Do(func() { close(p.done) })
}

// Done is closed when the peer connection has failed or closed, including
// after Close. The owner still has to call Close.
func (p *Peer) Done() <-chan struct{} { return p.done }

// Stats returns the peer's counters.
func (p *Peer) Stats() Stats {
	s := &p.stats
	return Stats{
		FramesIn:      s.framesIn.Load(),
		FramesDecoded: s.framesDecoded.Load(),
		FramesEncoded: s.framesEncoded.Load(),
		FramesDropped: s.framesDropped.Load(),
		Keyframes:     s.keyframes.Load(),
		BytesSent:     s.bytesSent.Load(),
		PacketsSent:   s.packetsSent.Load(),
		EncodeTime:    time.Duration(s.encodeTime.Load()),
		DecodeTime:    time.Duration(s.decodeTime.Load()),
		Width:         int(s.width.Load()),
		Height:        int(s.height.Load()),
		FramesSent:    s.framesSent.Load(),
		FramesSkipped: s.framesSkipped.Load(),
		TargetBitrate: int(s.targetBitrate.Load()),
		MinTarget:     int(s.minTarget.Load()),
		RTT:           time.Duration(s.rtt.Load()),
		FractionLost:  float64(s.fractionLost256.Load()) / 256,
		PacketsLost:   s.packetsLost.Load(),
		Codec:         p.codec(),

		Audio:           p.audio.Load() != nil,
		AudioFrames:     s.audioFrames.Load(),
		AudioPackets:    s.audioPackets.Load(),
		AudioBytes:      s.audioBytes.Load(),
		AudioEncodeTime: time.Duration(s.audioEncodeTime.Load()),
		AudioResyncs:    s.audioResyncs.Load(),
	}
}

// codec names the negotiated codec, "" before Answer bound the track.
func (p *Peer) codec() string {
	if p.track == nil {
		return ""
	}
	return codecName(p.track.lastMime()) // "" for ""
}

// Close ends the peer connection and the encoder goroutine, frees the
// encoder and calls the decoded callback of a frame still waiting. It is
// safe to call twice and after a failed NewPeer or Answer. It must not be
// called from a decoded callback (they run on the encoder goroutine).
func (p *Peer) Close() error {
	p.closeOnce.Do(func() {
		p.slotMu.Lock()
		p.slotClosed = true
		p.slotMu.Unlock()
		p.mu.Lock()
		p.closed = true
		if p.discTimer != nil {
			p.discTimer.Stop()
		}
		p.mu.Unlock()

		if p.pc != nil {
			if err := p.pc.Close(); err != nil {
				p.closeErr = fmt.Errorf("close peer connection: %w", err)
			}
		}
		close(p.quit)
		p.wg.Wait()
		p.closeWatchers()
		p.dropPending()
		if p.media != nil {
			p.media.close()
		}
		if a := p.audio.Load(); a != nil {
			a.close()
		}
		p.srv.removePeer(p)
		p.markDone()
		st := p.Stats()
		p.log.Debug("peer closed", "frames_in", st.FramesIn, "frames_encoded", st.FramesEncoded,
			"frames_dropped", st.FramesDropped, "keyframes", st.Keyframes, "bytes_sent", st.BytesSent)
	})
	return p.closeErr
}
