package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/glovebox/glovebox/isolate"
	"github.com/glovebox/glovebox/isolate/netns"
	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/egress"
	"github.com/glovebox/glovebox/proxy/policy"
)

// startContainerd starts the containerd runtime with what it needs: the
// egress proxy (listening and serving), the containers' network and the
// runtime itself, which trusts the configured CAs. lookup maps a
// container's address to its tab for the egress. stop takes them down in
// reverse order; after an error nothing is left running.
func startContainerd(ctx context.Context, cfg Config, pol *policy.Policy, lookup egress.TabLookup, warm func(string) bool,
	aud *audit.Audit, log *slog.Logger) (_ *isolate.Containerd, stop func(), retErr error) {
	var undo []func()
	stop = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if retErr != nil {
			stop()
		}
	}()

	eport, estop, err := startEgress(ctx, cfg, pol, lookup, warm, aud, log)
	if err != nil {
		return nil, nil, err
	}
	// The egress serves until the tabs are gone: it is stopped last.
	undo = append(undo, estop)
	ncfg := cfg.Isolate.Network
	ncfg.EgressPort = eport
	nw, err := netns.New(ncfg, log)
	if err != nil {
		return nil, nil, fmt.Errorf("container network: %w", err)
	}
	undo = append(undo, func() { nw.Close() })
	ccfg := cfg.Isolate.Containerd
	if ccfg.TrustedCAs, err = trustedCAs(cfg.Proxy); err != nil {
		return nil, nil, err
	}
	c, err := isolate.NewContainerd(ctx, ccfg, nw, log)
	if err != nil {
		return nil, nil, fmt.Errorf("start containerd runtime: %w", err)
	}
	undo = append(undo, func() { c.Close() })
	return c, stop, nil
}

// startEgress starts the egress proxy on egress.port (all addresses: the
// containers' veths, or the pod network) and returns its port and the
// func that stops it.
func startEgress(ctx context.Context, cfg Config, pol *policy.Policy, lookup egress.TabLookup, warm func(string) bool,
	aud *audit.Audit, log *slog.Logger) (port int, stop func(), err error) {
	eln, err := net.Listen("tcp", fmt.Sprintf(":%d", cfg.Egress.Port))
	if err != nil {
		return 0, nil, fmt.Errorf("egress.port: listen: %w", err)
	}
	eg, err := egress.New(cfg.egressConfig(), pol, lookup, aud, log)
	if err != nil {
		eln.Close()
		return 0, nil, err
	}
	eg.Warm = warm
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := eg.Serve(ectx, eln); err != nil {
			log.Error("egress proxy stopped", "component", "egress", "err", err)
		}
	}()
	return eln.Addr().(*net.TCPAddr).Port, func() { cancel(); <-done; eln.Close() }, nil
}

// startKubernetes starts the Kubernetes runtime and the egress proxy its
// pods' relays reach.
func startKubernetes(ctx context.Context, cfg Config, pol *policy.Policy, lookup egress.TabLookup, warm func(string) bool,
	aud *audit.Audit, log *slog.Logger) (_ *isolate.Kubernetes, stop func(), retErr error) {
	eport, estop, err := startEgress(ctx, cfg, pol, lookup, warm, aud, log)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if retErr != nil {
			estop()
		}
	}()
	kcfg := cfg.Isolate.Kubernetes
	cas, err := trustedCAs(cfg.Proxy)
	if err != nil {
		return nil, nil, err
	}
	rc, err := isolate.KubeClientConfig(kcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("isolate.kubernetes: %w", err)
	}
	k, err := isolate.NewKubernetes(ctx, kcfg, rc, eport, cas, log)
	if err != nil {
		return nil, nil, fmt.Errorf("start kubernetes runtime: %w", err)
	}
	return k, func() { k.Close(); estop() }, nil
}
