//go:build !linux

package isolate

import (
	"context"
	"errors"
	"log/slog"
)

// managedDaemon needs Linux; NewContainerd fails before one is started.
type managedDaemon struct {
	socket string
}

func startDaemon(context.Context, ContainerdConfig, *slog.Logger) (*managedDaemon, error) {
	return nil, errors.New("isolate: the containerd runtime needs Linux")
}

func (d *managedDaemon) supervise(context.Context, func(context.Context)) {}
func (d *managedDaemon) health() error                                    { return nil }
func (d *managedDaemon) endSupervision()                                  {}
func (d *managedDaemon) stop() error                                      { return nil }
