package stream

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// fromNTP is the time of a 64-bit NTP timestamp.
func fromNTP(v uint64) time.Time {
	sec := int64(v>>32) - ntpEpochOffset
	frac := int64((v & 0xffffffff) * uint64(time.Second) >> 32)
	return time.Unix(sec, frac)
}

func TestNTPTime(t *testing.T) {
	for _, want := range []time.Time{
		time.Unix(0, 0), time.Date(2026, 12, 3, 21, 0, 0, 123456789, time.UTC), time.Date(2036, 2, 7, 6, 28, 15, 0, time.UTC),
	} {
		if got := fromNTP(ntpTime(want)); got.Sub(want).Abs() > time.Microsecond {
			t.Errorf("ntpTime(%v) reads back as %v", want, got)
		}
	}
	if got := ntpTime(time.Unix(0, 0)) >> 32; got != ntpEpochOffset {
		t.Errorf("1970 is NTP second %d, want %d", got, ntpEpochOffset)
	}
}

// waitSR returns the next sender report of ssrc the client received.
func (c *testClient) waitSR(t *testing.T, ssrc uint32) *rtcp.SenderReport {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case sr := <-c.srs:
			if sr.SSRC == ssrc {
				return sr
			}
		case <-deadline:
			t.Fatalf("no sender report of SSRC %d within 20 s", ssrc)
			return nil
		}
	}
}

// reportedTime is when, by sr, the RTP timestamp ts of a clock of rate
// was: the capture time the browser lines media up by.
func reportedTime(sr *rtcp.SenderReport, ts uint32, rate int64) time.Time {
	ticks := int64(int32(sr.RTPTime - ts))
	return fromNTP(sr.NTPTime).Add(-time.Duration(ticks * int64(time.Second) / rate))
}

// TestSenderReportsFollowCaptureClock: the sender reports of video and
// sound map their RTP timestamps to the times the media was captured (the
// screencast's frame times, the sound device's), not to when the packets
// went out: media captured 300 ms before it was sent is reported at its
// capture time, so that the browser plays the two in step.
func TestSenderReportsFollowCaptureClock(t *testing.T) {
	s := newTestServer(t, nil)
	p := newTestPeer(t, s, PeerOptions{Audio: true})
	c := newTestClient(t, clientOpts{audio: true})
	c.connect(t, p)
	waitChan(t, c.open, 20*time.Second, "data channel open")

	const late = 300 * time.Millisecond
	captured := time.Now().Add(-late)
	p.Submit(solidJPEG(t, 64, 48, [3]byte{200, 30, 30}), captured, nil)
	f := c.nextFrame(t, 20*time.Second)
	sr := c.waitSR(t, f.ssrc)
	if got := reportedTime(sr, f.ts, clockRate); got.Sub(captured).Abs() > 20*time.Millisecond {
		t.Errorf("the video's sender report puts the frame captured at %v at %v (%v off; sent %v after capture)",
			captured.Format("15:04:05.000"), got.Format("15:04:05.000"), got.Sub(captured), late)
	}
	if sr.PacketCount == 0 || sr.OctetCount == 0 {
		t.Errorf("video sender report counts %d packets, %d octets", sr.PacketCount, sr.OctetCount)
	}

	feed := &audioFeed{p: p, t0: time.Now().Add(-late)}
	feed.write(1000, 8000, 200)
	first := c.nextAudio(t)
	asr := c.waitSR(t, first.SSRC)
	if got := reportedTime(asr, first.Timestamp, AudioRate); got.Sub(feed.t0).Abs() > 20*time.Millisecond {
		t.Errorf("the sound's sender report puts its first sample, played at %v, at %v (%v off)",
			feed.t0.Format("15:04:05.000"), got.Format("15:04:05.000"), got.Sub(feed.t0))
	}
	if asr.PacketCount == 0 || asr.OctetCount == 0 {
		t.Errorf("audio sender report counts %d packets, %d octets", asr.PacketCount, asr.OctetCount)
	}
}
