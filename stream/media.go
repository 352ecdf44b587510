package stream

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/glovebox/glovebox/stream/internal/i420"
	"github.com/glovebox/glovebox/stream/internal/tjpeg"
)

const (
	// vp8CPUUsed is libvpx's speed: about 6 ms per 720p frame on one core.
	vp8CPUUsed = -6
	// idleRefresh: on a page that does not change, Chrome asks for a
	// keyframe about every 3 s; a tiny P-frame of the last image once a
	// second keeps it content (0-2 kB/s instead of 50 kB/s of keyframes).
	idleRefresh = time.Second
	// followUp: a change that stops (a click on a quiet page) is followed
	// after this long by its last packet sent again. A frame is often one
	// packet, and the browser only sees that it lost the last one when the
	// next packet comes, which on a quiet page is the idle refresh a second
	// later. (A re-encoded frame would do it too, but it spends the
	// encoder's budget and made the next click's frame later.)
	followUp = 150 * time.Millisecond
	// minKeyInterval spaces keyframes that PLI/FIR bursts ask for; a request
	// inside it is served when it ends.
	minKeyInterval = 250 * time.Millisecond
	// clockRate is the RTP clock of video.
	clockRate = 90000
	// recordLag is how long after its capture a frame may go out and still
	// be recorded at its capture time (the encoder's own delay is far
	// less); one sent later is recorded when it was sent.
	recordLag = 200 * time.Millisecond
)

// pendingFrame is a submitted, not yet decoded, JPEG frame.
type pendingFrame struct {
	jpeg     []byte
	captured time.Time
	decoded  func()
}

// media is the encoder goroutine's state: decoder, encoder, the last image
// and the RTP clock. Only that goroutine touches it (and Close, after it).
type media struct {
	jpeg *tjpeg.Decoder
	enc  frameEncoder // VP8 or H.264, as negotiated (codec.go)

	last, scratch i420.Image // decoded into scratch, swapped on success
	haveImage     bool
	lastCaptured  time.Time // capture time of last
	lastSent      bool      // last has been sent at least once

	clockSet         bool
	t0               time.Time // capture time of RTP timestamp tsBase
	tsBase           uint32
	lastPTS          int64 // 90 kHz units since t0
	sentAny          bool
	lastSentCaptured time.Time // (possibly synthetic) capture time of the last frame sent
	lastSendWall     time.Time
	lastKeyWall      time.Time
	needKey          bool
	wasReady         bool
	held             bool // last is new and waits for the frame interval the bitrate allows
	lastFrameBytes   int  // size of the last frame sent, for its time on the link
	owed             bool // the last frame's last packet is due again followUp after it
	decodeErrors     uint64
	imageSeq         uint64     // counts decoded images: names last
	early            earlyFrame // last as a keyframe, encoded before the first connection
}

// earlyFrame is a keyframe encoded while the browser is still connecting:
// creating the encoder and encoding the first keyframe take 10–60 ms on a
// busy host, and done ahead the first frame goes out the moment the browser
// is connected.
type earlyFrame struct {
	frame []byte
	pts   int64
	seq   uint64 // the image it encodes (media.imageSeq)
}

func newMedia() (*media, error) {
	dec, err := tjpeg.NewDecoder()
	if err != nil {
		return nil, fmt.Errorf("jpeg decoder: %w", err)
	}
	return &media{jpeg: dec, tsBase: rand.Uint32()}, nil
}

func (m *media) close() {
	m.jpeg.Close()
	if m.enc != nil {
		m.enc.Close()
		m.enc = nil
	}
}

// Submit hands one JPEG frame of the screencast to the encoder, captured at
// captured (which sets its RTP timestamp). It never blocks: the newest frame
// wins, and a frame still waiting to be decoded is replaced (its decoded
// callback called at once). decoded, if not nil, is called exactly once per
// submitted frame, as soon as that frame is decoded or dropped: ack the
// screencast frame there, so that Chromium slows down when the encoder
// cannot keep up. It must not block, nor call Close. jpeg must not be
// modified until decoded has been called.
func (p *Peer) Submit(jpeg []byte, captured time.Time, decoded func()) {
	p.stats.framesIn.Add(1)
	p.slotMu.Lock()
	if p.slotClosed {
		p.slotMu.Unlock()
		p.stats.framesDropped.Add(1)
		callDecoded(decoded)
		return
	}
	old, replaced := p.pending, p.hasPending
	p.pending = pendingFrame{jpeg: jpeg, captured: captured, decoded: decoded}
	p.hasPending = true
	p.slotMu.Unlock()
	if replaced {
		p.stats.framesDropped.Add(1)
		callDecoded(old.decoded)
	}
	p.nudge()
}

func callDecoded(f func()) {
	if f != nil {
		f()
	}
}

func (p *Peer) takePending() (pendingFrame, bool) {
	p.slotMu.Lock()
	defer p.slotMu.Unlock()
	f, ok := p.pending, p.hasPending
	p.pending, p.hasPending = pendingFrame{}, false
	return f, ok
}

// dropPending releases a frame left in the slot at Close.
func (p *Peer) dropPending() {
	if f, ok := p.takePending(); ok {
		p.stats.framesDropped.Add(1)
		callDecoded(f.decoded)
	}
}

// run is the encoder goroutine: it wakes on a new frame, a keyframe request,
// a state change or its timer (when wakeAt says: a delayed keyframe, a held
// image, the last packet again, the idle refresh).
func (p *Peer) run() {
	defer p.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-p.wake:
		case <-timer.C:
		}
		if next := p.step(time.Now()); next.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(max(time.Until(next), time.Millisecond))
		}
	}
}

// step decodes a waiting frame and does what is due; it returns when it
// wants to run again without being woken (zero: only when woken). What is
// due is decide's, and when to run again wakeAt's: step gathers their inputs
// and carries out the decision.
func (p *Peer) step(now time.Time) time.Time {
	m := p.media
	newImage := false
	if f, ok := p.takePending(); ok {
		newImage = p.decode(f)
	}
	bound := p.track.bound()
	// Paused counts as not connected: resumed, the browser gets a
	// keyframe as after a reconnection.
	ready := bound && p.connected.Load() && !p.paused.Load()
	refresh := false
	if !ready {
		m.wasReady = false
	} else {
		if !m.wasReady {
			// Just connected (or reconnected): the browser needs a keyframe now.
			m.wasReady = true
			m.needKey = true
			m.lastKeyWall = time.Time{}
		}
		if p.keyRequest.Swap(false) {
			m.needKey = true
		}
		// Frames that reach the browser before its page has given the track
		// to its video element are not shown, and a static page sends no
		// more: the picture would wait for the idle refresh a second later.
		// The page's first data-channel message comes after it has the
		// track: a frame of the same image then shows the picture.
		refresh = p.viewerReady.Swap(false) && m.sentAny
		if newImage {
			m.held = true
		}
	}
	gap := frameGap(int(p.stats.targetBitrate.Load()), m.lastFrameBytes)

	s := m.sendState(now, ready, bound, refresh, gap)
	d := decide(&s)
	switch d.act {
	case actEarly:
		p.encodeEarly()
	case actEncodeNew:
		p.encode(now, m.lastCaptured, d.key)
	case actEncodeLast:
		p.encode(now, m.syntheticCapture(now), d.key)
	case actResend:
		m.owed = false
		if n, err := p.track.resendLast(); err != nil {
			p.log.Debug("resend last video packet", "err", err)
		} else if n > 0 {
			p.stats.bytesSent.Add(uint64(n))
			p.stats.packetsSent.Add(1)
		}
	}
	if d.owe {
		m.owed = m.sentAny
	}
	if d.act != actNone {
		// From the state after the action, which may have failed (an
		// encoder error, a write error that wants a keyframe again).
		s = m.sendState(now, ready, bound, false, gap)
	}
	return wakeAt(&s)
}

// decode decodes f, a frame taken from the slot, into m.last and reports
// whether that gave a new image.
func (p *Peer) decode(f pendingFrame) bool {
	m := p.media
	newImage := false
	start := time.Now()
	err := m.jpeg.Decode(f.jpeg, &m.scratch)
	p.stats.decodeTime.Add(int64(time.Since(start)))
	if err != nil {
		p.stats.framesDropped.Add(1)
		m.decodeErrors++
		if m.decodeErrors == 1 || m.decodeErrors%100 == 0 {
			p.log.Warn("screencast frame dropped", "err", err, "count", m.decodeErrors)
		}
	} else {
		p.stats.framesDecoded.Add(1)
		if m.held {
			p.stats.framesSkipped.Add(1) // latest wins here too
		}
		m.last, m.scratch = m.scratch, m.last
		m.haveImage, m.lastSent, m.lastCaptured = true, false, f.captured
		m.imageSeq++
		newImage = true
		p.stats.width.Store(int64(m.last.Width))
		p.stats.height.Store(int64(m.last.Height))
	}
	// After the stats, so that a caller acking here sees them counted.
	callDecoded(f.decoded)
	return newImage
}

// sendState is what decide and wakeAt go by: plain values, taken from the
// media state and the peer's flags at one instant.
type sendState struct {
	now   time.Time
	ready bool // the browser is connected and the track bound
	bound bool // the track is bound (by Answer): the codec is known

	haveImage  bool // there is an image to send (last)
	held       bool // last is new, not sent yet: it waits for the frame gap
	earlyReady bool // last is encoded as an early keyframe already

	sentAny      bool      // a frame has been sent since the peer was made
	lastSendWall time.Time // when the last frame was sent
	gap          time.Duration

	needKey     bool      // a keyframe is wanted: just connected, PLI/FIR, RequestKeyframe, a lost frame
	lastKeyWall time.Time // when the last keyframe went (or a write failed); zero: long ago

	refresh bool // the viewer's page has just spoken for the first time
	owed    bool // the last frame's last packet is due again followUp after it
}

func (m *media) sendState(now time.Time, ready, bound, refresh bool, gap time.Duration) sendState {
	return sendState{
		now:          now,
		ready:        ready,
		bound:        bound,
		haveImage:    m.haveImage,
		held:         m.held,
		earlyReady:   m.early.frame != nil && m.early.seq == m.imageSeq,
		sentAny:      m.sentAny,
		lastSendWall: m.lastSendWall,
		gap:          gap,
		needKey:      m.needKey,
		lastKeyWall:  m.lastKeyWall,
		refresh:      refresh,
		owed:         m.owed,
	}
}

// action is what decide tells step to do.
type action uint8

const (
	actNone       action = iota // nothing is due
	actEarly                    // encode last as a keyframe, to send once the browser is connected
	actEncodeNew                // encode and send last, a new image, with its own capture time
	actEncodeLast               // encode and send last again, with a capture time advanced since it was sent
	actResend                   // send the last frame's last packet again
)

// decision is decide's answer.
type decision struct {
	act action
	key bool // the frame encoded is a keyframe
	owe bool // after the frame, its last packet is owed again (if it went)
}

// decide is the media path's policy: from s, what to send now. It is pure
// (step carries it out), and wakeAt says when to ask it again.
func decide(s *sendState) decision {
	if !s.ready {
		// The codec is known once the track is bound. Only before the
		// first connection: while a reconnection is pending, an animated
		// page would cost a keyframe per screencast frame.
		if !s.sentAny && s.haveImage && s.bound && !s.earlyReady {
			return decision{act: actEarly}
		}
		return decision{}
	}
	if !s.haveImage {
		return decision{}
	}
	keyNow := s.needKey && s.now.Sub(s.lastKeyWall) >= minKeyInterval
	// Under a constrained link the frame rate goes first: a new image waits
	// (replaced by newer ones) until the interval the bitrate allows is up.
	// A keyframe or the first change after a pause goes at once.
	due := !s.sentAny || s.now.Sub(s.lastSendWall) >= s.gap
	switch {
	case s.held && (due || keyNow):
		return decision{act: actEncodeNew, key: keyNow, owe: true}
	case keyNow:
		return decision{act: actEncodeLast, key: true, owe: true}
	case s.refresh && !s.held:
		return decision{act: actEncodeLast}
	case s.owed && !s.held && s.now.Sub(s.lastSendWall) >= followUp:
		return decision{act: actResend}
	case s.sentAny && s.now.Sub(s.lastSendWall) >= idleRefresh:
		return decision{act: actEncodeLast}
	}
	return decision{}
}

// wakeAt is when decide may have something to do without a new frame, a
// request or a state change waking step: a keyframe minKeyInterval after
// the last, a held image once its frame gap is up, the last packet again
// followUp after a frame, the idle refresh. Zero: only when woken.
func wakeAt(s *sendState) time.Time {
	if !s.ready || !s.haveImage {
		return time.Time{}
	}
	var next time.Time
	if s.needKey {
		next = s.lastKeyWall.Add(minKeyInterval)
	}
	if s.held {
		if r := s.lastSendWall.Add(s.gap); next.IsZero() || r.Before(next) {
			next = r
		}
	}
	if s.sentAny {
		wait := idleRefresh
		if s.owed && !s.held {
			wait = followUp
		}
		if r := s.lastSendWall.Add(wait); next.IsZero() || r.Before(next) {
			next = r
		}
	}
	return next
}

// syntheticCapture is the capture time given to a re-encode of the last
// image: its own time if it was never sent, else the last frame's time
// advanced by the wall time since it was sent (no clock mixing between
// Chromium's capture times and ours).
func (m *media) syntheticCapture(now time.Time) time.Time {
	if !m.lastSent || !m.sentAny {
		return m.lastCaptured
	}
	return m.lastSentCaptured.Add(now.Sub(m.lastSendWall))
}

// encodeEarly encodes m.last as a keyframe for encode to send once the
// browser is connected.
func (p *Peer) encodeEarly() {
	m := p.media
	m.early = earlyFrame{}
	frame, pts, isKey, ok := p.encodeImage(m.lastCaptured, true)
	if !ok || !isKey {
		return
	}
	// The encoder reuses its output buffer.
	m.early = earlyFrame{frame: bytes.Clone(frame), pts: pts, seq: m.imageSeq}
}

// encode encodes m.last and sends it with the RTP timestamp of captured. A
// keyframe of m.last encoded early is sent as it is.
func (p *Peer) encode(now, captured time.Time, key bool) {
	m := p.media
	m.held = false
	early := m.early
	m.early = earlyFrame{}
	var (
		frame []byte
		pts   int64
		isKey bool
	)
	if key && early.frame != nil && early.seq == m.imageSeq {
		frame, pts, isKey = early.frame, early.pts, true
	} else {
		// After an early keyframe that was not sent, the encoder's
		// reference is an image the browser never got.
		key = key || early.frame != nil
		var ok bool
		if frame, pts, isKey, ok = p.encodeImage(captured, key); !ok || len(frame) == 0 {
			return
		}
	}
	n, pkts, err := p.track.writeFrame(frame, m.tsBase+uint32(pts))
	if err == nil {
		p.sendToWatchers(frame, m.tsBase+uint32(pts))
	}
	p.stats.bytesSent.Add(uint64(n))
	p.stats.packetsSent.Add(uint64(pkts))
	if r := p.opts.Recorder; r != nil && pkts > 0 {
		// What went out, even in part: the encoder's next frames refer
		// to it, and the recording decodes only with the whole chain.
		// At the time its RTP timestamp says, but no earlier than the
		// user could see it: the early keyframe (and the image a new peer
		// starts with) may have been captured long before it went out.
		at := m.t0.Add(time.Duration(pts * int64(time.Second) / clockRate))
		if at.Before(now.Add(-recordLag)) {
			at = now
		}
		if r.RecordVideo(codecName(p.track.mime()), m.last.Width, m.last.Height, frame, at, isKey) {
			m.needKey = true
		}
	}
	if err != nil {
		// The frame (maybe a keyframe the next ones refer to) is lost: send
		// a keyframe again, but no sooner than minKeyInterval.
		m.needKey, m.lastKeyWall = true, now
		p.log.Debug("write video frame", "err", err)
		return
	}
	p.stats.framesSent.Add(1)
	m.lastFrameBytes = n
	m.sentAny, m.lastSent = true, true
	m.lastSentCaptured, m.lastSendWall = captured, now
	if isKey {
		p.stats.keyframes.Add(1)
		m.needKey = false
		m.lastKeyWall = now
	}
}

// encodeImage encodes m.last (a keyframe if key) with the RTP time of
// captured, first making the encoder for its size and the negotiated codec
// if need be. ok is false when that failed (logged).
func (p *Peer) encodeImage(captured time.Time, key bool) (frame []byte, pts int64, isKey, ok bool) {
	m := p.media
	img := &m.last
	if m.enc != nil {
		if w, h := m.enc.Size(); w != img.Width || h != img.Height {
			m.enc.Close()
			m.enc = nil
		}
	}
	if m.enc == nil {
		enc, err := newFrameEncoder(p.track.mime(), img.Width, img.Height, p.encoderKbps())
		if err != nil {
			p.log.Error("new encoder", "err", err, "width", img.Width, "height", img.Height)
			return nil, 0, false, false
		}
		m.enc = enc
		key = true // a new encoder starts with a keyframe anyway
	} else if err := m.enc.SetBitrate(p.encoderKbps()); err != nil {
		p.log.Warn("set encoder bitrate", "err", err)
	}

	if !m.clockSet {
		m.clockSet, m.t0, m.lastPTS = true, captured, -clockRate/30
		p.videoClock.start(m.t0, m.tsBase)
	}
	pts = captured.Sub(m.t0).Nanoseconds() * clockRate / int64(time.Second)
	if pts <= m.lastPTS {
		pts = m.lastPTS + 1 // RTP time must advance, even if capture times do not
	}
	duration := min(max(pts-m.lastPTS, 1), clockRate)

	start := time.Now()
	frame, isKey, err := m.enc.Encode(img, pts, uint64(duration), key)
	p.stats.encodeTime.Add(int64(time.Since(start)))
	if err != nil {
		p.log.Error("encode", "err", err)
		return nil, 0, false, false
	}
	m.lastPTS = pts
	if len(frame) > 0 {
		p.stats.framesEncoded.Add(1)
	}
	return frame, pts, isKey, true
}
