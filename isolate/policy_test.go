package isolate

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

func TestPolicyJSON(t *testing.T) {
	tests := []struct {
		name  string
		cas   [][]byte
		wantC []string // CACertificates; nil: not set
	}{
		{name: "no CA"},
		{name: "two CAs", cas: [][]byte{{1, 2, 3}, {4, 5}}, wantC: []string{"AQID", "BAU="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := policyJSON(tt.cas)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("not JSON: %v: %s", err, b)
			}
			if got["SSLErrorOverrideAllowed"] != false || got["BrowserSignin"] != float64(0) || got["DnsOverHttpsMode"] != "off" ||
				got["WebRtcIPHandling"] != "disable_non_proxied_udp" {
				t.Errorf("policies %v", got)
			}
			want := len(browserPolicies)
			if tt.wantC != nil {
				want++ // CACertificates
			}
			if len(got) != want {
				t.Errorf("%d policies, want %d", len(got), want)
			}
			certs, _ := got["CACertificates"].([]any)
			if len(certs) != len(tt.wantC) {
				t.Fatalf("CACertificates = %v, want %v", got["CACertificates"], tt.wantC)
			}
			for i, c := range certs {
				if c != tt.wantC[i] {
					t.Errorf("CACertificates[%d] = %v, want %s", i, c, tt.wantC[i])
				}
				if _, err := base64.StdEncoding.DecodeString(c.(string)); err != nil {
					t.Errorf("CACertificates[%d]: %v", i, err)
				}
			}
		})
	}
	// browserPolicies itself is never changed.
	if _, ok := browserPolicies["CACertificates"]; ok {
		t.Error("policyJSON wrote CACertificates into browserPolicies")
	}
}

func TestContainerdConfigTrustedCAs(t *testing.T) {
	cfg := DefaultContainerdConfig()
	cfg.TrustedCAs = [][]byte{[]byte("not a certificate")}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "trusted CA 0") {
		t.Errorf("Validate = %v, want an error naming trusted CA 0", err)
	}
}
