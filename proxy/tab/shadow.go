package tab

import (
	"context"
	"errors"
	"fmt"

	"github.com/glovebox/glovebox/stream"
)

// ErrNotViewed is Shadow's error for a tab whose user is not watching it
// now: there is no video to share.
var ErrNotViewed = errors.New("the tab's user is not viewing it now")

// Shadow adds an operator's view-only viewer of the tab's video: the
// stream its user gets, as encoded for them (stream.Peer.Watch). With
// notice, the user's landing page says the session is being viewed for
// as long as a viewer is there. stop ends the viewer; it ends with the
// user's viewer too (a reload makes a new one: shadow again), and done is
// closed when it has ended, however it did.
func (t *Tab) Shadow(ctx context.Context, offerSDP string, notice bool) (answerSDP string, stop func(), done <-chan struct{}, err error) {
	p := t.currentPeer()
	if p == nil {
		return "", nil, nil, ErrNotViewed
	}
	w, answer, err := p.Watch(ctx, offerSDP)
	if errors.Is(err, stream.ErrNoVideo) {
		return "", nil, nil, ErrNotViewed
	}
	if err != nil {
		return "", nil, nil, fmt.Errorf("shadow tab %s: %w", t.id, err)
	}
	t.log.Info("tab shadowed", "viewers", p.Watchers())
	t.showForNewPeer() // a hidden tab has no picture to share
	if notice {
		t.send(viewedMsg(p.Watchers()))
	}
	go func() {
		<-w.Done()
		w.Close()
		if notice {
			// To the peer watched: the user's next one starts unwatched.
			p.Send(encodeServerMsg(viewedMsg(p.Watchers())))
		}
		t.log.Info("tab shadow ended", "viewers", p.Watchers())
	}()
	return answer, func() { w.Close() }, w.Done(), nil
}

func viewedMsg(n int) serverMsg { return serverMsg{T: "viewed", Viewers: &n} }
