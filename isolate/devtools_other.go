//go:build !linux

package isolate

import (
	"context"
	"errors"
	"log/slog"
)

// devtoolsForwarder needs Linux's network namespaces; NewContainerd fails
// before one is made.
type devtoolsForwarder struct{}

func newDevtoolsForwarder(context.Context, string, string, *slog.Logger) (*devtoolsForwarder, error) {
	return nil, errors.New("isolate: the containerd runtime needs Linux")
}

func (f *devtoolsForwarder) Socket() string { return "" }

func (f *devtoolsForwarder) Close() error { return nil }
