package stream

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"

	"github.com/glovebox/glovebox/stream/internal/opus"
)

// pcmTone is n samples (per channel) of a stereo sine of freq Hz from
// sample start, as WriteAudio takes them; amp 0 is digital silence.
func pcmTone(freq, amp float64, start, n int) []byte {
	b := make([]byte, 4*n)
	for i := range n {
		v := uint16(int16(amp * math.Sin(2*math.Pi*freq*float64(start+i)/AudioRate)))
		binary.LittleEndian.PutUint16(b[4*i:], v)
		binary.LittleEndian.PutUint16(b[4*i+2:], v)
	}
	return b
}

// audioFeed writes PCM to a peer in 10 ms chunks, as the tab's reader does,
// with the times of a sound device that plays from t0 on.
type audioFeed struct {
	p      *Peer
	t0     time.Time
	sample int // samples written so far, and the next one's number
}

func (f *audioFeed) write(freq, amp float64, ms int) {
	for range ms / 10 {
		n := AudioRate / 100
		pcm := pcmTone(freq, amp, f.sample, n)
		f.sample += n
		f.p.WriteAudio(pcm, f.t0.Add(samplesDuration(int64(f.sample))))
	}
}

// skip advances the device's clock by ms with no PCM: a suspended sink.
func (f *audioFeed) skip(ms int) { f.sample += AudioRate * ms / 1000 }

// nextAudio returns the next audio packet the client received.
func (c *testClient) nextAudio(t *testing.T) *rtp.Packet {
	t.Helper()
	select {
	case p := <-c.audio:
		return p
	case <-time.After(20 * time.Second):
		t.Fatal("no audio packet within 20 s")
		return nil
	}
}

// answerAudio returns the direction of the answer's audio section, "" if
// it has none.
func answerAudio(t *testing.T, answer string) string {
	t.Helper()
	var sd sdp.SessionDescription
	must(t, sd.UnmarshalString(answer))
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			continue
		}
		for _, dir := range []string{"sendrecv", "sendonly", "recvonly", "inactive"} {
			if _, ok := md.Attribute(dir); ok {
				return dir
			}
		}
		return "sendrecv"
	}
	return ""
}

// goertzel is the power of freq in the samples, normalised by their count.
func goertzel(pcm []int16, freq float64) float64 {
	k := 2 * math.Cos(2*math.Pi*freq/AudioRate)
	var s1, s2 float64
	for _, v := range pcm {
		s := float64(v) + k*s1 - s2
		s2, s1 = s1, s
	}
	n := float64(len(pcm))
	return (s1*s1 + s2*s2 - k*s1*s2) / (n * n)
}

// TestAudioTone: a tone written to the peer arrives as Opus on the offer's
// payload type, in 20 ms packets whose timestamps follow the samples, and
// decodes to the tone.
func TestAudioTone(t *testing.T) {
	s := newTestServer(t, nil)
	p := newTestPeer(t, s, PeerOptions{Audio: true})
	c := newTestClient(t, clientOpts{audio: true})
	answer := c.connect(t, p)
	if dir := answerAudio(t, answer); dir != "sendonly" {
		t.Fatalf("answer's audio is %q, want sendonly", dir)
	}
	waitChan(t, c.open, 20*time.Second, "data channel open")

	f := &audioFeed{p: p, t0: time.Now()}
	f.write(1000, 8000, 1000)
	dec, err := opus.NewDecoder(2)
	must(t, err)
	defer dec.Close()
	var left []int16
	buf := make([]int16, 2*5760)
	first := c.nextAudio(t)
	if pt := <-c.audioPT; pt != 109 {
		t.Errorf("payload type %d, want the offer's 109", pt)
	}
	if !first.Marker {
		t.Error("the first packet of the talkspurt has no marker bit")
	}
	prev := first
	for i := 0; i < 50; i++ {
		pkt := first
		if i > 0 {
			pkt = c.nextAudio(t)
			if pkt.SequenceNumber != prev.SequenceNumber+1 || pkt.Timestamp-prev.Timestamp != audioFrame || pkt.Marker {
				t.Fatalf("packet %d: seq %d ts %d marker %v after seq %d ts %d", i, pkt.SequenceNumber, pkt.Timestamp, pkt.Marker, prev.SequenceNumber, prev.Timestamp)
			}
		}
		prev = pkt
		n, err := dec.Decode(pkt.Payload, buf)
		must(t, err)
		if n != audioFrame {
			t.Fatalf("packet %d: %d samples, want %d", i, n, audioFrame)
		}
		for j := range n {
			left = append(left, buf[2*j])
		}
	}
	tail := left[len(left)/2:] // past the codec's start
	at, off := goertzel(tail, 1000), goertzel(tail, 2500)
	if at < 8000*8000/4/4 { // a quarter of the tone's power (amp²/4)
		t.Errorf("power at 1 kHz %.0f: the tone did not come through", at)
	}
	if off > at/1000 {
		t.Errorf("power at 2.5 kHz %.1f against %.0f at 1 kHz", off, at)
	}
	st := p.Stats()
	if !st.Audio || st.AudioPackets != 50 || st.AudioFrames != 50 || st.AudioBytes == 0 {
		t.Errorf("stats %+v, want 50 audio packets", st)
	}
}

// TestAudioSilence: digital silence is neither encoded nor sent, but for a
// short tail after sound; sound after a pause starts a new talkspurt whose
// timestamp has moved on by the pause.
func TestAudioSilence(t *testing.T) {
	s := newTestServer(t, nil)
	p := newTestPeer(t, s, PeerOptions{Audio: true})
	c := newTestClient(t, clientOpts{audio: true})
	c.connect(t, p)
	waitChan(t, c.open, 20*time.Second, "data channel open")

	f := &audioFeed{p: p, t0: time.Now()}
	f.write(0, 0, 2000) // two seconds of silence: nothing
	if st := p.Stats(); st.AudioFrames != 0 || st.AudioPackets != 0 {
		t.Fatalf("silence: %d frames encoded, %d packets sent", st.AudioFrames, st.AudioPackets)
	}
	f.write(440, 6000, 100) // 5 frames of sound
	f.write(0, 0, 1000)     // then silence: the tail goes, then nothing
	f.skip(500)             // the sink suspended for half a second
	f.write(440, 6000, 100) // and sound again

	first := c.nextAudio(t)
	// The first packet received is the sound's, two seconds in: no
	// silence went before it.
	if !first.Marker {
		t.Error("first packet: no marker")
	}
	for i := 1; i < 5+silenceHangover; i++ {
		pkt := c.nextAudio(t)
		if pkt.Timestamp-first.Timestamp != uint32(i*audioFrame) || pkt.Marker {
			t.Fatalf("packet %d: ts +%d marker %v", i, pkt.Timestamp-first.Timestamp, pkt.Marker)
		}
	}
	again := c.nextAudio(t)
	if !again.Marker {
		t.Error("sound after the pause: no marker")
	}
	// 100 ms of sound, 1 s of silence, 0.5 s of pause.
	if d, want := again.Timestamp-first.Timestamp, uint32(AudioRate*1600/1000); d != want {
		t.Errorf("sound after the pause at ts +%d, want +%d", d, want)
	}
	st := p.Stats()
	if want := uint64(5 + silenceHangover + 5); st.AudioPackets != want || st.AudioFrames != want {
		t.Errorf("%d packets, %d frames encoded, want %d", st.AudioPackets, st.AudioFrames, want)
	}
	if st.AudioResyncs != 1 {
		t.Errorf("%d resyncs, want 1 (the pause)", st.AudioResyncs)
	}
}

// TestAudioOffered: audio goes only where the offer asks for it and the
// peer allows it; offers without audio (old landing pages, plain clients)
// still get their video.
func TestAudioOffered(t *testing.T) {
	for _, tc := range []struct {
		name         string
		allow, offer bool
		want         string // the answer's audio direction
	}{
		{"on", true, true, "sendonly"},
		{"off by policy", false, true, "inactive"},
		{"not offered", true, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, nil)
			p := newTestPeer(t, s, PeerOptions{Audio: tc.allow})
			c := newTestClient(t, clientOpts{audio: tc.offer})
			if dir := answerAudio(t, c.connect(t, p)); dir != tc.want {
				t.Errorf("answer's audio %q, want %q", dir, tc.want)
			}
			waitChan(t, c.open, 20*time.Second, "data channel open")
			p.Submit(solidJPEG(t, 64, 48, [3]byte{200, 30, 30}), time.Now(), nil)
			c.nextFrame(t, 20*time.Second)
			(&audioFeed{p: p, t0: time.Now()}).write(1000, 8000, 200)
			st := p.Stats()
			if sent := st.AudioPackets > 0; sent != (tc.want == "sendonly") || st.Audio != sent {
				t.Errorf("audio track %v, %d packets sent", st.Audio, st.AudioPackets)
			}
		})
	}
}

func TestOfferWantsAudio(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
	for _, tc := range []struct {
		name, media string
		want        bool
	}{
		{"recvonly opus", "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=recvonly\r\n", true},
		{"sendrecv opus", "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n", true},
		{"sendonly", "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=sendonly\r\n", false},
		{"rejected", "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n", false},
		{"no opus", "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n", false},
		{"video only", "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := offerWantsAudio(head + tc.media); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if offerWantsAudio(strings.Repeat("garbage", 3)) {
		t.Error("garbage wants audio")
	}
}
