package netcheck

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestInternalReason(t *testing.T) {
	internal := []string{
		"0.0.0.0", "0.1.2.3", "10.0.0.1", "100.64.0.1", "100.127.255.254", "127.0.0.1", "127.255.0.1",
		"169.254.169.254", "172.16.0.1", "172.31.255.255", "192.0.0.170", "192.0.2.10", "192.88.99.1",
		"192.168.0.1", "198.18.0.5", "198.19.255.1", "198.51.100.1", "203.0.113.9", "224.0.0.1",
		"239.255.255.250", "240.0.0.1", "255.255.255.255",
		"::", "::1", "::127.0.0.1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::8.8.8.8", "2002:7f00:1::1", "2002:a00:1::",
		"2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:2::1", "2001:db8::1", "3fff::1",
		"100::1", "5f00::1", "fc00::1", "fd12:3456::1", "fe80::1", "fec0::1", "ff02::1", "fe80::1%eth0",
	}
	public := []string{
		"1.1.1.1", "8.8.8.8", "93.184.215.14", "100.63.255.255", "100.128.0.0", "172.32.0.1", "192.0.1.255",
		"198.17.255.255", "198.20.0.0", "223.255.255.255",
		"2606:4700:4700::1111", "2a00:1450:4001::200e", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
	}
	for _, s := range internal {
		if why := InternalReason(netip.MustParseAddr(s)); why == "" {
			t.Errorf("%s: public, want internal", s)
		}
	}
	for _, s := range public {
		if why := InternalReason(netip.MustParseAddr(s)); why != "" {
			t.Errorf("%s: internal (%s), want public", s, why)
		}
	}
}

func TestHostAddrs(t *testing.T) {
	calls := 0
	fail := false
	h := &HostAddrs{List: func() ([]net.Addr, error) {
		calls++
		if fail {
			return nil, errors.New("netlink said no")
		}
		return []net.Addr{
			&net.IPNet{IP: net.ParseIP("203.0.113.5"), Mask: net.CIDRMask(24, 32)},
			&net.IPNet{IP: net.ParseIP("2001:db8::5"), Mask: net.CIDRMask(64, 128)},
		}, nil
	}}
	for _, s := range []string{"203.0.113.5", "::ffff:203.0.113.5", "2001:db8::5"} {
		if !h.Contains(netip.MustParseAddr(s)) {
			t.Errorf("%s: not a host address", s)
		}
	}
	if h.Contains(netip.MustParseAddr("203.0.113.6")) {
		t.Error("203.0.113.6: a host address, want not (same subnet is not the host)")
	}
	if calls != 1 {
		t.Errorf("listed interfaces %d times within the TTL, want 1", calls)
	}
	// Past the TTL a failing list keeps the last good one.
	fail = true
	h.fetched = time.Now().Add(-2 * HostAddrTTL)
	if !h.Contains(netip.MustParseAddr("203.0.113.5")) || calls != 2 {
		t.Errorf("after a failed refresh: calls %d, lost the last list", calls)
	}
}
