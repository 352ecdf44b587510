// Package pac makes Glovebox's proxy auto-configuration file from the pac
// settings and serves it. It imports no other Glovebox package.
package pac

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// PACConfig shapes the proxy auto-configuration file served at /proxy.pac
// (and /wpad.dat) on the proxy's own address.
type Config struct {
	// Proxy is Glovebox's address as clients reach it, host:port. Empty: the
	// host and port the PAC file was fetched from, which is right unless a
	// load balancer or NAT stands between.
	Proxy string `mapstructure:"proxy"`
	// Direct lists what browsers reach without Glovebox: a host or domain
	// name matches itself and every name below it ("corp.example" matches
	// wiki.corp.example), an IP address matches itself, an IPv4 CIDR
	// ("10.20.0.0/16") matches IPv4 addresses in it.
	Direct []string `mapstructure:"direct"`
	// DirectPrivate sends plain host names (no dot) and loopback, private and
	// link-local IP addresses direct as well.
	DirectPrivate bool `mapstructure:"direct_private"`
}

// DefaultPACConfig returns the defaults documented in config.yaml.
func DefaultConfig() Config {
	return Config{DirectPrivate: true}
}

// Validate reports the first bad value, naming its key. Values end up in a
// script that every browser runs, so only well-formed names and addresses
// are accepted.
func (c *Config) Validate() error {
	var errs []error
	if c.Proxy != "" {
		_, _, err := net.SplitHostPort(c.Proxy)
		if _, ok := pacProxyAddr(c.Proxy); !ok || err != nil {
			errs = append(errs, fmt.Errorf("pac.proxy: %q: want host:port as clients reach Glovebox", c.Proxy))
		}
	}
	for i, d := range c.Direct {
		if _, err := parsePACDirect(d); err != nil {
			errs = append(errs, fmt.Errorf("pac.direct[%d]: %q: %v", i, d, err))
		}
	}
	return errors.Join(errs...)
}

// pacDirect is one pac.direct entry, in the form the script uses.
type pacDirect struct {
	domain string       // a name: itself and below
	ip     string       // an address, canonical
	net    netip.Prefix // an IPv4 range
}

var hostLabel = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$`)

// validHostName reports whether h (lowercase) is a DNS name made of labels.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if !hostLabel.MatchString(l) {
			return false
		}
	}
	return true
}

func parsePACDirect(s string) (pacDirect, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if p, err := netip.ParsePrefix(s); err == nil {
		if !p.Addr().Is4() {
			return pacDirect{}, fmt.Errorf("only IPv4 ranges are supported; list IPv6 addresses one by one")
		}
		return pacDirect{net: p.Masked()}, nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		// A zone is any text after "%", and browsers give FindProxyForURL
		// hosts without one.
		if a.Zone() != "" {
			return pacDirect{}, fmt.Errorf("an IPv6 zone (%%%s) is not an address browsers ask for", a.Zone())
		}
		return pacDirect{ip: a.Unmap().String()}, nil
	}
	name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(s, "*"), "."), ".")
	if !validHostName(name) {
		return pacDirect{}, fmt.Errorf("want a host or domain name, an IP address or an IPv4 CIDR")
	}
	return pacDirect{domain: name}, nil
}

// pacProxyAddr checks and normalises a host[:port] for the PROXY directive;
// the port defaults to 80, as in the URL the PAC file was fetched by.
func pacProxyAddr(hostport string) (string, bool) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, "80"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", false
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return "", false
		}
		return net.JoinHostPort(a.String(), strconv.Itoa(n)), true
	}
	if !validHostName(strings.TrimSuffix(host, ".")) {
		return "", false
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), true
}

// pacMaxAge is how long browsers may cache the PAC file: short, so that a
// configuration change reaches them soon.
const pacMaxAge = 300

// Handler answers /proxy.pac and /wpad.dat with c's PAC file. No
// credentials are asked: browsers fetch it before they know any.
func Handler(c Config, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "GET the PAC file", http.StatusMethodNotAllowed)
			return
		}
		addr := c.Proxy
		if addr == "" {
			addr = pacAddrFor(r)
		}
		script, err := c.Script(addr)
		if err != nil {
			log.Warn("PAC file", "err", err)
			http.Error(w, "Glovebox cannot make its PAC file: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-ns-proxy-autoconfig")
		w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", pacMaxAge))
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Length", strconv.Itoa(len(script)))
		if r.Method == http.MethodHead {
			return
		}
		w.Write(script)
	})
}

// pacAddrFor is the proxy address a PAC request reached: its Host header
// when that is a well-formed host[:port] (it goes into the script), else
// the local address of the connection.
func pacAddrFor(r *http.Request) string {
	if a, ok := pacProxyAddr(r.Host); ok {
		return a
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if a, ok := pacProxyAddr(la.String()); ok {
			return a
		}
	}
	return "127.0.0.1:3128"
}

// Script is the PAC file for a proxy reached at proxyAddr (host:port). It
// uses none of PAC's helper functions, so no name is ever resolved to pick
// a route and every browser runs the same logic. There is no DIRECT
// fallback after the proxy: if Glovebox is down, browsing that policy
// isolates fails rather than silently going direct.
func (c Config) Script(proxyAddr string) ([]byte, error) {
	addr, ok := pacProxyAddr(proxyAddr)
	if !ok {
		return nil, fmt.Errorf("proxy address %q: want host:port", proxyAddr)
	}
	domains, ips, nets := []string{}, []string{}, [][2]any{}
	for i, d := range c.Direct {
		e, err := parsePACDirect(d)
		if err != nil {
			return nil, fmt.Errorf("pac.direct[%d]: %q: %v", i, d, err)
		}
		switch {
		case e.domain != "":
			domains = append(domains, e.domain)
		case e.ip != "":
			ips = append(ips, e.ip)
		default:
			nets = append(nets, [2]any{e.net.Addr().String(), e.net.Bits()})
		}
	}
	// Every value reaches the script as a JSON literal, which is a valid
	// JavaScript literal and cannot end the string it is in.
	js := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	var b strings.Builder
	b.WriteString("// Proxy auto-configuration for Glovebox, made from its pac settings.\n")
	b.WriteString("// Everything goes through Glovebox except what is listed as direct.\n")
	fmt.Fprintf(&b, "var GLOVEBOX = %s;\n", js("PROXY "+addr))
	fmt.Fprintf(&b, "var DIRECT_DOMAINS = %s;\n", js(domains))
	fmt.Fprintf(&b, "var DIRECT_IPS = %s;\n", js(ips))
	fmt.Fprintf(&b, "var DIRECT_NETS = %s;\n", js(nets))
	fmt.Fprintf(&b, "var DIRECT_PRIVATE = %t;\n", c.DirectPrivate)
	b.WriteString(pacLogic)
	return []byte(b.String()), nil
}

// pacLogic is the fixed part of the script; only the variables above it
// change with the configuration.
const pacLogic = `
function gbIPv4(h) {
  var m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  if (!m) return -1;
  var n = 0;
  for (var i = 1; i <= 4; i++) {
    var o = parseInt(m[i], 10);
    if (o > 255) return -1;
    n = n * 256 + o;
  }
  return n;
}

function gbInNet(ip, net, bits) {
  var size = Math.pow(2, 32 - bits);
  return Math.floor(ip / size) == Math.floor(gbIPv4(net) / size);
}

function gbPrivate(host, ip) {
  if (host.indexOf(".") < 0 && host.indexOf(":") < 0) return true;
  if (host == "localhost" || /\.localhost$/.test(host)) return true;
  if (ip >= 0) {
    return gbInNet(ip, "127.0.0.0", 8) || gbInNet(ip, "10.0.0.0", 8) ||
      gbInNet(ip, "172.16.0.0", 12) || gbInNet(ip, "192.168.0.0", 16) ||
      gbInNet(ip, "169.254.0.0", 16);
  }
  return host == "::1" || /^f[cd][0-9a-f]{0,2}:/.test(host) || /^fe[89ab][0-9a-f]?:/.test(host);
}

function FindProxyForURL(url, host) {
  host = host.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "");
  var ip = gbIPv4(host);
  if (DIRECT_PRIVATE && gbPrivate(host, ip)) return "DIRECT";
  for (var i = 0; i < DIRECT_DOMAINS.length; i++) {
    var d = DIRECT_DOMAINS[i];
    if (host == d || host.slice(-d.length - 1) == "." + d) return "DIRECT";
  }
  for (var i = 0; i < DIRECT_IPS.length; i++) {
    if (host == DIRECT_IPS[i]) return "DIRECT";
  }
  if (ip >= 0) {
    for (var i = 0; i < DIRECT_NETS.length; i++) {
      if (gbInNet(ip, DIRECT_NETS[i][0], DIRECT_NETS[i][1])) return "DIRECT";
    }
  }
  return GLOVEBOX;
}
`
