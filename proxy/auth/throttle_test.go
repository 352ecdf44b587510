package auth

import (
	"fmt"
	"testing"
	"time"
)

// try runs one attempt with the credentials key and says how it went.
func (t *loginThrottle) try(ip string, key byte, failed bool, now time.Time) (verdict int, started bool) {
	k := [32]byte{key}
	verdict, _ = t.begin(ip, k, now)
	if verdict == attemptCheck {
		started = t.end(ip, k, failed, now)
	}
	return verdict, started
}

func TestLoginThrottleLimits(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fails := func(th *loginThrottle, ip string, n int, now time.Time) (started int) {
		for i := range n {
			if v, s := th.try(ip, byte(i+1), true, now); v != attemptCheck {
				t.Fatalf("%s attempt %d: verdict %d, want a check", ip, i, v)
			} else if s {
				started++
			}
		}
		return started
	}
	tests := []struct {
		name string
		run  func(t *testing.T, th *loginThrottle)
	}{
		{"refused after max failures, for block", func(t *testing.T, th *loginThrottle) {
			if s := fails(th, "192.0.2.1", MaxFailures, t0); s != 1 {
				t.Fatalf("%d refusals started, want 1", s)
			}
			if v, retry := th.begin("192.0.2.1", [32]byte{99}, t0); v != attemptRefused || retry != BlockFor {
				t.Errorf("begin after max failures: %d %v", v, retry)
			}
			if _, no := th.blocked("192.0.2.2", t0); no {
				t.Errorf("another address is refused")
			}
			if _, no := th.blocked("192.0.2.1", t0.Add(BlockFor)); no {
				t.Errorf("still refused when the block is over")
			}
			if v, _ := th.try("192.0.2.1", 99, false, t0.Add(BlockFor)); v != attemptCheck {
				t.Errorf("after the block: verdict %d", v)
			}
		}},
		{"failures older than the window are forgotten", func(t *testing.T, th *loginThrottle) {
			fails(th, "192.0.2.1", MaxFailures-1, t0)
			if s := fails(th, "192.0.2.1", MaxFailures-1, t0.Add(authFailWindow+time.Second)); s != 0 {
				t.Errorf("refused for failures spread over two windows")
			}
		}},
		{"a success does not wipe the count", func(t *testing.T, th *loginThrottle) {
			fails(th, "192.0.2.1", MaxFailures-1, t0)
			th.try("192.0.2.1", 200, false, t0)
			if _, s := th.try("192.0.2.1", 201, true, t0); !s {
				t.Errorf("the failure after a success did not start the refusal")
			}
		}},
		{"the same wrong credentials count once", func(t *testing.T, th *loginThrottle) {
			for range 3 * MaxFailures {
				th.try("192.0.2.1", 7, true, t0)
			}
			if _, no := th.blocked("192.0.2.1", t0); no {
				t.Errorf("refused for one wrong password resent")
			}
			if v, _ := th.begin("192.0.2.1", [32]byte{7}, t0); v != attemptRepeat {
				t.Errorf("verdict %d for the last failure resent, want attemptRepeat", v)
			}
		}},
		{"attempts under way count", func(t *testing.T, th *loginThrottle) {
			for i := range MaxFailures {
				if v, _ := th.begin("192.0.2.1", [32]byte{byte(i)}, t0); v != attemptCheck {
					t.Fatalf("attempt %d: verdict %d", i, v)
				}
			}
			if v, _ := th.begin("192.0.2.1", [32]byte{50}, t0); v != attemptRefused {
				t.Errorf("verdict %d with max attempts under way, want attemptRefused", v)
			}
			th.end("192.0.2.1", [32]byte{0}, false, t0)
			if v, _ := th.begin("192.0.2.1", [32]byte{50}, t0); v != attemptCheck {
				t.Errorf("verdict %d once one succeeded, want attemptCheck", v)
			}
		}},
		{"an IPv6 client counts by its /64", func(t *testing.T, th *loginThrottle) {
			for i := range MaxFailures {
				th.try(fmt.Sprintf("2001:db8::%x", i+1), byte(i+1), true, t0)
			}
			if _, no := th.blocked("2001:db8::ffff:1", t0); !no {
				t.Errorf("the /64 is not refused")
			}
			if _, no := th.blocked("2001:db8:0:1::1", t0); no {
				t.Errorf("the next /64 is refused")
			}
			if _, no := th.blocked("::ffff:192.0.2.1", t0); no {
				t.Errorf("an IPv4 address is refused")
			}
		}},
		{"successes leave nothing behind", func(t *testing.T, th *loginThrottle) {
			for i := range 100 {
				th.try(fmt.Sprintf("198.51.100.%d", i), 1, false, t0)
			}
			if n := len(th.by); n != 0 {
				t.Errorf("%d addresses remembered after successes only", n)
			}
		}},
		{"a spray of addresses is bounded and lifts no refusal", func(t *testing.T, th *loginThrottle) {
			fails(th, "192.0.2.1", MaxFailures, t0)
			now := t0
			for i := range 20 * th.track {
				now = now.Add(10 * time.Millisecond)
				th.try(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), 1, true, now)
				if n := len(th.by); n > th.track {
					t.Fatalf("%d addresses remembered, bound %d", n, th.track)
				}
			}
			if _, no := th.blocked("192.0.2.1", now); !no {
				t.Errorf("the spray lifted the refusal")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newLoginThrottle()
			th.track = 100
			tt.run(t, th)
		})
	}
}

// TestThrottle: the console's sign-ins are limited as the proxy's are:
// past MaxFailures the address is refused without a check, another
// address is not, and the same wrong password again costs no check.
func TestThrottle(t *testing.T) {
	th := NewThrottle()
	checks := 0
	wrong := func() bool { checks++; return false }
	for i := range MaxFailures {
		ok, retry, blocked := th.Check("192.0.2.1", "root", fmt.Sprint("guess", i), wrong)
		if ok || retry != 0 || blocked != (i == MaxFailures-1) {
			t.Fatalf("failure %d: ok %v retry %v blocked %v", i, ok, retry, blocked)
		}
	}
	ok, retry, _ := th.Check("192.0.2.1", "root", "right", func() bool { checks++; return true })
	if ok || retry <= 0 || checks != MaxFailures {
		t.Errorf("refused address: ok %v retry %v, %d checks, want %d", ok, retry, checks, MaxFailures)
	}
	if ok, _, _ := th.Check("192.0.2.2", "root", "right", func() bool { return true }); !ok {
		t.Error("another address is refused too")
	}
	th.Check("192.0.2.3", "root", "same", wrong)
	n := checks
	if ok, _, _ := th.Check("192.0.2.3", "root", "same", wrong); ok || checks != n {
		t.Errorf("the same wrong password again: ok %v, checked again: %v", ok, checks != n)
	}
}
