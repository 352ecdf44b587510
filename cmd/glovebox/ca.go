package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/glovebox/glovebox/proxy"
	"github.com/glovebox/glovebox/proxy/tlsca"
)

// printCA writes the interception CA's certificate in PEM to stdout,
// generating the CA in tls.dir first if there is none yet, so that it can
// be installed in browsers before Glovebox ever runs.
func printCA(cfg Config, stdout, stderr io.Writer) error {
	ca, err := tlsca.Load(cfg.Proxy.TLS, newLogger(cfg.Log, stderr))
	if err != nil {
		return err
	}
	if _, err := stdout.Write(ca.CertPEM()); err != nil {
		return fmt.Errorf("write the CA certificate: %w", err)
	}
	return nil
}

// trustedCAs reads the certificates of tls.extra_ca_files and of every rule's
// ca_file, once each, for the isolated browsers to trust as the proxy does:
// their HTTPS goes through the egress proxy untouched, so they check sites'
// certificates themselves.
func trustedCAs(pc proxy.Config) ([][]byte, error) {
	var certs [][]byte
	add := func(key, path string) error {
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		n := 0
		for block, rest := pem.Decode(raw); block != nil; block, rest = pem.Decode(rest) {
			if block.Type != "CERTIFICATE" {
				continue
			}
			if _, err := x509.ParseCertificate(block.Bytes); err != nil {
				return fmt.Errorf("%s: %s: %w", key, path, err)
			}
			n++
			if !slices.ContainsFunc(certs, func(c []byte) bool { return bytes.Equal(c, block.Bytes) }) {
				certs = append(certs, block.Bytes)
			}
		}
		if n == 0 {
			return fmt.Errorf("%s: %s: no PEM certificates in it", key, path)
		}
		return nil
	}
	for i, f := range pc.TLS.ExtraCAFiles {
		if err := add(fmt.Sprintf("tls.extra_ca_files[%d]", i), f); err != nil {
			return nil, err
		}
	}
	for i, r := range pc.Policy.Rules {
		if r.CAFile == "" {
			continue
		}
		if err := add(fmt.Sprintf("policy.rules[%d].ca_file", i), r.CAFile); err != nil {
			return nil, err
		}
	}
	return certs, nil
}
