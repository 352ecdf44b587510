package main

import (
	"fmt"
	"io"

	"github.com/glovebox/glovebox/proxy"
)

// printCA writes the interception CA's certificate in PEM to stdout,
// generating the CA in tls.dir first if there is none yet, so that it can
// be installed in browsers before Glovebox ever runs.
func printCA(cfg Config, stdout, stderr io.Writer) error {
	ca, err := proxy.LoadCA(cfg.Proxy.TLS, newLogger(cfg.Log, stderr))
	if err != nil {
		return err
	}
	if _, err := stdout.Write(ca.CertPEM()); err != nil {
		return fmt.Errorf("write the CA certificate: %w", err)
	}
	return nil
}
