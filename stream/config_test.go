package stream

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string // "" for valid
	}{
		{"default", func(*Config) {}, ""},
		{"zero bitrate means default", func(c *Config) { c.MaxBitrate = 0 }, ""},
		{"ports", func(c *Config) { c.UDPPort, c.TCPPort = 50000, 50000 }, ""},
		{"tcp off", func(c *Config) { c.TCPPort = -1 }, ""},
		{"nat", func(c *Config) { c.NAT1To1IPs = []string{"203.0.113.7", "198.51.100.1/10.0.0.5"} }, ""},
		{"udp port negative", func(c *Config) { c.UDPPort = -1 }, "udp_port"},
		{"udp port too big", func(c *Config) { c.UDPPort = 70000 }, "udp_port"},
		{"tcp port", func(c *Config) { c.TCPPort = -2 }, "tcp_port"},
		{"nat not an ip", func(c *Config) { c.NAT1To1IPs = []string{"example.com"} }, "nat_1to1_ips[0]"},
		{"nat bad private", func(c *Config) { c.NAT1To1IPs = []string{"203.0.113.7", "203.0.113.8/x"} }, "nat_1to1_ips[1]"},
		{"nat mixed families", func(c *Config) { c.NAT1To1IPs = []string{"203.0.113.7/fe80::1"} }, "families"},
		{"bitrate low", func(c *Config) { c.MaxBitrate = 1000 }, "max_bitrate"},
		{"bitrate high", func(c *Config) { c.MaxBitrate = 1e9 }, "max_bitrate"},
		{"h264 first", func(c *Config) { c.Codecs = []string{"h264", "vp8"} }, ""},
		{"codecs empty means default", func(c *Config) { c.Codecs = nil }, ""},
		{"unknown codec", func(c *Config) { c.Codecs = []string{"vp8", "av1"} }, `codecs[1]: "av1"`},
		{"codec twice", func(c *Config) { c.Codecs = []string{"vp8", "vp8"} }, `codecs[1]: "vp8" is listed twice`},
		{"address in the containers' network", func(c *Config) {
			c.Addresses = []string{"192.0.2.10", "198.18.0.1"}
			c.ExcludeNets = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}
		}, "addresses[1]: 198.18.0.1 is in 198.18.0.0/15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate: %v, want an error naming %q", err, tt.wantErr)
			}
		})
	}
	if c := DefaultConfig(); c.MaxBitrate != 4_000_000 || c.TCPPort != DefaultPort || c.UDPPort != DefaultPort || c.Loopback ||
		!slices.Equal(c.Codecs, []string{"vp8", "h264"}) {
		t.Errorf("DefaultConfig %+v", c)
	}
	if _, err := NewServer(Config{UDPPort: -5}, testLog()); err == nil {
		t.Error("NewServer accepted an invalid config")
	}
}

func TestNATRules(t *testing.T) {
	rules, err := natRules([]string{"203.0.113.7", "198.51.100.1/10.0.0.5", "2001:db8::1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 {
		t.Fatalf("rules %+v", rules)
	}
	if r := rules[0]; r.Local != "10.0.0.5" || r.External[0] != "198.51.100.1" || r.AsCandidateType != webrtc.ICECandidateTypeHost {
		t.Errorf("pinned rule %+v", r)
	}
	if r := rules[1]; len(r.External) != 2 || r.Local != "" || r.Mode != webrtc.ICEAddressRewriteReplace {
		t.Errorf("catch-all rule %+v", r)
	}
}

// TestCandidateFilters: which local interfaces and addresses may be offered
// as media candidates.
func TestCandidateFilters(t *testing.T) {
	containers := []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}
	tests := []struct {
		name  string
		cfg   Config
		iface string
		ip    string
		keep  bool
	}{
		{"no filter", Config{}, "eth0", "198.18.0.1", true},
		{"host address", Config{ExcludeNets: containers, ExcludeInterfaces: []string{"gbh"}}, "eth0", "192.0.2.10", true},
		{"loopback", Config{ExcludeNets: containers, ExcludeInterfaces: []string{"gbh"}}, "lo", "127.0.0.1", true},
		{"a container's veth", Config{ExcludeNets: containers, ExcludeInterfaces: []string{"gbh"}}, "gbh1a2b3c4d", "198.18.0.1", false},
		{"the containers' network on another interface", Config{ExcludeNets: containers}, "eth1", "198.19.255.253", false},
		{"a veth's name whatever its address", Config{ExcludeInterfaces: []string{"gbh"}}, "gbh00000000", "192.0.2.99", false},
		{"just outside the network", Config{ExcludeNets: containers}, "eth0", "198.20.0.1", true},
		{"configured address", Config{Addresses: []string{"192.0.2.10"}, ExcludeNets: containers}, "eth0", "192.0.2.10", true},
		{"another address", Config{Addresses: []string{"192.0.2.10"}, ExcludeNets: containers}, "eth0", "192.0.2.11", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep := true
			if f := tt.cfg.interfaceFilter(); f != nil {
				keep = f(tt.iface)
			}
			if f := tt.cfg.ipFilter(); f != nil {
				keep = keep && f(net.ParseIP(tt.ip))
			}
			if keep != tt.keep {
				t.Errorf("%s %s: keep = %v, want %v", tt.iface, tt.ip, keep, tt.keep)
			}
		})
	}
}
