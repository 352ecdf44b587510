package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pion/webrtc/v4"
)

// onDataChannel adopts the browser's "glovebox" channel.
func (p *Peer) onDataChannel(dc *webrtc.DataChannel) {
	if dc.Label() != DataChannelLabel {
		p.log.Warn("unexpected data channel closed", "label", dc.Label())
		_ = dc.Close()
		return
	}
	p.mu.Lock()
	if p.dc != nil || p.closed {
		p.mu.Unlock()
		p.log.Warn("second data channel closed", "label", dc.Label())
		_ = dc.Close()
		return
	}
	p.dc = dc
	p.mu.Unlock()

	// pion installs these before it starts reading the channel, so no
	// message comes before OnMessage is set. Messages arrive on the
	// channel's one read goroutine, in order.
	dc.OnOpen(func() {
		p.log.Debug("data channel open")
		if p.opts.OnOpen != nil {
			p.opts.OnOpen()
		}
	})
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		if !p.heard.Swap(true) {
			p.viewerReady.Store(true) // see step
			p.nudge()
		}
		if len(m.Data) > p.opts.MaxMessage {
			err := fmt.Errorf("data channel message of %d bytes dropped: %w (max %d)",
				len(m.Data), ErrMessageTooLarge, p.opts.MaxMessage)
			if p.opts.OnMessageError != nil {
				p.opts.OnMessageError(err)
			} else {
				p.log.Warn("data channel message dropped", "err", err)
			}
			return
		}
		if p.opts.OnMessage != nil {
			p.opts.OnMessage(m.Data)
		}
	})
}

// Send sends msg as one text message on the data channel. It returns an
// error wrapping ErrNotOpen before the channel is open or after it closed,
// and ErrSendBufferFull when the browser is too far behind.
func (p *Peer) Send(msg []byte) error {
	p.mu.Lock()
	dc := p.dc
	p.mu.Unlock()
	if dc == nil || dc.ReadyState() != webrtc.DataChannelStateOpen {
		return fmt.Errorf("send: %w", ErrNotOpen)
	}
	if dc.BufferedAmount() > SendBufferLimit {
		return fmt.Errorf("send: %w", ErrSendBufferFull)
	}
	if err := dc.SendText(string(msg)); err != nil {
		if errors.Is(err, io.ErrClosedPipe) {
			return fmt.Errorf("send: %w", ErrNotOpen)
		}
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// Flush waits until everything sent on the data channel has been handed to
// the network (or ctx ends), so a last message such as "the tab ended" is
// not lost to a Close right behind it.
func (p *Peer) Flush(ctx context.Context) error {
	p.mu.Lock()
	dc := p.dc
	p.mu.Unlock()
	if dc == nil {
		return nil
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for dc.ReadyState() == webrtc.DataChannelStateOpen && dc.BufferedAmount() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("flush: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
