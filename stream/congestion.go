package stream

import (
	"time"

	"github.com/pion/rtcp"
)

const (
	// MinBitrate is the lowest target bitrate congestion control may set, in
	// bits/s (or Config.MaxBitrate, if that is lower).
	MinBitrate = 150_000
	// bitsPerFrame is the budget of one frame below which the frame rate
	// drops before the quality does: frames are spaced so that each gets
	// about this many bits, down to minFPS; below that the quantizer rises.
	bitsPerFrame = 40_000
	// minFPS is the lowest frame rate the bitrate alone imposes.
	minFPS = 5
	// maxFrameGap bounds the wait a large frame (a keyframe) imposes.
	maxFrameGap = 500 * time.Millisecond
	// encoderShare is the part of the target given to the encoder, leaving
	// room for RTP headers and retransmissions.
	encoderShare = 0.9
)

// setTarget is congestion control's new target bitrate (called from pion's
// goroutines); the encoder goroutine picks it up with the next frame.
func (p *Peer) setTarget(bps int) {
	bps = min(max(bps, min(MinBitrate, p.srv.cfg.maxBitrate())), p.srv.cfg.maxBitrate())
	p.stats.targetBitrate.Store(int64(bps))
	if !p.connected.Load() {
		return
	}
	for {
		old := p.stats.minTarget.Load()
		if old != 0 && old <= int64(bps) || p.stats.minTarget.CompareAndSwap(old, int64(bps)) {
			return
		}
	}
}

// encoderKbps is the encoder's share of the current target, in kbit/s.
func (p *Peer) encoderKbps() int {
	return max(int(float64(p.stats.targetBitrate.Load())*encoderShare/1000), 1)
}

// frameInterval is the shortest time between two encoded frames that the
// bitrate bps allows: 0 (no limit) while each frame gets bitsPerFrame at
// 60 fps, down to 1/minFPS.
func frameInterval(bps int) time.Duration {
	fps := float64(bps) / bitsPerFrame
	if fps >= 60 {
		return 0
	}
	return time.Duration(float64(time.Second) / max(fps, minFPS))
}

// frameGap is the time to wait after a frame of lastBytes before the next:
// the frame interval bps allows, or longer when the encoder overshoots (its
// quantizer at the top, or a keyframe), so that frames go no faster than the
// link drains them and the delay does not grow.
func frameGap(bps, lastBytes int) time.Duration {
	g := frameInterval(bps)
	if bps > 0 {
		g = max(g, min(time.Duration(int64(lastBytes)*8*int64(time.Second)/int64(bps)), maxFrameGap))
	}
	return g
}

// onReceiverReport takes RTT and loss from the browser's report on our
// video SSRC. RTT is the NTP time now less the sender report it echoes (LSR)
// less the time the browser held it (DLSR), in 1/65536 s.
func (p *Peer) onReceiverReport(reports []rtcp.ReceptionReport, now time.Time) {
	ssrc := p.track.ssrc()
	for _, r := range reports {
		if r.SSRC != ssrc {
			continue
		}
		p.stats.fractionLost256.Store(int64(r.FractionLost))
		p.stats.packetsLost.Store(int64(r.TotalLost))
		if r.LastSenderReport == 0 {
			continue
		}
		if d := int32(ntpMiddle(now) - r.LastSenderReport - r.Delay); d >= 0 {
			p.stats.rtt.Store(int64(time.Duration(d) * time.Second / 65536))
		}
	}
}

// ntpMiddle is the middle 32 bits of the NTP timestamp of t (16.16 seconds).
func ntpMiddle(t time.Time) uint32 {
	const ntpEpochOffset = 2208988800 // seconds from 1900 to 1970
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return uint32((secs<<32 | frac) >> 16)
}
