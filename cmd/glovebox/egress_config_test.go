package main

import "testing"

// TestEgressConfigWiring: the egress proxy gets the front proxy's parent
// and auth.header, whose header it removes from the isolated browsers'
// requests.
func TestEgressConfigWiring(t *testing.T) {
	c := defaultConfig()
	c.Proxy.Auth.Header = "X-Remote-User"
	c.Proxy.Upstream.Proxy = "http://proxy.corp:3128"
	c.Proxy.Upstream.Direct = []string{"corp.example"}
	e := c.egressConfig()
	if e.AuthHeader != "X-Remote-User" {
		t.Errorf("egress AuthHeader %q, want auth.header's X-Remote-User", e.AuthHeader)
	}
	if e.Upstream != "http://proxy.corp:3128" || len(e.Direct) != 1 || e.Direct[0] != "corp.example" {
		t.Errorf("egress upstream %q direct %q, want upstream.proxy's and upstream.direct's", e.Upstream, e.Direct)
	}
}
