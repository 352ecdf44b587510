package stream

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
)

func TestFrameGap(t *testing.T) {
	for _, tc := range []struct {
		bps, lastBytes int
		want           time.Duration
	}{
		{4_000_000, 0, 0},                           // no limit: 100 fps of 40 kbit
		{2_400_000, 0, 0},                           // exactly 60 fps
		{1_000_000, 0, 40 * time.Millisecond},       // 25 fps
		{400_000, 0, 100 * time.Millisecond},        // 10 fps
		{150_000, 0, 200 * time.Millisecond},        // floor: 5 fps, quality goes next
		{1_000_000, 25_000, 200 * time.Millisecond}, // a 200 kbit frame takes 200 ms of the link
		{150_000, 100_000, maxFrameGap},             // a big keyframe waits no longer than maxFrameGap
	} {
		if got := frameGap(tc.bps, tc.lastBytes); got != tc.want {
			t.Errorf("frameGap(%d, %d) = %v, want %v", tc.bps, tc.lastBytes, got, tc.want)
		}
	}
}

func TestReceiverReportRTT(t *testing.T) {
	srv, err := NewServer(Config{UDPPort: 0, TCPPort: -1, Loopback: true, Addresses: []string{"127.0.0.1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	p, err := srv.NewPeer(PeerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := p.Stats().TargetBitrate; got != DefaultMaxBitrate {
		t.Errorf("initial target %d, want %d", got, DefaultMaxBitrate)
	}
	p.setTarget(10) // below the floor
	if got := p.Stats().TargetBitrate; got != MinBitrate {
		t.Errorf("target after setTarget(10) = %d, want the floor %d", got, MinBitrate)
	}

	sent := time.Now()
	now := sent.Add(80 * time.Millisecond)
	// Bind was not called, so our SSRC is 0.
	p.onReceiverReport([]rtcp.ReceptionReport{
		{SSRC: 1234, FractionLost: 255, LastSenderReport: ntpMiddle(sent)},
		{SSRC: 0, FractionLost: 64, TotalLost: 7, LastSenderReport: ntpMiddle(sent), Delay: 65536 / 50}, // held 20 ms
	}, now)
	st := p.Stats()
	if d := st.RTT - 60*time.Millisecond; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("RTT %v, want 60 ms", st.RTT)
	}
	if st.FractionLost != 0.25 || st.PacketsLost != 7 {
		t.Errorf("loss %v, lost %d; want 0.25, 7", st.FractionLost, st.PacketsLost)
	}
}
