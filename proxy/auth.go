package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/glovebox/glovebox/proxy/auth"
	"github.com/glovebox/glovebox/proxy/tab"

	"github.com/elazarl/goproxy"
	"github.com/glovebox/glovebox/proxy/internal/httpx"
	"github.com/glovebox/glovebox/proxy/policy"
)

// authIdentity is kept in the ProxyCtx.UserData of an authenticated CONNECT.
// goproxy copies UserData to the context of every request it reads inside an
// intercepted tunnel, which carry no credentials of their own: this is how
// they know their user.
type authIdentity struct{ user string }

// challenge is the 407 for a request without valid credentials, or the 429
// for one from an address refused for too many failed sign-ins.
func (s *Server) challenge(r *http.Request, fail *auth.Failure) *http.Response {
	if fail != nil && fail.Retry > 0 {
		return tooMany(r, fail.Retry)
	}
	msg := "Glovebox needs your user name and password before it opens sites for you."
	if s.auth.Mode() == auth.ModeHeader {
		msg = "Glovebox accepts requests only through your organisation's proxy, which tells it who you are. Set your browser to use that proxy."
	}
	var resp *http.Response
	if r.Method == http.MethodConnect || !policy.IsNavigation(r) {
		resp = httpx.Response(r, http.StatusProxyAuthRequired, "text/plain; charset=utf-8", []byte("Glovebox: "+msg+"\n"))
	} else {
		resp = errorPage(r, http.StatusProxyAuthRequired, "Sign-in required", msg)
	}
	resp.Header.Set("Proxy-Authenticate", `Basic realm="`+auth.Realm+`"`)
	return resp
}

// tooMany is the 429 of a refused address. It has no Proxy-Authenticate:
// a password would not be checked.
func tooMany(r *http.Request, retry time.Duration) *http.Response {
	mins := int((retry + time.Minute - 1) / time.Minute)
	msg := fmt.Sprintf("Too many failed sign-ins came from your address. Glovebox will check passwords from it again in %d minute(s).", mins)
	var resp *http.Response
	if r.Method == http.MethodConnect || !policy.IsNavigation(r) {
		resp = httpx.Response(r, http.StatusTooManyRequests, "text/plain; charset=utf-8", []byte("Glovebox: "+msg+"\n"))
	} else {
		resp = errorPage(r, http.StatusTooManyRequests, "Too many failed sign-ins", msg)
	}
	resp.Header.Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
	return resp
}

// registerAuth puts authentication before the API, policy and forwarding
// handlers (and first among the CONNECT handlers), so that nothing, the
// /.glovebox/ API included, runs for a client that has not authenticated. The proxy's own pages (PAC file, health) are not
// proxy requests and need no credentials: browsers fetch the PAC file before
// they know any.
func (s *Server) registerAuth() {
	s.gp.OnRequest().DoFunc(func(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
		if _, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); !ok {
			// A request read inside an intercepted tunnel: give it the
			// reqInfo the handlers after this one record into.
			r = withReqInfo(r, &reqInfo{})
		}
		info := reqInfoOf(r)
		if id, ok := ctx.UserData.(*authIdentity); ok {
			// Inside a tunnel whose CONNECT was authenticated.
			s.auth.Strip(r)
			info.user = id.user
			return r, nil
		}
		user, fail := s.auth.Authenticate(r)
		if fail != nil {
			info.decision = policy.Decision{Action: policy.ActionRefuse, Rule: "proxy_auth"}
			info.err = errors.New("proxy authentication: " + fail.Reason)
			return r, s.challenge(r, fail)
		}
		info.user = user
		return r, nil
	})
	s.gp.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		info := reqInfoOf(ctx.Req)
		user, fail := s.auth.Authenticate(ctx.Req)
		if fail != nil {
			info.decision = policy.Decision{Action: policy.ActionRefuse, Rule: "proxy_auth"}
			info.err = errors.New("proxy authentication: " + fail.Reason)
			ctx.Resp = s.challenge(ctx.Req, fail)
			info.status = ctx.Resp.StatusCode
			// The connection is closed after the 407; the client retries
			// with credentials on a new one.
			ctx.Resp.Close = true
			return goproxy.RejectConnect, host
		}
		info.user = user
		if user != "" {
			ctx.UserData = &authIdentity{user: user}
		}
		return nil, host // authenticated: the next handler decides
	})
}

// tabOwnerOf is tabOwner for an API request.
func tabOwnerOf(r *http.Request) string {
	return tab.Owner(reqInfoOf(r).user, httpx.ClientIP(r))
}

// withReqInfo returns r carrying info for the handlers and the audit event.
func withReqInfo(r *http.Request, info *reqInfo) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
}

// PolicyConfig is the policy as NewPolicy needs it: with the groups of
// auth.groups, which its rules may name.
func (c *Config) PolicyConfig() policy.Config {
	p := c.Policy
	p.Groups = c.Auth.Groups
	return p
}
