package stream

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Config is the WebRTC configuration shared by all tabs.
type Config struct {
	// UDPPort is the one UDP port all ICE traffic of all tabs uses (a UDP
	// mux); open it in the firewall. 0 picks a free port (tests).
	UDPPort int `mapstructure:"udp_port"`
	// TCPPort is the ICE-TCP (passive) port shared by all tabs, for clients
	// whose networks block UDP. 0 picks a free port; -1 turns ICE-TCP off.
	TCPPort int `mapstructure:"tcp_port"`
	// NAT1To1IPs are public addresses announced instead of the host's own
	// addresses, for deployments behind a 1:1 NAT (cloud VMs with an elastic
	// IP). Either "public" (all local addresses of that family map to it) or
	// "public/private" (only that private address).
	NAT1To1IPs []string `mapstructure:"nat_1to1_ips"`
	// Loopback also offers 127.0.0.1 candidates: for tests and single-box
	// demos where the viewer runs on the same machine.
	Loopback bool `mapstructure:"loopback"`
	// Addresses limits media to these local IPv4 addresses (candidates are
	// gathered only on them); empty means every address of the host but
	// those of the browsers' containers. A loopback address here implies
	// Loopback.
	Addresses []string `mapstructure:"addresses"`
	// ExcludeNets are local networks users cannot reach, whose addresses
	// are never offered as candidates: the containers' links. It is not a
	// setting of its own: the wiring sets it from isolate.network.subnet.
	ExcludeNets []netip.Prefix `mapstructure:"-"`
	// ExcludeInterfaces are name prefixes of local interfaces never used
	// for media: the host ends of the containers' veths. The wiring sets it.
	ExcludeInterfaces []string `mapstructure:"-"`
	// MaxBitrate is the video target bitrate ceiling of one tab, in bits/s;
	// 0 means DefaultMaxBitrate.
	MaxBitrate int `mapstructure:"max_bitrate"`
	// Codecs are the video codecs Glovebox sends, in order of preference:
	// "vp8" and "h264" (openh264, constrained baseline). A browser that
	// offers several gets the first of these it takes; leaving one out
	// forces the other (a browser that offers none of them is refused).
	// Empty means DefaultCodecs.
	Codecs []string `mapstructure:"codecs"`
}

// DefaultMaxBitrate is the default video bitrate ceiling, in bits/s.
const DefaultMaxBitrate = 4_000_000

// DefaultPort is the default UDP and ICE-TCP port for all media.
const DefaultPort = 50000

// DefaultConfig returns the defaults: UDP and ICE-TCP on DefaultPort, no NAT
// mapping, no loopback, 4 Mbit/s, VP8 before H.264.
func DefaultConfig() Config {
	return Config{UDPPort: DefaultPort, TCPPort: DefaultPort, MaxBitrate: DefaultMaxBitrate, Codecs: slices.Clone(DefaultCodecs)}
}

// Validate checks the configuration and names the offending key.
func (c *Config) Validate() error {
	var errs []error
	if c.UDPPort < 0 || c.UDPPort > 65535 {
		errs = append(errs, fmt.Errorf("udp_port: %d is not a port (0-65535)", c.UDPPort))
	}
	for i, a := range c.Addresses {
		ip, err := netip.ParseAddr(a)
		if err != nil || !ip.Is4() {
			errs = append(errs, fmt.Errorf("addresses[%d]: %q is not an IPv4 address", i, a))
			continue
		}
		for _, n := range c.ExcludeNets {
			if n.Contains(ip) {
				errs = append(errs, fmt.Errorf("addresses[%d]: %s is in %s, the containers' network, which users cannot reach", i, a, n))
			}
		}
	}
	if c.TCPPort < -1 || c.TCPPort > 65535 {
		errs = append(errs, fmt.Errorf("tcp_port: %d is not a port (0-65535, or -1 for off)", c.TCPPort))
	}
	for i, s := range c.NAT1To1IPs {
		if _, _, err := parseNATMapping(s); err != nil {
			errs = append(errs, fmt.Errorf("nat_1to1_ips[%d]: %w", i, err))
		}
	}
	if c.MaxBitrate != 0 && c.MaxBitrate < 100_000 || c.MaxBitrate > 100_000_000 {
		errs = append(errs, fmt.Errorf("max_bitrate: %d bits/s is out of range (100000-100000000, or 0 for the default)", c.MaxBitrate))
	}
	seen := map[string]bool{}
	for i, c := range c.Codecs {
		switch {
		case codecMimes[c] == "":
			errs = append(errs, fmt.Errorf("codecs[%d]: %q is not a codec Glovebox sends (want %q or %q)", i, c, CodecVP8, CodecH264))
		case seen[c]:
			errs = append(errs, fmt.Errorf("codecs[%d]: %q is listed twice", i, c))
		}
		seen[c] = true
	}
	return errors.Join(errs...)
}

// codecs returns the codecs in order of preference.
func (c *Config) codecs() []string {
	if len(c.Codecs) == 0 {
		return DefaultCodecs
	}
	return c.Codecs
}

// parseNATMapping parses "public" or "public/private".
func parseNATMapping(s string) (public, private string, err error) {
	public, private, _ = strings.Cut(strings.TrimSpace(s), "/")
	ip := net.ParseIP(public)
	if ip == nil || ip.IsUnspecified() {
		return "", "", fmt.Errorf("%q: not an IP address (want \"public\" or \"public/private\")", s)
	}
	if private != "" {
		pip := net.ParseIP(private)
		if pip == nil || pip.IsUnspecified() {
			return "", "", fmt.Errorf("%q: private part is not an IP address", s)
		}
		if (ip.To4() == nil) != (pip.To4() == nil) {
			return "", "", fmt.Errorf("%q: public and private addresses of different families", s)
		}
	}
	return public, private, nil
}

// ipFilter keeps the configured addresses, or all when none are configured,
// but never one of ExcludeNets. It is nil when it would keep everything.
func (c *Config) ipFilter() func(net.IP) bool {
	if len(c.Addresses) == 0 && len(c.ExcludeNets) == 0 {
		return nil
	}
	nets := slices.Clone(c.ExcludeNets)
	keep := map[netip.Addr]bool{}
	for _, a := range c.Addresses {
		if ip, err := netip.ParseAddr(a); err == nil {
			keep[ip] = true
		}
	}
	return func(ip net.IP) bool {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return false
		}
		a = a.Unmap()
		if len(keep) > 0 && !keep[a] {
			return false
		}
		for _, n := range nets {
			if n.Contains(a) {
				return false
			}
		}
		return true
	}
}

// interfaceFilter drops the interfaces named with a prefix of
// ExcludeInterfaces. It is nil when it would keep every interface.
func (c *Config) interfaceFilter() func(string) bool {
	if len(c.ExcludeInterfaces) == 0 {
		return nil
	}
	prefixes := slices.Clone(c.ExcludeInterfaces)
	return func(name string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(name, p) {
				return false
			}
		}
		return true
	}
}

// loopback reports whether loopback candidates are wanted.
func (c *Config) loopback() bool {
	for _, a := range c.Addresses {
		if ip := net.ParseIP(a); ip != nil && ip.IsLoopback() {
			return true
		}
	}
	return c.Loopback
}

func (c *Config) maxBitrate() int {
	if c.MaxBitrate == 0 {
		return DefaultMaxBitrate
	}
	return c.MaxBitrate
}
