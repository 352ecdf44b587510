//go:build !linux

package netns

import (
	"context"
	"errors"
	"log/slog"
)

// errNoNetwork is what every network call returns off Linux.
var errNoNetwork = errors.New("isolate: container networking needs Linux")

// New fails: container networking needs Linux.
func New(cfg Config, log *slog.Logger) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return nil, errNoNetwork
}

// Attach fails: container networking needs Linux.
func (n *Network) Attach(ctx context.Context, id string, netnsPath string) (*Link, error) {
	return nil, errNoNetwork
}

// Reap does nothing: there is nothing to reap off Linux.
func (n *Network) Reap() error { return nil }

// Close does nothing: no Network is ever made off Linux.
func (n *Network) Close() error { return nil }

// Close does nothing: no Link is ever made off Linux.
func (l *Link) Close() error { return nil }
