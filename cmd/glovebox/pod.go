package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/pflag"

	"github.com/glovebox/glovebox/isolate"
	"github.com/glovebox/glovebox/isolate/podnet"
	"github.com/glovebox/glovebox/isolate/podrelay"
)

// podCommands run inside a browser pod of the Kubernetes runtime, or
// prepare its nodes; they read no configuration file.
var podCommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"pod-relay":       podRelay,
	"pod-netlock":     podNetlock,
	"seccomp-profile": seccompProfile,
}

// podRelay is the relay container: podrelay with the pod's identity from
// its environment (the pod's Secret).
func podRelay(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := pflag.NewFlagSet("pod-relay", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":9443", "the relay's TLS address")
	proxy := fs.String("proxy", "127.0.0.1:3128", "the browser's proxy address (loopback)")
	devtools := fs.String("devtools", "127.0.0.1:9222", "Chromium's DevTools address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cert, err := tls.X509KeyPair([]byte(os.Getenv(isolate.EnvRelayCert)), []byte(os.Getenv(isolate.EnvRelayKey)))
	if err != nil {
		return fmt.Errorf("pod-relay: the pod's certificate (%s, %s): %w", isolate.EnvRelayCert, isolate.EnvRelayKey, err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	r, err := podrelay.Listen(podrelay.Config{Listen: *listen, Proxy: *proxy, DevTools: *devtools, Cert: cert,
		Token: os.Getenv(isolate.EnvRelayToken), Log: log})
	if err != nil {
		return err
	}
	log.Info("relay listening", "addr", r.Addr().String(), "proxy", r.ProxyAddr().String())
	return r.Serve(ctx)
}

// podNetlock is the init container: it locks the pod's network namespace.
func podNetlock(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("pod-netlock", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var r podnet.Rules
	fs.IntVar(&r.RelayPort, "relay-port", 9443, "the relay's TLS port, the only one open")
	fs.IntVar(&r.RelayUID, "relay-uid", 1001, "the relay's user, the only one that may connect out")
	fs.IntVar(&r.EgressPort, "egress-port", 0, "the egress proxy's port, the only one it may connect to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := podnet.Lock(r); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pod network locked: relay port %d, relay uid %d to egress port %d only\n", r.RelayPort, r.RelayUID, r.EgressPort)
	return nil
}

// seccompProfile prints the browser container's seccomp profile, for
// /var/lib/kubelet/seccomp/glovebox/chromium.json on every node.
func seccompProfile(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return errors.New("seccomp-profile takes no arguments")
	}
	p, err := isolate.KubeSeccompProfile()
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}
