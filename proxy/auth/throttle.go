package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"net/netip"
	"sync"
	"time"
)

// Failed sign-ins are limited per client address, the way fail2ban limits
// them for sshd: MaxFailures failures within authFailWindow and the address
// is refused for BlockFor, every request of it answered 429 without a
// password being checked, so that guessing passwords costs the guesser time
// and Glovebox no bcrypt work. An IPv6 client counts by its /64, which one
// machine usually has whole. A success does not wipe the address's count:
// else a guesser who knows one password could interleave it with guesses
// at others. Behind a NAT or a downstream proxy every user shares the
// address, and one user's mistakes lock out the others for a while: the
// price of not being brute-forced through that address.
const (
	MaxFailures    = 10
	authFailWindow = 10 * time.Minute
	BlockFor       = 5 * time.Minute
	// authFailTrack bounds the addresses with recent failures that are
	// remembered, so that a spray of addresses cannot grow the table
	// without limit. When it is full of refused addresses, new ones go
	// uncounted (bcrypt work stays bounded by the authenticator's
	// semaphore) rather than everyone being refused.
	authFailTrack = 10000
)

// loginThrottle counts failed sign-ins per address.
type loginThrottle struct {
	max           int
	window, block time.Duration
	track         int

	mu        sync.Mutex
	by        map[netip.Prefix]*failures
	nextSweep time.Time // when a full table is swept next
}

// failures is the record of one address.
type failures struct {
	fails    int       // failed attempts counted since since
	since    time.Time // the start of the window they count in
	inflight int       // attempts being checked now, counted ahead
	until    time.Time // refused until then
	last     [32]byte  // the credentials of the last failure (their HMAC)
}

func newLoginThrottle() *loginThrottle {
	return &loginThrottle{max: MaxFailures, window: authFailWindow, block: BlockFor, track: authFailTrack,
		by: map[netip.Prefix]*failures{}}
}

// throttleKey is what a client address counts as: itself (IPv4) or its /64.
func throttleKey(ip string) netip.Prefix {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Prefix{} // RemoteAddr is always ip:port; anything else shares one record
	}
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// blocked reports whether ip is refused now, and for how much longer.
func (t *loginThrottle) blocked(ip string, now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.by[throttleKey(ip)]; f != nil && now.Before(f.until) {
		return f.until.Sub(now), true
	}
	return 0, false
}

// The verdicts of begin.
const (
	attemptCheck    = iota // check the password, then call end
	attemptRepeat          // the credentials that failed last: refuse, uncounted, unchecked
	attemptRefused         // the address is refused (or would be, counting the attempts under way)
	attemptUntraced        // the table is full: check the password, uncounted; no end
)

// begin starts an attempt with the credentials key from ip. An attempt to
// check is counted ahead, so that many sent at once cannot pass the limit
// before the first of them fails. retry says how long a refused one waits.
func (t *loginThrottle) begin(ip string, key [32]byte, now time.Time) (verdict int, retry time.Duration) {
	k := throttleKey(ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.by[k]
	if f == nil {
		if !t.room(now) {
			return attemptUntraced, 0
		}
		f = &failures{since: now}
		t.by[k] = f
	}
	switch {
	case now.Before(f.until):
		return attemptRefused, f.until.Sub(now)
	case now.Sub(f.since) > t.window:
		f.fails, f.since, f.last = 0, now, [32]byte{}
	case f.fails > 0 && key == f.last:
		// A browser resends the password it has with every request, many
		// at once: the same wrong one counts once, and costs no bcrypt.
		return attemptRepeat, 0
	}
	if f.fails+f.inflight >= t.max {
		return attemptRefused, time.Second // the attempts under way may yet succeed
	}
	f.inflight++
	return attemptCheck, 0
}

// end ends an attempt that begin said to check. It reports whether this
// failure started a refusal of the address.
func (t *loginThrottle) end(ip string, key [32]byte, failed bool, now time.Time) (started bool) {
	k := throttleKey(ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.by[k]
	if f == nil {
		return false // evicted while checked
	}
	f.inflight--
	if !failed {
		if f.fails == 0 && f.inflight == 0 && !now.Before(f.until) {
			delete(t.by, k) // nothing to remember
		}
		return false
	}
	if now.Sub(f.since) > t.window {
		f.fails, f.since = 0, now
	}
	f.fails++
	f.last = key
	if f.fails < t.max || now.Before(f.until) {
		return false
	}
	// Refused from now; counting starts afresh when the refusal ends.
	f.until = now.Add(t.block)
	f.fails, f.since = 0, f.until
	return true
}

// room makes room for one more address if it can: it forgets the addresses
// whose failures are old, then (still full) those not refused now. A full
// table is swept at most once a second, so that a table full of refused
// addresses costs nothing per request.
func (t *loginThrottle) room(now time.Time) bool {
	if len(t.by) < t.track {
		return true
	}
	if now.Before(t.nextSweep) {
		return false
	}
	t.nextSweep = now.Add(time.Second)
	for k, f := range t.by {
		if f.inflight == 0 && !now.Before(f.until) && now.Sub(f.since) > t.window {
			delete(t.by, k)
		}
	}
	// Still full: a spray of addresses. Forget half of those not refused
	// now, never one that is: a spray must not lift a refusal.
	for k, f := range t.by {
		if len(t.by) < t.track/2 {
			break
		}
		if f.inflight == 0 && !now.Before(f.until) {
			delete(t.by, k)
		}
	}
	return len(t.by) < t.track
}

// Throttle limits the failed sign-ins of another sign-in than the proxy's
// (the operators' console) per client address, as the proxy's are: the
// same limits, its own record.
type Throttle struct {
	t      *loginThrottle
	secret [32]byte // keys the credentials remembered, never kept in clear
}

// NewThrottle returns a Throttle with the proxy's limits (MaxFailures,
// BlockFor).
func NewThrottle() *Throttle {
	t := &Throttle{t: newLoginThrottle()}
	rand.Read(t.secret[:])
	return t
}

// Check runs check, the verification of name and password, for a sign-in
// from ip, unless the address is refused now: then check is not run, and
// retry says how long until it may try again. The credentials that failed
// last from ip fail again at once, uncounted and unchecked. blocked says
// this failure started a refusal of the address, for the log.
func (t *Throttle) Check(ip, name, password string, check func() bool) (ok bool, retry time.Duration, blocked bool) {
	mac := hmac.New(sha256.New, t.secret[:])
	mac.Write([]byte(name))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var key [32]byte
	copy(key[:], mac.Sum(nil))
	verdict, retry := t.t.begin(ip, key, time.Now())
	switch verdict {
	case attemptRefused:
		return false, retry, false
	case attemptRepeat:
		return false, 0, false
	}
	ok = check()
	if verdict == attemptCheck {
		blocked = t.t.end(ip, key, !ok, time.Now())
	}
	return ok, 0, blocked
}
