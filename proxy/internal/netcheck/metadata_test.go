package netcheck

import (
	"net/netip"
	"testing"
)

func TestIsMetadata(t *testing.T) {
	metadata := []string{
		"169.254.169.254", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1",
		"169.254.170.2", "169.254.170.23", "169.254.0.23", "100.100.100.200", "168.63.129.16", "192.0.0.192",
		"fd00:ec2::254", "fd00:ec2::254%eth0", "fd00:ec2::23",
	}
	other := []string{"169.254.169.253", "168.63.129.17", "8.8.8.8", "10.0.0.1", "fd00:ec2::255", "::1"}
	for _, s := range metadata {
		if !IsMetadata(netip.MustParseAddr(s)) {
			t.Errorf("%s: not metadata, want metadata", s)
		}
	}
	for _, s := range other {
		if IsMetadata(netip.MustParseAddr(s)) {
			t.Errorf("%s: metadata, want not", s)
		}
	}
	// The metadata addresses in internal ranges are refused by those too,
	// without allow_internal; Azure's WireServer only by the metadata list.
	for _, s := range []string{"169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2"} {
		if InternalReason(netip.MustParseAddr(s)) == "" {
			t.Errorf("%s: not internal", s)
		}
	}
}

func TestParseDenyPrefix(t *testing.T) {
	good := map[string]string{
		"10.0.0.0/8":          "10.0.0.0/8",
		"10.1.2.3/8":          "10.0.0.0/8",
		"168.63.129.16":       "168.63.129.16/32",
		"[fd00::1]":           "fd00::1/128",
		"fd00::/8":            "fd00::/8",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
		"::ffff:10.0.0.1":     "10.0.0.1/32",
	}
	for in, want := range good {
		p, err := ParseDenyPrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("%q: %v, %v, want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", "wiki.corp", "10.0.0.0/33", "fd00::/129", "::ffff:10.0.0.0/8", "fe80::1%eth0", "10.0.0.0/8 "} {
		if p, err := ParseDenyPrefix(in); err == nil {
			t.Errorf("%q: %v, want an error", in, p)
		}
	}
}
