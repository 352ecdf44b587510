package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// ErrNoVideo is Watch's error for a peer whose video has no codec yet: its
// user's browser has not answered.
var ErrNoVideo = errors.New("the tab's video is not being sent yet")

// maxWatchers bounds the watchers of one peer.
const maxWatchers = 4

// Watcher is a view-only viewer of a Peer's video, such as an operator
// shadowing a tab: each frame the peer's encoder makes for its user goes to
// the watcher's track too, as it is (no second encode), with the same RTP
// time. It has no data channel and no sound, and sees what the user sees
// while the user is connected. Its picture loss asks the peer for a
// keyframe, as the user's does.
type Watcher struct {
	p     *Peer
	log   *slog.Logger
	pc    *webrtc.PeerConnection
	track *videoTrack

	done      chan struct{}
	doneOnce  sync.Once
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Watch answers a viewer's offer (a recvonly video transceiver that takes
// the codec the peer's user negotiated) with a Watcher of p's video. The
// caller must Close it; it is closed with p too. Errors: ErrBadOffer for an
// offer it cannot use, ErrNoVideo before the user's browser answered,
// ErrClosed after Close.
func (p *Peer) Watch(ctx context.Context, offerSDP string) (_ *Watcher, answerSDP string, retErr error) {
	codec := p.codec()
	if codec == "" {
		return nil, "", ErrNoVideo
	}
	if err := checkOffer(offerSDP, []string{codec}); err != nil {
		return nil, "", err
	}
	w := &Watcher{p: p, log: p.log.With("watcher", true), done: make(chan struct{}),
		track: newVideoTrack("video", "glovebox-watch", uint16(rand.Uint32()), []string{codec}, p.requestKeyframe)}
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return nil, "", fmt.Errorf("watch: %w", ErrClosed)
	case len(p.watchers) >= maxWatchers:
		p.mu.Unlock()
		return nil, "", fmt.Errorf("watch: the tab has %d viewers already", maxWatchers)
	}
	p.mu.Unlock()
	defer func() {
		if retErr != nil {
			w.Close()
		}
	}()
	pc, _, err := p.srv.newPeerConnection()
	if err != nil {
		return nil, "", fmt.Errorf("watch: new peer connection: %w", err)
	}
	w.pc = pc
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		w.log.Debug("watcher connection state", "state", s.String())
		switch s {
		case webrtc.PeerConnectionStateConnected:
			p.requestKeyframe()
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			w.markDone()
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		return nil, "", fmt.Errorf("watch: %w: %w", ErrBadOffer, err)
	}
	sender, err := pc.AddTrack(w.track)
	if err != nil {
		return nil, "", fmt.Errorf("watch: add video track: %w", err)
	}
	// Nothing but video: an audio or data section is refused.
	for _, tr := range pc.GetTransceivers() {
		if tr.Kind() == webrtc.RTPCodecTypeAudio && tr.Sender() == nil {
			if err := tr.Stop(); err != nil {
				return nil, "", fmt.Errorf("watch: refuse audio: %w", err)
			}
		}
	}
	w.wg.Add(1)
	go w.readRTCP(sender)
	sdp, err := answerGathered(ctx, pc, p.done, "watch")
	if err != nil {
		return nil, "", err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, "", fmt.Errorf("watch: %w", ErrClosed)
	}
	if p.watchers == nil {
		p.watchers = map[*Watcher]struct{}{}
	}
	p.watchers[w] = struct{}{}
	p.mu.Unlock()
	p.requestKeyframe()
	return w, sdp, nil
}

// readRTCP turns the viewer's PLI and FIR into keyframes of the peer.
func (w *Watcher) readRTCP(sender *webrtc.RTPSender) {
	defer w.wg.Done()
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				w.p.requestKeyframe()
			}
		}
	}
}

// Done is closed when the viewer's connection failed or closed.
func (w *Watcher) Done() <-chan struct{} { return w.done }

func (w *Watcher) markDone() { w.doneOnce.Do(func() { close(w.done) }) }

// Close ends the viewer's connection. It is safe to call twice.
func (w *Watcher) Close() error {
	var err error
	w.closeOnce.Do(func() {
		w.p.mu.Lock()
		delete(w.p.watchers, w)
		w.p.mu.Unlock()
		if w.pc != nil {
			err = w.pc.Close()
		}
		w.wg.Wait()
		w.markDone()
	})
	return err
}

// Watchers is how many viewers watch p now.
func (p *Peer) Watchers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.watchers)
}

// sendToWatchers writes a frame sent to the user to every watcher too; a
// watcher not yet connected (its track unbound) misses it, and gets the
// keyframe it asked for later.
func (p *Peer) sendToWatchers(frame []byte, ts uint32) {
	p.mu.Lock()
	if len(p.watchers) == 0 {
		p.mu.Unlock()
		return
	}
	ws := make([]*Watcher, 0, len(p.watchers))
	for w := range p.watchers {
		ws = append(ws, w)
	}
	p.mu.Unlock()
	for _, w := range ws {
		if _, _, err := w.track.writeFrame(frame, ts); err != nil && !errors.Is(err, errNotBound) {
			w.log.Debug("write video frame to watcher", "err", err)
		}
	}
}

// closeWatchers closes p's watchers (p closes).
func (p *Peer) closeWatchers() {
	p.mu.Lock()
	ws := make([]*Watcher, 0, len(p.watchers))
	for w := range p.watchers {
		ws = append(ws, w)
	}
	p.mu.Unlock()
	for _, w := range ws {
		w.Close()
	}
}
