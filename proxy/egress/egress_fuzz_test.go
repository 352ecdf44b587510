package egress

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/glovebox/glovebox/proxy/internal/netcheck"
	"github.com/glovebox/glovebox/proxy/policy"
)

// readProxyRequest parses "METHOD target" as Go's server does a request
// an isolated browser sends to the egress.
func readProxyRequest(method, target string) (*http.Request, error) {
	return http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + target + " HTTP/1.1\r\nHost: h\r\n\r\n")))
}

// targetEgress is an egress that is not served, for vet: no allow_internal,
// no host addresses, and a resolver that answers a public address for
// every name and counts its calls.
func targetEgress(t testing.TB) (*Egress, *atomic.Int64) {
	t.Helper()
	pol, err := policy.New(allowAll)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(testEgressConfig(), pol, testLookup, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var lookups atomic.Int64
	e.resolve = func(context.Context, string) ([]netip.Addr, error) {
		lookups.Add(1)
		return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
	}
	e.host.List = func() ([]net.Addr, error) { return nil, nil }
	return e, &lookups
}

// TestEgressTargetForms: an address in any textual form a browser or
// inet_aton reads as one becomes its canonical form, and is judged (and
// refused) as that, without a lookup; a host that is neither an address nor
// a DNS name is a bad request.
func TestEgressTargetForms(t *testing.T) {
	e, lookups := targetEgress(t)
	tests := []struct {
		req  string
		host string // "" for a bad request
		port uint16
	}{
		{"CONNECT 127.1:443", "127.0.0.1", 443},
		{"CONNECT 0x7f.1:443", "127.0.0.1", 443},
		{"CONNECT 0X7F.0.0.1:443", "127.0.0.1", 443},
		{"CONNECT 0177.0.0.1:443", "127.0.0.1", 443},
		{"CONNECT 2130706433:443", "127.0.0.1", 443},
		{"CONNECT 0x7f000001:443", "127.0.0.1", 443},
		{"CONNECT 017700000001:443", "127.0.0.1", 443},
		{"CONNECT 127.0.0.1.:443", "127.0.0.1", 443},
		{"CONNECT 127.0x0.0.01:443", "127.0.0.1", 443},
		{"CONNECT 0xa9.0xfe.0xa9.0xfe:80", "169.254.169.254", 80},
		{"CONNECT 2852039166:80", "169.254.169.254", 80},
		{"CONNECT [::ffff:127.0.0.1]:443", "::ffff:127.0.0.1", 443},
		{"CONNECT [::FFFF:7F00:1]:443", "::ffff:127.0.0.1", 443},
		{"CONNECT [0:0:0:0:0:0:0:1]:443", "::1", 443},
		{"GET http://127.1/", "127.0.0.1", 80},
		{"GET http://0x7f.1:8080/x", "127.0.0.1", 8080},
		{"GET https://2130706433/", "127.0.0.1", 443},
		{"GET http://[::ffff:a9fe:a9fe]/", "::ffff:169.254.169.254", 80},
		{"CONNECT 0.0.0.0:443", "0.0.0.0", 443},
		{"CONNECT 0:443", "0.0.0.0", 443},
		{"CONNECT 1.2.3.4.5:443", "", 0},
		{"CONNECT 256.1:443", "", 0},
		{"CONNECT 1.16777216:443", "", 0},
		{"CONNECT 4294967296:443", "", 0},
		{"CONNECT 0x100000000:443", "", 0},
		{"CONNECT 08.1:443", "", 0},
		{"CONNECT foo.0x:443", "", 0},
		{"CONNECT example.123:443", "", 0},
		{"CONNECT a!b.test:443", "", 0},
		{"CONNECT caf%C3%A9.test:443", "", 0},
		{"CONNECT a..b:443", "", 0},
		{"GET http://" + strings.Repeat("a", 64) + ".test/", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.req, func(t *testing.T) {
			method, target, _ := strings.Cut(tt.req, " ")
			r, err := readProxyRequest(method, target)
			if err != nil {
				t.Fatal(err)
			}
			host, port, err := egressTarget(r)
			if tt.host == "" {
				if err == nil {
					t.Fatalf("egressTarget = %q %d, want a bad request", host, port)
				}
				return
			}
			if err != nil || host != tt.host || port != tt.port {
				t.Fatalf("egressTarget = %q %d %v, want %q %d", host, port, err, tt.host, tt.port)
			}
			lookups.Store(0)
			if _, err := e.vet(context.Background(), host, port); !errors.Is(err, ErrInternalAddress) {
				t.Errorf("vet: %v, want refused as internal", err)
			}
			if n := lookups.Load(); n != 0 {
				t.Errorf("%d lookups for an address", n)
			}
		})
	}
	// Names stay names, checked by what they resolve to.
	for _, target := range []string{"Example.COM.:443", "under_score.test:443", "xn--caf-dma.test:443", "0a.test:443", "1.2.3.example:443"} {
		r, _ := readProxyRequest("CONNECT", target)
		if host, _, err := egressTarget(r); err != nil || host+":443" != target {
			t.Errorf("%s: %q %v, want the name as it is", target, host, err)
		}
	}
}

// FuzzEgressTarget: whatever the request target, egressTarget does not
// panic; what it accepts has a port 1–65535 and a host that is an address
// in canonical form or a DNS name that cannot be read as an address; and an
// address is judged without a lookup, as its canonical form and its
// unmapped IPv4 form are, refused exactly when it is internal.
func FuzzEgressTarget(f *testing.F) {
	// The seeds are in testdata/fuzz/FuzzEgressTarget.
	e, lookups := targetEgress(f)
	ctx := context.Background()
	refused := func(host string, port uint16) bool {
		_, err := e.vet(ctx, host, port)
		return errors.Is(err, ErrInternalAddress)
	}
	f.Fuzz(func(t *testing.T, connect bool, target string) {
		method := http.MethodGet
		if connect {
			method = http.MethodConnect
		}
		r, err := readProxyRequest(method, target)
		if err != nil {
			return
		}
		host, port, err := egressTarget(r)
		if err != nil {
			return
		}
		if port == 0 {
			t.Fatalf("%s %q: port 0 accepted", method, target)
		}
		a, aerr := netip.ParseAddr(host)
		if aerr != nil {
			if !netcheck.ValidHostname(strings.TrimSuffix(host, ".")) || netcheck.EndsInNumber(host) {
				t.Fatalf("%s %q: host %q is neither an address nor a DNS name", method, target, host)
			}
			return
		}
		if a.String() != host {
			t.Fatalf("%s %q: address %q, want the canonical %q", method, target, host, a)
		}
		lookups.Store(0)
		verdict := refused(host, port)
		if n := lookups.Load(); n != 0 {
			t.Fatalf("%s %q: %d lookups for the address %s", method, target, n, host)
		}
		if internal := netcheck.InternalReason(a) != "" || netcheck.IsMetadata(a); verdict != internal {
			t.Fatalf("%s %q: %s refused %v, want %v", method, target, host, verdict, internal)
		}
		if a.Is4In6() && refused(a.Unmap().String(), port) != verdict {
			t.Fatalf("%s %q: %s and %s judged differently", method, target, host, a.Unmap())
		}
		if a.Zone() != "" {
			return // a zone does not survive a URL unescaped
		}
		r2, err := readProxyRequest(http.MethodConnect, netip.AddrPortFrom(a, port).String())
		if err != nil {
			t.Fatalf("canonical form of %q: %v", target, err)
		}
		if h2, p2, err := egressTarget(r2); err != nil || h2 != host || p2 != port || refused(h2, p2) != verdict {
			t.Fatalf("%s %q: canonical form %s:%d read as %q %d %v", method, target, host, port, h2, p2, err)
		}
	})
}
