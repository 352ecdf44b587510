package stream

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
)

// Lip sync. The browser plays video and sound of one media stream in step
// by the RTCP sender reports of each: a report pairs a wall-clock (NTP)
// time with the RTP timestamp the track's clock reads then. pion's report
// interceptor takes the time a packet is sent for the time its timestamp
// stands for; video is sent an encode (and a screencast) later than it was
// captured, sound a 20 ms frame later, so the browser would show each frame
// with sound captured later than it: the picture lags the sound. Here the
// reports come from the clocks the timestamps are made from (capture
// times), and pion's sender-report interceptor is not used.

// srInterval is how often each track's sender report goes; its second goes
// srFirst after its first, as the browser needs two before it lines the
// tracks up.
const (
	srInterval = time.Second
	srFirst    = 200 * time.Millisecond
)

// ntpEpochOffset is the seconds from 1900 (NTP's epoch) to 1970.
const ntpEpochOffset = 2208988800

// ntpTime is t as a 64-bit NTP timestamp (RFC 3550 section 4).
func ntpTime(t time.Time) uint64 {
	ns := t.UnixNano()
	sec := uint64(ns/int64(time.Second)) + ntpEpochOffset
	frac := uint64(ns%int64(time.Second)) << 32 / uint64(time.Second)
	return sec<<32 | frac
}

// rtpClock maps capture times to a track's RTP timestamps: base at t0, rate
// ticks a second. It is set once, by the goroutine that makes the
// timestamps, and read by the reports'.
type rtpClock struct {
	rate int64

	mu   sync.Mutex
	set  bool
	t0   time.Time
	base uint32
}

// start sets the clock: the RTP timestamp base stands for t0.
func (c *rtpClock) start(t0 time.Time, base uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set, c.t0, c.base = true, t0, base
}

// at is the RTP timestamp of time t, false before start.
func (c *rtpClock) at(t time.Time) (uint32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.set {
		return 0, false
	}
	return c.base + uint32(t.Sub(c.t0).Nanoseconds()*c.rate/int64(time.Second)), true
}

// srSource is what a track's report says: its SSRC, clock and counts.
type srSource struct {
	ssrc    func() uint32
	clock   *rtpClock
	packets func() uint64
	octets  func() uint64
}

// report is the source's sender report at now, nil while it has sent
// nothing (RFC 3550 6.4: a source that has not sent does not report).
func (s srSource) report(now time.Time) *rtcp.SenderReport {
	ssrc, packets := s.ssrc(), s.packets()
	if ssrc == 0 || packets == 0 {
		return nil
	}
	ts, ok := s.clock.at(now)
	if !ok {
		return nil
	}
	return &rtcp.SenderReport{
		SSRC:        ssrc,
		NTPTime:     ntpTime(now),
		RTPTime:     ts,
		PacketCount: uint32(packets),
		OctetCount:  uint32(s.octets()),
	}
}

// senderReports sends the reports of the peer's tracks until it closes.
func (p *Peer) senderReports() {
	defer p.wg.Done()
	video := srSource{ssrc: p.track.ssrc, clock: &p.videoClock,
		packets: p.stats.packetsSent.Load, octets: p.stats.bytesSent.Load}
	timer := time.NewTimer(srFirst)
	defer timer.Stop()
	sent := map[uint32]int{}
	for {
		select {
		case <-p.done:
			return
		case <-timer.C:
		}
		srcs := []srSource{video}
		if a := p.audio.Load(); a != nil {
			srcs = append(srcs, srSource{ssrc: a.ssrc, clock: &a.clock,
				packets: p.stats.audioPackets.Load, octets: p.stats.audioBytes.Load})
		}
		var pkts []rtcp.Packet
		next := srInterval
		now := time.Now()
		for _, s := range srcs {
			sr := s.report(now)
			if sr == nil {
				continue
			}
			pkts = append(pkts, sr)
			if sent[sr.SSRC]++; sent[sr.SSRC] < 2 {
				next = srFirst // the second soon after the first
			}
		}
		if len(pkts) > 0 {
			if err := p.pc.WriteRTCP(pkts); err != nil {
				p.log.Debug("write sender reports", "err", err)
			}
		}
		timer.Reset(next)
	}
}
