package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/stats"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/webrtc/v4"
)

// maxSCTPMessage is the largest data-channel message the SCTP layer accepts
// (and the max-message-size our answers announce, so browsers refuse to
// send more). pion closes the channel on anything larger, so PeerOptions.
// MaxMessage, which drops messages without closing, must stay below it.
const maxSCTPMessage = 256 << 10

// MaxMessageLimit is the largest PeerOptions.MaxMessage allowed.
const MaxMessageLimit = maxSCTPMessage

// Server owns the ICE sockets and the pion API shared by all peers; one per
// process.
type Server struct {
	cfg    Config
	log    *slog.Logger
	api    *webrtc.API
	udpMux *ice.MultiUDPMuxDefault
	tcpLn  net.Listener
	tcpMux ice.TCPMux

	mu     sync.Mutex
	peers  map[*Peer]struct{}
	closed bool

	// newPCMu serialises NewPeerConnection so that the estimator the
	// congestion-control interceptor hands over lands with its peer.
	newPCMu      sync.Mutex
	newEstimator cc.BandwidthEstimator
}

// NewServer validates cfg, binds the ICE UDP port (and the ICE-TCP port
// unless disabled) and builds the pion API.
func NewServer(cfg Config, log *slog.Logger) (_ *Server, retErr error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("stream config: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	pionLog := newPionLoggerFactory(log) // component=pion
	log = log.With("component", "stream")
	s := &Server{cfg: cfg, log: log, peers: make(map[*Peer]struct{})}
	defer func() {
		if retErr != nil {
			_ = s.closeSockets()
		}
	}()

	var err error
	if s.udpMux, err = listenUDPMux(cfg.UDPPort, cfg.loopback(), cfg.interfaceFilter(), cfg.ipFilter(), pionLog); err != nil {
		return nil, err
	}
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	if cfg.TCPPort >= 0 {
		s.tcpLn, err = net.Listen("tcp4", fmt.Sprintf(":%d", cfg.TCPPort))
		if err != nil {
			return nil, fmt.Errorf("listen ice-tcp: %w", err)
		}
		s.tcpMux = webrtc.NewICETCPMux(pionLog.NewLogger("ice-tcp"), s.tcpLn, 8)
		networks = append(networks, webrtc.NetworkTypeTCP4)
	}

	se := webrtc.SettingEngine{LoggerFactory: pionLog}
	se.SetICEUDPMux(s.udpMux)
	if s.tcpMux != nil {
		se.SetICETCPMux(s.tcpMux)
	}
	se.SetNetworkTypes(networks)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(cfg.loopback())
	// ICE-TCP candidates come from the interfaces of the moment each peer
	// gathers, the containers' veths among them: both filters keep those
	// out of every answer.
	if f := cfg.ipFilter(); f != nil {
		se.SetIPFilter(f)
	}
	if f := cfg.interfaceFilter(); f != nil {
		se.SetInterfaceFilter(f)
	}
	se.SetSCTPMaxMessageSize(maxSCTPMessage)
	if rules, err := natRules(cfg.NAT1To1IPs); err != nil {
		return nil, err
	} else if len(rules) > 0 {
		if err := se.SetICEAddressRewriteRules(rules...); err != nil {
			return nil, fmt.Errorf("nat_1to1_ips: %w", err)
		}
	}

	me := &webrtc.MediaEngine{}
	if err := registerVideoCodecs(me, cfg.codecs()); err != nil { // codec.go
		return nil, err
	}
	if err := registerAudioCodec(me); err != nil { // audio.go
		return nil, err
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: PlayoutDelayURI},
		webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("register playout-delay: %w", err)
	}
	ir := &interceptor.Registry{}
	// Send-side congestion control (GCC over transport-cc feedback) gives
	// each peer a target bitrate for its encoder. No pacer: the encoder
	// follows the target, and a pacer's queue would add delay.
	ccf, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		return gcc.NewSendSideBWE(
			gcc.SendSideBWEInitialBitrate(cfg.maxBitrate()),
			gcc.SendSideBWEMinBitrate(min(MinBitrate, cfg.maxBitrate())),
			gcc.SendSideBWEMaxBitrate(cfg.maxBitrate()),
			gcc.SendSideBWEPacer(gcc.NewNoOpPacer()),
			gcc.WithLoggerFactory(pionLog))
	})
	if err != nil {
		return nil, fmt.Errorf("congestion control: %w", err)
	}
	// Called from NewPeerConnection, on the goroutine that holds newPCMu.
	ccf.OnNewPeerConnection(func(_ string, e cc.BandwidthEstimator) { s.newEstimator = e })
	ir.Add(ccf)
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, ir); err != nil {
		return nil, fmt.Errorf("register twcc sender: %w", err)
	}
	// pion's defaults but its sender reports, which the peer sends itself
	// from the capture clocks (senderreport.go): NACK (with nack and nack
	// pli feedback), receiver reports, stats, TWCC feedback.
	if err := webrtc.ConfigureNackWithOptions(me, ir,
		[]nack.GeneratorOption{nack.WithGeneratorLoggerFactory(pionLog)},
		nack.WithResponderLoggerFactory(pionLog)); err != nil {
		return nil, fmt.Errorf("register nack: %w", err)
	}
	rr, err := report.NewReceiverInterceptor(report.WithReceiverLoggerFactory(pionLog))
	if err != nil {
		return nil, fmt.Errorf("receiver reports: %w", err)
	}
	ir.Add(rr)
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, fmt.Errorf("register simulcast headers: %w", err)
	}
	if err := webrtc.ConfigureStatsInterceptorWithOptions(ir, stats.WithLoggerFactory(pionLog)); err != nil {
		return nil, fmt.Errorf("register stats: %w", err)
	}
	if err := webrtc.ConfigureTWCCSenderWithOptions(me, ir, twcc.WithLoggerFactory(pionLog)); err != nil {
		return nil, fmt.Errorf("register twcc: %w", err)
	}
	s.api = webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir))

	attrs := []any{"udp", s.UDPAddr().String(), "loopback", cfg.loopback(), "addresses", cfg.Addresses}
	if s.tcpLn != nil {
		attrs = append(attrs, "tcp", s.tcpLn.Addr().String())
	}
	log.Info("webrtc listening", attrs...)
	return s, nil
}

// listenUDPMux binds one UDP port on every local IPv4 address. For port 0 it
// picks a free port first, so that all addresses share one port.
func listenUDPMux(port int, loopback bool, ifFilter func(string) bool, filter func(net.IP) bool, lf *pionLoggerFactory) (*ice.MultiUDPMuxDefault, error) {
	opts := []ice.UDPMuxFromPortOption{
		ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4),
		ice.UDPMuxFromPortWithLogger(lf.NewLogger("ice-udp")),
		ice.UDPMuxFromPortWithReadBufferSize(4 << 20),
		ice.UDPMuxFromPortWithWriteBufferSize(4 << 20),
	}
	if loopback {
		opts = append(opts, ice.UDPMuxFromPortWithLoopback())
	}
	if filter != nil {
		opts = append(opts, ice.UDPMuxFromPortWithIPFilter(filter))
	}
	if ifFilter != nil {
		opts = append(opts, ice.UDPMuxFromPortWithInterfaceFilter(ifFilter))
	}
	var lastErr error
	for range 5 {
		p := port
		if p == 0 {
			c, err := net.ListenPacket("udp4", ":0")
			if err != nil {
				return nil, fmt.Errorf("pick udp port: %w", err)
			}
			p = c.LocalAddr().(*net.UDPAddr).Port
			_ = c.Close()
		}
		mux, err := ice.NewMultiUDPMuxFromPort(p, opts...)
		if err == nil {
			if len(mux.GetListenAddresses()) == 0 {
				_ = mux.Close()
				return nil, errors.New("listen ice-udp: no usable IPv4 address (set loopback for a host without one)")
			}
			return mux, nil
		}
		lastErr = err
		if port != 0 {
			break // a fixed port that is taken will not free itself
		}
	}
	return nil, fmt.Errorf("listen ice-udp port %d: %w", port, lastErr)
}

// natRules turns nat_1to1_ips into pion address-rewrite rules that replace
// host candidates: "public" entries form one catch-all rule per family,
// "public/private" entries one rule each.
func natRules(entries []string) ([]webrtc.ICEAddressRewriteRule, error) {
	var rules []webrtc.ICEAddressRewriteRule
	var catchAll []string
	for _, e := range entries {
		public, private, err := parseNATMapping(e)
		if err != nil {
			return nil, fmt.Errorf("nat_1to1_ips: %w", err)
		}
		if private == "" {
			catchAll = append(catchAll, public)
			continue
		}
		rules = append(rules, webrtc.ICEAddressRewriteRule{
			External:        []string{public},
			Local:           private,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		})
	}
	if len(catchAll) > 0 {
		rules = append(rules, webrtc.ICEAddressRewriteRule{
			External:        catchAll,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		})
	}
	return rules, nil
}

// UDPAddr returns the address of the ICE UDP mux (its first local address;
// all share one port), for logs and tests.
func (s *Server) UDPAddr() net.Addr {
	if s.udpMux == nil {
		return nil
	}
	addrs := s.udpMux.GetListenAddresses()
	if len(addrs) == 0 {
		return nil
	}
	return addrs[0]
}

// TCPAddr returns the address of the ICE-TCP listener, nil when ICE-TCP is off.
func (s *Server) TCPAddr() net.Addr {
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr()
}

// Close closes every peer still open and then the ICE sockets. It is safe to
// call twice.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	peers := make([]*Peer, 0, len(s.peers))
	for p := range s.peers {
		peers = append(peers, p)
	}
	s.mu.Unlock()
	var errs []error
	for _, p := range peers {
		errs = append(errs, p.Close())
	}
	errs = append(errs, s.closeSockets())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close stream server: %w", err)
	}
	return nil
}

func (s *Server) closeSockets() error {
	var errs []error
	if s.tcpMux != nil {
		// Closes the listener too.
		errs = append(errs, s.tcpMux.Close())
	} else if s.tcpLn != nil {
		errs = append(errs, s.tcpLn.Close())
	}
	if s.udpMux != nil {
		errs = append(errs, s.udpMux.Close())
	}
	return errors.Join(errs...)
}

// newPeerConnection creates a peer connection and returns it with its
// bandwidth estimator.
func (s *Server) newPeerConnection() (*webrtc.PeerConnection, cc.BandwidthEstimator, error) {
	s.newPCMu.Lock()
	defer s.newPCMu.Unlock()
	s.newEstimator = nil
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	est := s.newEstimator
	s.newEstimator = nil
	if err != nil {
		return nil, nil, err
	}
	if est == nil {
		_ = pc.Close()
		return nil, nil, errors.New("no bandwidth estimator for the peer connection")
	}
	return pc, est, nil
}

func (s *Server) addPeer(p *Peer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("stream server closed")
	}
	s.peers[p] = struct{}{}
	return nil
}

func (s *Server) removePeer(p *Peer) {
	s.mu.Lock()
	delete(s.peers, p)
	s.mu.Unlock()
}
