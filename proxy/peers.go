package proxy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/glovebox/glovebox/proxy/internal/httpx"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/tab"
)

// Peers is what one replica of several knows of the others. Every token,
// hand-over code and file key a replica issues names it first
// (tab.TokenOwner), so any replica can tell which one holds a tab without a
// shared database; a request about another replica's tab is forwarded to
// it over mutually authenticated TLS, each side pinned to the other's key
// as the directory publishes it.
type Peers interface {
	// Self is this replica's name, the prefix of what it issues.
	Self() string
	// Live is every replica running now, this one included.
	Live() []Peer
}

// Peer is one replica as the directory knows it.
type Peer struct {
	ID string
	// Addr is its peer listener, host:port.
	Addr string
	// Key is the SHA-256 of its peer certificate's SubjectPublicKeyInfo.
	Key [32]byte
	// Media are its media addresses, which users' ICE-TCP tunnels may
	// reach through any replica.
	Media []netip.Addr
}

// findPeer is the first live replica f accepts.
func findPeer(ps Peers, f func(Peer) bool) (Peer, bool) {
	for _, p := range ps.Live() {
		if f(p) {
			return p, true
		}
	}
	return Peer{}, false
}

// KeySum is the SHA-256 of a certificate's public key, as Peers pins it.
func KeySum(cert *x509.Certificate) [32]byte { return sha256.Sum256(cert.RawSubjectPublicKeyInfo) }

// The headers a forwarding replica tells the owner what it established
// about the request: who sent it (authenticated there), from where, and to
// which origin. The owner believes them from an authenticated peer only;
// a client's own are removed before forwarding.
const (
	peerUserHeader   = "X-Glovebox-Peer-User"
	peerClientHeader = "X-Glovebox-Peer-Client"
	peerOriginHeader = "X-Glovebox-Peer-Origin"
)

// peerGoneMessage is what a landing page shows when its tab's replica is
// gone: its tab went with it.
const peerGoneMessage = "The Glovebox server that held this isolated tab has stopped. Reload the page to open it again."

// serveAPI answers an API request here, or forwards it to the replica that
// owns the tab it names.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Peers == nil {
		s.api.ServeHTTP(w, r)
		return
	}
	owner, err := apiOwner(r)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if owner == "" || owner == s.cfg.Peers.Self() {
		s.api.ServeHTTP(w, r)
		return
	}
	p, ok := findPeer(s.cfg.Peers, func(p Peer) bool { return p.ID == owner })
	if !ok {
		s.peerGone(w, r)
		return
	}
	s.forwardAPI(w, r, p)
}

// peerGone answers a request about a tab whose replica is gone as for a
// tab that ended (its landing page then opens a new one on reload), or a
// file or code as one that never was.
func (s *Server) peerGone(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, tab.FilesPrefix):
		http.NotFound(w, r)
	case r.URL.Path == apiPrefix+"api/claim":
		writeJSONError(w, http.StatusNotFound, "no_tab", "This isolated tab does not exist or has ended.")
	default:
		writeJSONError(w, http.StatusGone, "ended", peerGoneMessage)
	}
}

// apiOwner is the replica an API request's token, code or key names, or
// "" for requests any replica answers (a new tab, the app's files). A
// claim's code is in its body, which is read (bounded) and put back.
func apiOwner(r *http.Request) (string, error) {
	p := r.URL.Path
	if rest, ok := strings.CutPrefix(p, apiPrefix+"api/tabs/"); ok {
		token, _, _ := strings.Cut(rest, "/")
		return tab.TokenOwner(token), nil
	}
	if key, ok := strings.CutPrefix(p, tab.FilesPrefix); ok {
		return tab.TokenOwner(key), nil
	}
	if p != apiPrefix+"api/claim" || r.Method != http.MethodPost || r.Body == nil {
		return "", nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
	r.Body.Close()
	if err != nil {
		return "", fmt.Errorf("reading the request: %w", err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req struct {
		Code string `json:"code"`
	}
	if len(body) > maxAPIBody || json.Unmarshal(body, &req) != nil {
		return "", nil // the handler says what is wrong with it
	}
	return tab.TokenOwner(req.Code), nil
}

// forwardAPI sends r to its owner p with what this replica established
// about it, and relays the answer.
func (s *Server) forwardAPI(w http.ResponseWriter, r *http.Request, p Peer) {
	info := reqInfoOf(r)
	origin := originOf(r.URL)
	rp := &httputil.ReverseProxy{
		Transport: s.peerTransport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			out := pr.Out
			out.URL = &url.URL{Scheme: "https", Host: p.Addr, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
			out.Host = r.URL.Host
			// The site's cookies and any credentials are not the
			// owner's business; what this replica established is.
			for _, h := range []string{"Cookie", "Authorization", "Proxy-Authorization", peerUserHeader, peerClientHeader, peerOriginHeader} {
				out.Header.Del(h)
			}
			out.Header.Set(peerUserHeader, info.user)
			out.Header.Set(peerClientHeader, httpx.ClientIP(r))
			out.Header.Set(peerOriginHeader, origin)
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			s.log.Warn("peer unreachable", "component", "peers", "peer", p.ID, "err", err)
			s.peerForwards.errors.Add(1)
			writeJSONError(w, http.StatusBadGateway, "peer_unreachable",
				"The Glovebox server that holds this isolated tab cannot be reached. Reload the page to open it again.")
		},
	}
	s.peerForwards.forwarded.Add(1)
	rp.ServeHTTP(w, r)
}

// newPeerTransport is the client side of the replicas' links: TLS 1.3 with
// this replica's certificate, the server pinned to the key the directory
// gives for the address dialled.
func newPeerTransport(peers Peers, cert tls.Certificate) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			// The pin is looked up at each dial: the address of a replica
			// that is gone is never trusted for its successor.
			p, ok := findPeer(peers, func(p Peer) bool { return p.Addr == addr })
			if !ok {
				return nil, fmt.Errorf("%s is no live replica's", addr)
			}
			want := p.Key
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(c, &tls.Config{
				MinVersion:         tls.VersionTLS13,
				Certificates:       []tls.Certificate{cert},
				InsecureSkipVerify: true, // pinned below, not by a CA
				VerifyConnection: func(cs tls.ConnectionState) error {
					if len(cs.PeerCertificates) == 0 || KeySum(cs.PeerCertificates[0]) != want {
						return errors.New("the replica's certificate is not the one its directory entry names")
					}
					return nil
				},
			})
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, fmt.Errorf("peer %s: %w", addr, err)
			}
			return tc, nil
		},
		ForceAttemptHTTP2:     false,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second, // an offer waits for its browser to start
	}
}

// ServePeers answers the requests other replicas forward, on ln, until ctx
// ends. Only a replica the directory lists (its certificate's key) gets a
// TLS session; its requests are answered as the API answers users', as
// the user, client and origin it names.
func (s *Server) ServePeers(ctx context.Context, ln net.Listener) error {
	if s.cfg.Peers == nil {
		return errors.New("no peers configured")
	}
	tcfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{s.cfg.PeerCert},
		ClientAuth:   tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no client certificate")
			}
			sum := KeySum(cs.PeerCertificates[0])
			if _, ok := findPeer(s.cfg.Peers, func(p Peer) bool { return p.Key == sum }); !ok {
				return errors.New("the client is no live replica")
			}
			return nil
		},
	}
	hs := &http.Server{
		Handler:           http.HandlerFunc(s.servePeer),
		TLSConfig:         tcfg,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	err := hs.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// servePeer is one request a replica forwarded: the API's answer for the
// user, client address and origin the forwarding replica established. It
// never forwards again.
func (s *Server) servePeer(w http.ResponseWriter, r *http.Request) {
	origin, err := url.Parse(r.Header.Get(peerOriginHeader))
	client, cerr := netip.ParseAddr(r.Header.Get(peerClientHeader))
	if err != nil || (origin.Scheme != "http" && origin.Scheme != "https") || origin.Host == "" || origin.Path != "" || cerr != nil ||
		!strings.HasPrefix(r.URL.Path, apiPrefix) {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "not a forwarded Glovebox API request")
		return
	}
	user := r.Header.Get(peerUserHeader)
	for _, h := range []string{peerUserHeader, peerClientHeader, peerOriginHeader} {
		r.Header.Del(h)
	}
	r.URL.Scheme, r.URL.Host, r.Host = origin.Scheme, origin.Host, origin.Host
	r.RemoteAddr = net.JoinHostPort(client.String(), "0")
	r = withReqInfo(r, &reqInfo{user: user, own: true})
	// As on the proxy port: the API is there only on origins policy
	// isolates for this user.
	if s.policy.DecideOrigin(r.URL, user).Action != policy.ActionIsolate {
		writeJSONError(w, http.StatusNotFound, "not_found", "no such Glovebox endpoint")
		return
	}
	s.peerForwards.answered.Add(1)
	s.api.ServeHTTP(w, r)
}

// isPeerMedia reports whether ip is a live replica's media address.
func (s *Server) isPeerMedia(ip netip.Addr) bool {
	if s.cfg.Peers == nil {
		return false
	}
	_, ok := findPeer(s.cfg.Peers, func(p Peer) bool {
		for _, m := range p.Media {
			if m == ip {
				return true
			}
		}
		return false
	})
	return ok
}

// PeerForwards counts the API requests sent to their owners (forwarded),
// those that failed to reach them (error) and those answered for other
// replicas (answered).
func (s *Server) PeerForwards() map[string]int64 {
	return map[string]int64{"forwarded": s.peerForwards.forwarded.Load(), "error": s.peerForwards.errors.Load(),
		"answered": s.peerForwards.answered.Load()}
}

// peerCounts are PeerForwards' counters.
type peerCounts struct{ forwarded, errors, answered atomic.Int64 }

// NewPeerCert makes this replica's certificate for its links with the
// others: a new key each start, self-signed, trusted by the others only
// through the key the directory publishes (KeySum).
func NewPeerCert(name string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "glovebox replica " + name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
