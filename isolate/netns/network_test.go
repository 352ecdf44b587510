package netns

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestNetworkConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; none means valid
	}{
		{"default", func(*Config) {}, nil},
		{"default with port", func(c *Config) { c.EgressPort = 3128 }, nil},
		{"small", func(c *Config) { c.Subnet = "10.200.0.0/30" }, nil},
		{"empty", func(c *Config) { c.Subnet = "" }, []string{"subnet:", "not a CIDR"}},
		{"garbage", func(c *Config) { c.Subnet = "198.18.0.0" }, []string{"subnet:", "not a CIDR"}},
		{"ipv6", func(c *Config) { c.Subnet = "fd00::/64" }, []string{"subnet:", "not IPv4"}},
		{"too small", func(c *Config) { c.Subnet = "10.0.0.0/31" }, []string{"subnet:", "smaller than a /30"}},
		{"too large", func(c *Config) { c.Subnet = "0.0.0.0/0" }, []string{"subnet:", "larger than a /8"}},
		{"host bits", func(c *Config) { c.Subnet = "198.18.0.1/15" }, []string{"subnet:", "host bits", "198.18.0.0/15"}},
		{"loopback", func(c *Config) { c.Subnet = "127.1.0.0/16" }, []string{"subnet:", "127.0.0.0/8"}},
		{"link-local", func(c *Config) { c.Subnet = "169.254.0.0/16" }, []string{"subnet:", "169.254.0.0/16"}},
		{"port", func(c *Config) { c.EgressPort = 70000 }, []string{"egress port 70000"}},
		{"both", func(c *Config) { c.Subnet = "x"; c.EgressPort = -1 }, []string{"subnet:", "egress port -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate passed")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestNetworkBlocks(t *testing.T) {
	b := newBlocks(netip.MustParsePrefix("10.1.2.0/28")) // 4 blocks
	var got []int
	for range 4 {
		k, err := b.get()
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		got = append(got, k)
	}
	if want := []int{0, 1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("blocks %v, want %v", got, want)
	}
	if _, err := b.get(); !errors.Is(err, ErrSubnetFull) || !errors.Is(err, ErrCapacity) {
		t.Fatalf("get on a full subnet: %v, want ErrSubnetFull, of ErrCapacity", err)
	}
	b.put(1)
	b.put(1) // twice is harmless
	if k, err := b.get(); err != nil || k != 1 {
		t.Fatalf("get after put(1) = %d, %v; want the freed block 1", k, err)
	}
	// Freed blocks come back last: after 2 was freed, 0 and 3 are free too
	// but the search goes on from the block after the last one given.
	b.put(2)
	b.put(0)
	if k, _ := b.get(); k != 2 {
		t.Errorf("get = %d, want 2 (the next after 1)", k)
	}
	if k, _ := b.get(); k != 0 {
		t.Errorf("get = %d, want 0 (wrapped round)", k)
	}

	for _, tt := range []struct {
		k          int
		host, ctr  string
		prefixBase string
	}{
		{0, "10.1.2.1", "10.1.2.2", "10.1.2.0/28"},
		{3, "10.1.2.13", "10.1.2.14", "10.1.2.0/28"},
		{64, "198.18.1.1", "198.18.1.2", "198.18.0.0/15"},
		{32767, "198.19.255.253", "198.19.255.254", "198.18.0.0/15"},
	} {
		host, ctr := newBlocks(netip.MustParsePrefix(tt.prefixBase)).addrs(tt.k)
		if host.String() != tt.host || ctr.String() != tt.ctr {
			t.Errorf("block %d of %s: %s, %s; want %s, %s", tt.k, tt.prefixBase, host, ctr, tt.host, tt.ctr)
		}
	}
	if n := len(newBlocks(netip.MustParsePrefix("198.18.0.0/15")).used); n != 32768 {
		t.Errorf("a /15 has %d blocks, want 32768", n)
	}
}

func TestNetworkHostIfName(t *testing.T) {
	a, b := hostIfName("tab-1"), hostIfName("tab-2")
	for _, n := range []string{a, b, hostIfName(strings.Repeat("x", 300))} {
		if !strings.HasPrefix(n, hostIfPrefix) || len(n) != len(hostIfPrefix)+8 || len(n) > 15 {
			t.Errorf("name %q: want %s and 8 hex digits, at most 15 bytes", n, hostIfPrefix)
		}
	}
	if a == b || a != hostIfName("tab-1") {
		t.Errorf("names %q, %q: want distinct and stable", a, b)
	}
}
