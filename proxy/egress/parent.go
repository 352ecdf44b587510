package egress

import "github.com/glovebox/glovebox/proxy/upstream"

// EgressUpstreamDirect is the egress.upstream value that sends the isolated
// browsers' traffic direct even when upstream.proxy names a parent.
const UpstreamDirect = "direct"

// WithParent resolves the egress proxy's parent against the proxy's own:
// an empty egress.upstream inherits upstream.proxy, "direct" means none.
// Whichever parent the egress uses, upstream.direct's exceptions apply:
// they say which destinations this host reaches without a parent.
func (c Config) WithParent(up upstream.Config) Config {
	switch c.Upstream {
	case "":
		c.Upstream = up.Proxy
	case UpstreamDirect:
		c.Upstream = ""
	}
	c.Direct = up.Direct
	return c
}

// egressParent is egress.upstream as a URL or "": "direct" is none. The
// wiring has already replaced "" by upstream.proxy (WithParent).
func egressParent(s string) string {
	if s == UpstreamDirect {
		return ""
	}
	return s
}
