// Command glovebox is the Glovebox browser isolation proxy.
//
//	glovebox serve --config config.yaml   run the proxy
//	glovebox check --config config.yaml   check a configuration and exit
//	glovebox ca --config config.yaml      print the interception CA's certificate
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/glovebox/glovebox/isolate"
	"github.com/glovebox/glovebox/isolate/netns"
	"github.com/glovebox/glovebox/proxy"
	"github.com/glovebox/glovebox/proxy/audit"
	"github.com/glovebox/glovebox/proxy/console"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/tab"
	"github.com/glovebox/glovebox/stream"
	"github.com/glovebox/glovebox/stream/record"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "glovebox:", err)
		os.Exit(1)
	}
}

const usage = `usage: glovebox <command> [flags]

commands:
  serve   run the proxy
  check   check the configuration and exit
  ca      print the HTTPS interception CA's certificate (PEM), creating the CA if there is none

Kubernetes (see README, "Running on Kubernetes"):
  seccomp-profile  print the browser pods' seccomp profile, for each node's kubelet
  pod-relay        a browser pod's relay container (set up by the kubernetes runtime)
  pod-netlock      a browser pod's init container: lock its network

flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if pc, ok := podCommands[args[0]]; ok {
			return pc(ctx, args[1:], stdout, stderr)
		}
	}
	fs := pflag.NewFlagSet("glovebox", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "path of the configuration file (YAML)")
	fs.String("listen", "", "proxy listen address, overrides the config's listen")
	fs.String("log-level", "", "debug, info, warn or error, overrides log.level")
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	if len(args) == 0 {
		fs.Usage()
		return errors.New("no command given")
	}
	cmd := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath, fs)
	if err != nil {
		return err
	}
	switch cmd {
	case "check":
		fmt.Fprintln(stdout, "configuration ok")
		return nil
	case "serve":
		return serve(ctx, cfg, stdout, stderr, nil)
	case "ca":
		return printCA(cfg, stdout, stderr)
	default:
		fs.Usage()
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// serveHooks lets tests learn the address and reach the server.
type serveHooks struct {
	ready func(addr net.Addr, srv *proxy.Server, pool *isolate.Pool)
}

// serve wires the packages and runs until ctx is done. Start order: stream,
// runtime, proxy; shutdown in reverse.
func serve(ctx context.Context, cfg Config, stdout, stderr io.Writer, hooks *serveHooks) (retErr error) {
	log := newLogger(cfg.Log, stderr)
	auditW, err := openAudit(cfg.Audit.Output, stdout, stderr)
	if err != nil {
		return err
	}
	defer auditW.Close()
	aud := audit.New(auditW)
	metrics := audit.NewMetrics()
	aud.Metrics = metrics
	aud.ClipboardContent = cfg.Audit.ClipboardContent
	sinks, err := audit.OpenSinks(cfg.Audit.Sinks, version, stdout, stderr, metrics, log.With("component", "audit"))
	if err != nil {
		return err
	}
	// Closed last: what the shutdown logs (tab_end) is written first.
	defer sinks.Close(cfg.ShutdownGrace)
	aud.AddSinks(sinks)
	// The console's recent events, from the first.
	var recent *console.Ring
	if cfg.Admin.Listen != "" {
		recent = console.NewRing(cfg.Admin.Console.RecentEvents)
		aud.AddTap(recent.Add)
	}
	// SIGHUP: the audit files start anew at their paths (after logrotate
	// moved them away).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			err := errors.Join(auditW.Reopen(), sinks.Reopen())
			if err != nil {
				log.Error("SIGHUP: audit files not reopened", "component", "audit", "err", err)
				continue
			}
			log.Info("SIGHUP: audit files reopened", "component", "audit")
		}
	}()

	st, err := stream.NewServer(streamConfig(cfg), log)
	if err != nil {
		return fmt.Errorf("start WebRTC: %w", err)
	}
	defer st.Close()

	// One policy for the proxy and the egress, compiled once.
	pol, err := policy.New(cfg.Proxy.PolicyConfig())
	if err != nil {
		return err
	}
	// The egress proxy knows the containers' tabs through the proxy server,
	// made last: until then (and it is read from the egress's goroutines)
	// no browser is a known tab.
	var srvp atomic.Pointer[proxy.Server]
	lookup := func(ip string) (string, string, bool) {
		if s := srvp.Load(); s != nil {
			return s.LookupTab(ip)
		}
		return "", "", false
	}
	// And the warm browsers through the pool, made after the runtime.
	var poolp atomic.Pointer[warmPool]
	warm := func(ip string) bool {
		p := poolp.Load()
		return p != nil && (*p).Holds(ip)
	}
	var starter isolate.Starter
	switch cfg.Isolate.Runtime {
	case "containerd":
		c, stop, err := startContainerd(ctx, cfg, pol, lookup, warm, aud, log)
		if err != nil {
			return err
		}
		defer stop()
		starter = c
	case "kubernetes":
		k, stop, err := startKubernetes(ctx, cfg, pol, lookup, warm, aud, log)
		if err != nil {
			return err
		}
		defer stop()
		starter = k
	case "process":
		p, err := isolate.NewProcess(cfg.Isolate.Process, log)
		if err != nil {
			return fmt.Errorf("start process runtime: %w", err)
		}
		defer p.Close()
		starter = p
	default:
		return fmt.Errorf("isolate.runtime: %q is not available", cfg.Isolate.Runtime)
	}
	var iso tab.Isolator = starter
	var pool warmPool
	if cfg.Isolate.Pool.Size > 0 {
		pcfg := cfg.Isolate.Pool
		pcfg.Scale = cfg.Proxy.Tabs.MaxScale
		if k, ok := starter.(*isolate.Kubernetes); ok {
			// The replicas share one pool of pods.
			kp, err := isolate.NewKubePool(ctx, k, pcfg, log)
			if err != nil {
				return fmt.Errorf("warm pool: %w", err)
			}
			pool = kp
		} else {
			pool = isolate.NewPool(starter, pcfg, log)
		}
		defer pool.Close()
		poolp.Store(&pool)
		iso = pool
	}

	pcfg := cfg.Proxy
	if a, ok := st.TCPAddr().(*net.TCPAddr); ok {
		pcfg.MediaTCPPort = a.Port
	}
	for _, m := range cfg.Stream.NAT1To1IPs {
		public, _, _ := strings.Cut(m, "/")
		pcfg.MediaAddrs = append(pcfg.MediaAddrs, public)
	}
	if cfg.Isolate.Runtime == "containerd" {
		if p, err := netip.ParsePrefix(cfg.Isolate.Network.Subnet); err == nil {
			pcfg.LocalNets = append(pcfg.LocalNets, p.Masked())
		}
	}
	pcfg.Compiled = pol
	var peerLn net.Listener
	if cfg.Isolate.Runtime == "kubernetes" {
		peers, cert, ln, stop, err := startPeers(ctx, cfg, log)
		if err != nil {
			return err
		}
		if peers != nil {
			defer stop()
			pcfg.Peers, pcfg.PeerCert, peerLn = peers, cert, ln
		}
	}
	recs := record.NewStore(cfg.Recording, log)
	if pol.Records() {
		// An unusable directory stops no tab: each recorded one says in
		// tab_end that its recording failed.
		if err := recs.Prepare(); err != nil {
			log.Error("recordings: the directory is unusable, recorded tabs will not be", "component", "record", "err", err)
		}
		go recs.Run(ctx)
	}
	pcfg.Tabs.Recorder = recs
	srv, err := proxy.New(pcfg, iso, st, aud, log)
	if err != nil {
		return err
	}
	srvp.Store(srv)
	if peerLn != nil {
		go func() {
			if err := srv.ServePeers(ctx, peerLn); err != nil {
				log.Error("peer listener stopped: other replicas cannot reach this one's tabs", "component", "peers", "err", err)
			}
		}()
		metrics.Collector(func(emit audit.Emit) {
			for k, v := range srv.PeerForwards() {
				emit("glovebox_peer_requests_total", "API requests between replicas: forwarded to their tab's owner, answered for another replica, or failed to reach it.",
					"counter", float64(v), "kind", k)
			}
		})
	}
	ln, err := net.Listen("tcp", cfg.Proxy.Listen)
	if err != nil {
		srv.Close()
		return fmt.Errorf("listen %s: %w", cfg.Proxy.Listen, err)
	}
	log.Info("glovebox is running",
		"component", "main",
		"proxy", ln.Addr().String(),
		"webrtc_udp", st.UDPAddr().String(),
		"runtime", iso.Name(),
		"warm_pool", cfg.Isolate.Pool.Size,
		"hint", "set your browser's HTTP proxy to this machine's address and port "+portOf(ln.Addr()))
	metrics.Gauge("glovebox_tabs_open", "Isolated tabs open now.", func() float64 { return float64(srv.Tabs()) })
	metrics.Collector(tab.MediaMetrics(srv.TabMedia))
	if pool != nil {
		metrics.Gauge("glovebox_pool_ready", "Warm browsers ready now.", func() float64 { return float64(pool.Stats().Ready) })
	}
	// One health for the admin address and the proxy's own /healthz.
	if c, ok := starter.(*isolate.Containerd); ok {
		srv.Health().Add("containerd", c.Health)
	}
	if pool != nil {
		srv.Health().Add("pool", func(context.Context) error { return pool.Health() })
	}
	metrics.Collector(proxy.HealthMetrics(srv.Health()))
	if cfg.Admin.Listen != "" {
		con, err := console.New(cfg.Admin.Console, console.Options{Tabs: srv, Audit: aud, Events: recent,
			RecordingDir: cfg.Recording.Dir, ShadowNotice: cfg.Console.ShadowNotice, Log: log})
		if err != nil {
			ln.Close()
			srv.Close()
			return fmt.Errorf("admin console: %w", err)
		}
		stop, err := serveAdmin(cfg.Admin.Listen, metrics, srv.Health(), con, log)
		if err != nil {
			ln.Close()
			srv.Close()
			return err
		}
		defer stop()
	}
	if hooks != nil && hooks.ready != nil {
		lp, _ := pool.(*isolate.Pool) // the tests watch the local pool
		hooks.ready(ln.Addr(), srv, lp)
	}
	return srv.Serve(ctx, ln, cfg.ShutdownGrace)
}

// warmPool is a warm pool: a replica's own (isolate.Pool) or the one the
// Kubernetes replicas share (isolate.KubePool).
type warmPool interface {
	tab.Isolator
	Holds(ip string) bool
	Stats() isolate.PoolStats
	Health() error
	Close() error
}

// streamConfig is the stream configuration with the containers' links left
// out of the media candidates: they are on this host, and users cannot
// reach them.
func streamConfig(cfg Config) stream.Config {
	sc := cfg.Stream
	if cfg.Isolate.Runtime == "containerd" {
		if subnet, err := netip.ParsePrefix(cfg.Isolate.Network.Subnet); err == nil { // validated
			sc.ExcludeNets = append(slices.Clone(sc.ExcludeNets), subnet)
		}
		sc.ExcludeInterfaces = append(slices.Clone(sc.ExcludeInterfaces), netns.HostInterfacePrefix)
	}
	return sc
}

// serveAdmin serves /metrics, /healthz and the console on addr until stop
// is called. The console is here only, never on the users' proxy port.
func serveAdmin(addr string, metrics, health http.Handler, con *console.Console, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin.listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.Handle("GET /healthz", health)
	mux.Handle("/console", con)
	mux.Handle(console.Prefix, con)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go hs.Serve(ln)
	log.Info("admin address", "component", "main", "listen", ln.Addr().String(), "console", "http://"+ln.Addr().String()+console.Prefix)
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() && len(con.Users()) > 0 {
		log.Warn("the console's passwords cross the network in clear on admin.listen: put a TLS reverse proxy in front of it, "+
			"or keep it on loopback", "component", "main", "listen", ln.Addr().String())
	}
	return func() { hs.Close() }, nil
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// version is Glovebox's, in CEF's header (set by the Makefile's build).
var version = "dev"

// openAudit opens audit.output: stdout, stderr, none, or a file appended
// to and reopened on SIGHUP.
func openAudit(out string, stdout, stderr io.Writer) (*auditOutput, error) {
	switch out {
	case "stdout":
		return &auditOutput{w: stdout}, nil
	case "stderr":
		return &auditOutput{w: stderr}, nil
	case "none":
		return &auditOutput{}, nil
	}
	o := &auditOutput{path: out}
	if err := o.Reopen(); err != nil {
		return nil, fmt.Errorf("audit.output: %w", err)
	}
	return o, nil
}

// auditOutput is audit.output's writer.
type auditOutput struct {
	path string // "" for stdout, stderr and none

	mu sync.Mutex
	w  io.Writer // nil: none
	f  *os.File
}

func (o *auditOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.w == nil {
		return len(p), nil
	}
	return o.w.Write(p)
}

// Reopen opens the file at its path anew (logrotate moved the old one).
func (o *auditOutput) Reopen() error {
	if o.path == "" {
		return nil
	}
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	o.mu.Lock()
	old := o.f
	o.f, o.w = f, f
	o.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (o *auditOutput) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return nil
	}
	return o.f.Close()
}
