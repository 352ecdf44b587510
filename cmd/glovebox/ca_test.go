package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/glovebox/glovebox/proxy"
	"github.com/glovebox/glovebox/proxy/policy"
)

func TestTrustedCAs(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data ...[]byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, slices.Concat(data...), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caA, caB, caC := newTestCA(t, "A"), newTestCA(t, "B"), newTestCA(t, "C")
	derA, derB, derC := caA.cert.Raw, caB.cert.Raw, caC.cert.Raw
	pemA, pemB, pemC := caA.pem, caB.pem, caC.pem
	key := []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
	ab := write("ab.pem", pemA, key, pemB)
	c := write("c.pem", pemC)
	a := write("a.pem", pemA)
	empty := write("empty.pem", key)
	tests := []struct {
		name    string
		extra   []string
		rules   []policy.Rule
		want    [][]byte
		wantErr string
	}{
		{name: "none"},
		{name: "extra and rules, once each", extra: []string{ab},
			rules: []policy.Rule{{Host: "x", Action: policy.ActionBlock}, {Host: "a", Action: policy.ActionAllow, CAFile: a}, {Host: "c", Action: policy.ActionAllow, CAFile: c}},
			want:  [][]byte{derA, derB, derC}},
		{name: "missing extra file", extra: []string{ab, filepath.Join(dir, "nope.pem")}, wantErr: "tls.extra_ca_files[1]"},
		{name: "no certificate in a rule's file", rules: []policy.Rule{{Host: "a", Action: policy.ActionAllow, CAFile: empty}}, wantErr: "policy.rules[0].ca_file: " + empty + ": no PEM certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc := proxy.DefaultConfig()
			pc.TLS.ExtraCAFiles = tt.extra
			pc.Policy.Rules = tt.rules
			got, err := trustedCAs(pc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("trustedCAs = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("trustedCAs = %d certificates, want %d in order", len(got), len(tt.want))
			}
		})
	}
}
