package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/glovebox/glovebox/proxy/upstream"
)

// TestUpstreamStatus: a parent's refusal is a 502, a parent or site that
// does not answer in time a 504, a local destination a 403.
func TestUpstreamStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{&upstream.ParentRefusedError{Parent: "p:3128", Target: "site.test:443", Status: "407 Proxy Authentication Required"}, http.StatusBadGateway},
		{fmt.Errorf("parent: %w", context.DeadlineExceeded), http.StatusGatewayTimeout},
		{fmt.Errorf("dial: %w", ErrLocalDestination), http.StatusForbidden},
		{errors.New("connection refused"), http.StatusBadGateway},
	} {
		if got := upstreamStatus(tc.err); got != tc.want {
			t.Errorf("upstreamStatus(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
