package stream

import (
	"testing"
	"time"
)

// t0 is when the last frame went in the states of these tests.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// quiet is a connected peer on a quiet page: an image, sent at t0, nothing
// owed, no keyframe wanted (the last a minute ago), a 30 ms frame gap.
func quiet(after time.Duration) sendState {
	return sendState{
		now: t0.Add(after), ready: true, bound: true,
		haveImage: true, sentAny: true, lastSendWall: t0, gap: 30 * time.Millisecond,
		lastKeyWall: t0.Add(-time.Minute),
	}
}

// connecting is a peer whose browser is not connected: answered (the track
// bound, the codec known), an image decoded, nothing sent.
func connecting() sendState {
	return sendState{now: t0, bound: true, haveImage: true, gap: 30 * time.Millisecond}
}

// TestDecide holds each rule of the media path's policy (decide), in the
// order they were added.
func TestDecide(t *testing.T) {
	with := func(s sendState, mod func(*sendState)) sendState { mod(&s); return s }
	var (
		nothing    = decision{}
		early      = decision{act: actEarly}
		newFrame   = decision{act: actEncodeNew, owe: true}
		newKey     = decision{act: actEncodeNew, key: true, owe: true}
		lastKey    = decision{act: actEncodeLast, key: true, owe: true}
		lastDelta  = decision{act: actEncodeLast}
		resendLast = decision{act: actResend}
	)
	tests := []struct {
		name string
		s    sendState
		want decision
	}{
		// Connecting (b06f7cf: a keyframe encoded while the browser connects).
		{"not answered yet: the codec is unknown", with(connecting(), func(s *sendState) { s.bound = false }), nothing},
		{"answered, connecting: the image as an early keyframe", connecting(), early},
		{"connecting, the early keyframe is of this image already", with(connecting(), func(s *sendState) { s.earlyReady = true }), nothing},
		{"connecting, no image yet", with(connecting(), func(s *sendState) { s.haveImage = false }), nothing},
		{"reconnecting after frames went: no early keyframe per frame", with(quiet(time.Second), func(s *sendState) { s.ready, s.held = false, true }), nothing},
		{"connected, no image yet", with(quiet(time.Second), func(s *sendState) { s.haveImage, s.sentAny = false, false }), nothing},

		// Just connected: the browser needs a keyframe now (945ee69).
		{"just connected, the image from before: a keyframe of it (the early one)",
			with(connecting(), func(s *sendState) { s.ready, s.needKey = true, true }), lastKey},
		{"just connected as a new image comes: a keyframe of it",
			with(connecting(), func(s *sendState) { s.ready, s.needKey, s.held = true, true, true }), newKey},
		{"reconnected: a keyframe at once",
			with(quiet(10*time.Millisecond), func(s *sendState) { s.needKey, s.lastKeyWall = true, time.Time{} }), lastKey},

		// New images, spaced to the bitrate (63a6f8c); each frame's last
		// packet owed again (c22fbe0).
		{"new image, the frame gap is up: a delta frame of it",
			with(quiet(30*time.Millisecond), func(s *sendState) { s.held = true }), newFrame},
		{"new image after a pause: at once",
			with(quiet(5*time.Second), func(s *sendState) { s.held = true }), newFrame},
		{"new image inside the frame gap: held",
			with(quiet(10*time.Millisecond), func(s *sendState) { s.held = true }), nothing},
		{"new image inside the frame gap, a keyframe wanted: at once, as a keyframe",
			with(quiet(10*time.Millisecond), func(s *sendState) { s.held, s.needKey = true, true }), newKey},
		{"new image inside the frame gap, a keyframe wanted too soon: held",
			with(quiet(10*time.Millisecond), func(s *sendState) { s.held, s.needKey, s.lastKeyWall = true, true, t0 }), nothing},

		// Keyframe requests (PLI, FIR, RequestKeyframe), spaced by
		// minKeyInterval (945ee69).
		{"keyframe wanted on a quiet page: a keyframe of the last image",
			with(quiet(10*time.Millisecond), func(s *sendState) { s.needKey = true }), lastKey},
		{"keyframe wanted inside minKeyInterval of the last: waits",
			with(quiet(minKeyInterval-time.Millisecond), func(s *sendState) { s.needKey, s.lastKeyWall = true, t0 }), nothing},
		{"keyframe wanted, minKeyInterval is up: a keyframe",
			with(quiet(minKeyInterval), func(s *sendState) { s.needKey, s.lastKeyWall = true, t0 }), lastKey},

		// The viewer's page speaks first (b06f7cf).
		{"the viewer's page speaks first: a delta frame of the last image",
			with(quiet(10*time.Millisecond), func(s *sendState) { s.refresh = true }), lastDelta},
		{"the viewer speaks while a new image is held: the held image goes when due",
			with(quiet(10*time.Millisecond), func(s *sendState) { s.refresh, s.held = true, true }), nothing},
		{"the viewer speaks as a new image is due: the new image",
			with(quiet(30*time.Millisecond), func(s *sendState) { s.refresh, s.held = true, true }), newFrame},

		// A change on a quiet page is followed by its last packet sent
		// again (c22fbe0, which replaced 38bbf51's re-encoded frame).
		{"followUp after a frame: its last packet again",
			with(quiet(followUp), func(s *sendState) { s.owed = true }), resendLast},
		{"before followUp: nothing yet",
			with(quiet(followUp-time.Millisecond), func(s *sendState) { s.owed = true }), nothing},
		{"owed, and a new image is due: the new frame instead",
			with(quiet(followUp), func(s *sendState) { s.owed, s.held = true, true }), newFrame},
		{"owed, a new image held past followUp on a slow link: the packet waits for it",
			with(quiet(followUp), func(s *sendState) { s.owed, s.held, s.gap = true, true, 200*time.Millisecond }), nothing},
		{"owed, and a second has gone: the packet, not the refresh",
			with(quiet(idleRefresh), func(s *sendState) { s.owed = true }), resendLast},

		// The idle refresh keeps Chrome from asking for keyframes (945ee69).
		{"quiet page, a second after the last frame: a delta frame of it", quiet(idleRefresh), lastDelta},
		{"quiet page, before the second", quiet(idleRefresh - time.Millisecond), nothing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(&tt.s); got != tt.want {
				t.Errorf("decide = %+v, want %+v\nstate %+v", got, tt.want, tt.s)
			}
		})
	}
}

// TestWakeAt: when step runs again by itself, from the state after it has
// acted.
func TestWakeAt(t *testing.T) {
	with := func(s sendState, mod func(*sendState)) sendState { mod(&s); return s }
	tests := []struct {
		name string
		s    sendState
		want time.Time // zero: only when woken
	}{
		{"not connected: only when woken", with(quiet(0), func(s *sendState) { s.ready = false }), time.Time{}},
		{"no image: only when woken", with(quiet(0), func(s *sendState) { s.haveImage = false }), time.Time{}},
		{"connected, nothing sent, nothing wanted: only when woken",
			with(quiet(0), func(s *sendState) { s.sentAny, s.lastSendWall = false, time.Time{} }), time.Time{}},
		{"the first keyframe failed to encode: minKeyInterval after connecting's zero, so at once",
			with(quiet(0), func(s *sendState) {
				s.sentAny, s.lastSendWall, s.needKey, s.lastKeyWall = false, time.Time{}, true, time.Time{}
			}), time.Time{}.Add(minKeyInterval)},
		{"a frame went, its last packet owed: followUp after it", with(quiet(0), func(s *sendState) { s.owed = true }), t0.Add(followUp)},
		{"quiet page: the idle refresh", quiet(0), t0.Add(idleRefresh)},
		{"an image held: when the frame gap is up", with(quiet(0), func(s *sendState) { s.held, s.owed = true, true }), t0.Add(30 * time.Millisecond)},
		{"an image held on a slow link, the packet owed: when the gap is up, not followUp",
			with(quiet(0), func(s *sendState) { s.held, s.owed, s.gap = true, true, 200*time.Millisecond }), t0.Add(200 * time.Millisecond)},
		{"a keyframe wanted: minKeyInterval after the last",
			with(quiet(0), func(s *sendState) { s.needKey, s.lastKeyWall = true, t0 }), t0.Add(minKeyInterval)},
		{"a keyframe wanted, the packet owed sooner",
			with(quiet(0), func(s *sendState) { s.needKey, s.lastKeyWall, s.owed = true, t0, true }), t0.Add(followUp)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wakeAt(&tt.s); !got.Equal(tt.want) {
				t.Errorf("wakeAt = %v, want %v\nstate %+v", got, tt.want, tt.s)
			}
		})
	}
}
