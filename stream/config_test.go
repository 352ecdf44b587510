package stream

import (
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
