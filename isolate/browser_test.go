package isolate

import (
	"errors"
	"fmt"
	"testing"

	"github.com/glovebox/glovebox/isolate/netns"
)

func TestBrowserSet(t *testing.T) {
	var s browserSet[int]
	a, b := newBrowser("a", "test", nil), newBrowser("b", "test", nil)
	if !s.add(a, 1) || !s.add(b, 2) {
		t.Fatal("add to an open set failed")
	}
	if v, ok := s.get(b); !ok || v != 2 {
		t.Errorf("get(b) = %d, %v; want 2", v, ok)
	}
	if n := s.running(); n != 2 {
		t.Errorf("running = %d, want 2", n)
	}
	a.exited()
	if n := s.running(); n != 1 {
		t.Errorf("running after a exited = %d, want 1", n)
	}
	s.remove(a)
	if _, ok := s.get(a); ok {
		t.Error("a is still in the set after remove")
	}
	if s.isClosed() {
		t.Error("closed before close")
	}
	bs := s.close()
	if len(bs) != 1 || bs[0] != b || !s.isClosed() {
		t.Errorf("close returned %v (closed %v), want [b]", bs, s.isClosed())
	}
	if s.add(newBrowser("c", "test", nil), 3) {
		t.Error("add after close succeeded")
	}
	if n := s.running(); n != 1 {
		t.Errorf("running after close = %d, want 1: close leaves closing the browsers to the runtime", n)
	}
}

func TestErrCapacity(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{netns.ErrSubnetFull, true},
		{fmt.Errorf("attach network to glovebox-1: attach tab-1: %w", netns.ErrSubnetFull), true},
		{ErrClosed, false},
		{netns.ErrClosed, false},
		{ErrContainerd, false},
	} {
		if got := errors.Is(tt.err, ErrCapacity); got != tt.want {
			t.Errorf("errors.Is(%q, ErrCapacity) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
