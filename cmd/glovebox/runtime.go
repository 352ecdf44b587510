package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/glovebox/glovebox/isolate"
	"github.com/glovebox/glovebox/isolate/netns"
	"github.com/glovebox/glovebox/proxy"
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

// kubePeers is the Kubernetes directory of replicas as the proxy reads it.
type kubePeers struct{ *isolate.KubePeers }

func (k kubePeers) Live() []proxy.Peer {
	var out []proxy.Peer
	for _, p := range k.KubePeers.Live() {
		out = append(out, proxy.Peer{ID: p.Name, Addr: p.Addr, Key: p.Key, Media: p.Media})
	}
	return out
}

// startPeers makes this replica known to the others of its Deployment
// when it runs as one (isolate.kubernetes.peer_port set and the pod named):
// its peer certificate, the listener they forward to, its entry on its
// pod. It returns nil peers when forwarding is off.
func startPeers(ctx context.Context, cfg Config, log *slog.Logger) (proxy.Peers, tls.Certificate, net.Listener, func(), error) {
	kcfg := cfg.Isolate.Kubernetes
	if kcfg.OwnerName == "" {
		kcfg.OwnerName, kcfg.OwnerUID = os.Getenv("POD_NAME"), os.Getenv("POD_UID")
	}
	if kcfg.PeerPort == 0 || kcfg.OwnerName == "" {
		return nil, tls.Certificate{}, nil, nil, nil
	}
	podIP, err := netip.ParseAddr(os.Getenv("POD_IP"))
	if err != nil {
		return nil, tls.Certificate{}, nil, nil, fmt.Errorf("isolate.kubernetes.peer_port: the replica's address: POD_IP: %w", err)
	}
	cert, err := proxy.NewPeerCert(kcfg.OwnerName)
	if err != nil {
		return nil, tls.Certificate{}, nil, nil, fmt.Errorf("peer certificate: %w", err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", kcfg.PeerPort))
	if err != nil {
		return nil, tls.Certificate{}, nil, nil, fmt.Errorf("isolate.kubernetes.peer_port: listen: %w", err)
	}
	// Users reach this replica's media at its announced addresses, else
	// at its pod's.
	media := []netip.Addr{podIP.Unmap()}
	if len(cfg.Stream.NAT1To1IPs) > 0 {
		media = nil
		for _, m := range cfg.Stream.NAT1To1IPs {
			public, _, _ := strings.Cut(m, "/")
			if ip, err := netip.ParseAddr(public); err == nil {
				media = append(media, ip.Unmap())
			}
		}
	}
	rc, err := isolate.KubeClientConfig(kcfg)
	if err != nil {
		ln.Close()
		return nil, tls.Certificate{}, nil, nil, fmt.Errorf("isolate.kubernetes: %w", err)
	}
	kp, err := isolate.NewKubePeers(ctx, kcfg, rc, isolate.PublishPeer{
		Key: proxy.KeySum(cert.Leaf), Addr: net.JoinHostPort(podIP.String(), strconv.Itoa(kcfg.PeerPort)), Media: media,
	}, log)
	if err != nil {
		ln.Close()
		return nil, tls.Certificate{}, nil, nil, err
	}
	return kubePeers{kp}, cert, ln, func() { kp.Close(); ln.Close() }, nil
}
