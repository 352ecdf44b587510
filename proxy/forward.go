package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/elazarl/goproxy"
	"github.com/glovebox/glovebox/proxy/policy"
	"github.com/glovebox/glovebox/proxy/upstream"
)

// wireUpstream makes goproxy send allowed traffic through the parent proxy
// where upstream.proxy names one: plain requests through the transport's
// Proxy, intercepted HTTPS through a tunnel the transport's dial opens,
// CONNECT tunnels through dialConnect; and it gives failures a page that
// says whose failure it was.
func (s *Server) wireUpstream(gp *goproxy.ProxyHttpServer, dialer *net.Dialer) {
	s.up, _ = upstream.NewRoute(s.cfg.Upstream.Proxy, s.cfg.Upstream.Direct) // validated in New
	gp.Tr.Proxy = s.proxyFor
	gp.Tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return s.dialUpstream(ctx, dialer.DialContext, network, addr)
	}
	gp.ConnectDial = nil
	gp.ConnectDialWithReq = func(r *http.Request, network, addr string) (net.Conn, error) {
		return s.dialConnect(r, dialer.DialContext, addr)
	}
	gp.ConnectionErrHandler = s.connectFailed
}

// proxyFor is the transport's Proxy: the parent for r's host, or nil.
// HTTPS through the parent is not left to the transport, whose CONNECT
// waits a minute for the parent's answer whatever upstream_timeout says:
// proxyFor returns nil for it, and dialUpstream opens the tunnel.
func (s *Server) proxyFor(r *http.Request) (*url.URL, error) {
	p := s.up.ParentFor(r.URL.Hostname())
	if p == nil {
		return nil, nil
	}
	reqInfoOf(r).parent = p.Host
	if r.URL.Scheme == "https" {
		return nil, nil
	}
	// Plain HTTP goes to the parent by name (its Host is the site's), once
	// the name is checked: one that resolves here to this host is refused.
	if _, _, err := s.guard.check(r.Context(), net.JoinHostPort(r.URL.Hostname(), urlPort(r.URL))); errors.Is(err, ErrLocalDestination) {
		return nil, err
	}
	return p, nil
}

// dialUpstream is the transport's dial: to the parent itself for plain
// HTTP (the transport asks for the parent's address), a CONNECT tunnel
// through the parent for HTTPS to a host that goes through it (the
// transport asks for the site's address, as proxyFor said direct), within
// upstream_timeout; otherwise to the site.
func (s *Server) dialUpstream(ctx context.Context, dial upstream.DialFunc, network, addr string) (net.Conn, error) {
	host, _, _ := net.SplitHostPort(addr)
	p := s.up.ParentFor(host)
	if p != nil && strings.EqualFold(addr, p.Host) {
		return dial(ctx, network, addr)
	}
	if p == nil {
		return s.guard.dial(ctx, dial, network, addr)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.UpstreamTimeout)
	defer cancel()
	var hdr http.Header
	if via := s.via(1, 1); via != "" {
		hdr = http.Header{"Via": {via}}
	}
	return s.guard.viaParent(ctx, addr, func(ctx context.Context, target string) (net.Conn, error) {
		return upstream.DialParent(ctx, dial, p, s.up.Auth, target, hdr)
	})
}

// dialConnect opens an allowed CONNECT tunnel's connection, through the
// parent or direct, within upstream_timeout. Glovebox's own media port is
// always direct: it is on this machine.
func (s *Server) dialConnect(r *http.Request, dial upstream.DialFunc, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.UpstreamTimeout)
	defer cancel()
	info := reqInfoOf(r)
	host, _, _ := net.SplitHostPort(addr)
	var c net.Conn
	var err error
	media := s.isMediaTarget(addr)
	if p := s.up.ParentFor(host); p != nil && !media {
		info.parent = p.Host
		var hdr http.Header
		if via := s.via(r.ProtoMajor, r.ProtoMinor); via != "" {
			hdr = http.Header{"Via": {via}}
		}
		c, err = s.guard.viaParent(ctx, addr, func(ctx context.Context, target string) (net.Conn, error) {
			return upstream.DialParent(ctx, dial, p, s.up.Auth, target, hdr)
		})
	} else if media {
		c, err = dial(ctx, "tcp", addr)
	} else {
		c, err = s.guard.dial(ctx, dial, "tcp", addr)
	}
	if err != nil {
		info.err = err
		info.status = upstreamStatus(err)
		info.connectFailed = true
		if errors.Is(err, ErrLocalDestination) {
			info.decision = policy.Decision{Action: policy.ActionRefuse, Rule: ruleLocalDest}
		}
	}
	return c, err
}

// connectFailed answers a CONNECT whose connection could not be made. goproxy
// also calls it for errors inside a tunnel that is not a plain TCP pair;
// nothing may be written into a tunnel, so it answers only failed dials.
func (s *Server) connectFailed(w io.Writer, ctx *goproxy.ProxyCtx, err error) {
	info := reqInfoOf(ctx.Req)
	if !info.connectFailed {
		return
	}
	status := upstreamStatus(err)
	msg := "could not connect to " + ctx.Req.URL.Host + ": " + rootCause(err)
	if errors.Is(err, ErrLocalDestination) {
		msg = "does not forward to " + ctx.Req.URL.Host + ": " + err.Error() + " (upstream.allow_local lists the exceptions)"
	} else if info.parent != "" {
		msg = "could not open a tunnel to " + ctx.Req.URL.Host + " through the parent proxy " + info.parent + ": " + parentReason(err)
	}
	body := "Glovebox: " + msg + "\n"
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
}

// checkUpstream runs before the other response handlers. A request that got
// no response through the parent proxy, or got none in time, gets a page
// that says so (502, or 504 for a timeout) and its audit event the reason;
// other failures are left to the next handler. A response from a forwarded
// request loses its hop-by-hop headers and gains Via.
func (s *Server) checkUpstream(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
	r := ctx.Req
	info := reqInfoOf(r)
	if resp == nil {
		err := ctx.Error
		if err == nil {
			err = errors.New("no response")
		}
		if errors.Is(err, ErrLocalDestination) {
			info.decision = policy.Decision{Action: policy.ActionRefuse, Rule: ruleLocalDest}
			info.err = err
			return localDestPage(r, err)
		}
		if isTLSError(err) || (info.parent == "" && !isTimeout(err)) {
			return nil
		}
		status := upstreamStatus(err)
		title, msg := "The site took too long to answer",
			fmt.Sprintf("%s sent no response within %s.", r.URL.Host, s.cfg.UpstreamTimeout)
		if info.parent != "" {
			err = fmt.Errorf("parent proxy %s: %w", info.parent, err)
			if status == http.StatusGatewayTimeout {
				msg = fmt.Sprintf("Glovebox asked for %s through the parent proxy %s, and no response came within %s.",
					r.URL.Host, info.parent, s.cfg.UpstreamTimeout)
			} else {
				title = "The parent proxy could not be reached"
				msg = fmt.Sprintf("Glovebox sends %s through the parent proxy %s, which failed: %s.",
					r.URL.Host, info.parent, parentReason(err))
			}
		}
		info.err = err
		return errorPage(r, status, title, msg)
	}
	if !info.forwarded {
		return resp // Glovebox's own page
	}
	if resp.StatusCode == http.StatusProxyAuthRequired {
		// A 407 passed on would make the user's browser ask its user for
		// credentials meant for a proxy behind Glovebox.
		who, title := "the site "+r.URL.Host, "The site asked for proxy credentials"
		if info.parent != "" {
			who, title = "the parent proxy "+info.parent, "The parent proxy refused Glovebox"
		}
		info.err = fmt.Errorf("%s asked Glovebox for proxy credentials: %s", who, resp.Status)
		return errorPage(r, http.StatusBadGateway, title,
			"Glovebox could not get "+r.URL.Host+": "+who+" wants proxy credentials that Glovebox does not have or that it refused.")
	}
	s.cleanResponse(resp)
	return resp
}

// upstreamStatus is the status for a failure to get a response: 504 for a
// timeout, 502 for anything else.
func upstreamStatus(err error) int {
	if errors.Is(err, ErrLocalDestination) {
		return http.StatusForbidden
	}
	if isTimeout(err) {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// isTLSError reports a failure of the TLS session with the site itself,
// which is never the parent's fault.
func isTLSError(err error) bool {
	var (
		rh  tls.RecordHeaderError
		cv  *tls.CertificateVerificationError
		ae  tls.AlertError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		inv x509.CertificateInvalidError
	)
	return errors.As(err, &rh) || errors.As(err, &cv) || errors.As(err, &ae) ||
		errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &inv)
}

// parentReason says briefly what went wrong with the parent.
func parentReason(err error) string {
	var pr *upstream.ParentRefusedError
	if errors.As(err, &pr) {
		return "it answered " + pr.Status
	}
	if isTimeout(err) {
		return "no answer in time"
	}
	return rootCause(err)
}

// rootCause is the innermost message of a wrapped error ("connection refused").
func rootCause(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// protoVersion is a Via received-protocol version: "1.1", "1.0", "2".
func protoVersion(major, minor int) string {
	if major >= 2 {
		return strconv.Itoa(major)
	}
	return strconv.Itoa(major) + "." + strconv.Itoa(minor)
}
