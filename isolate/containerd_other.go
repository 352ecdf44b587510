//go:build !linux

package isolate

import (
	"context"
	"errors"
	"log/slog"
	"os/exec"
)

// managedDaemon needs Linux; NewContainerd fails before one is started.
type managedDaemon struct {
	socket string
	cmd    *exec.Cmd
}

func startDaemon(context.Context, ContainerdConfig, *slog.Logger) (*managedDaemon, error) {
	return nil, errors.New("isolate: the containerd runtime needs Linux")
}

func (d *managedDaemon) stop() error { return nil }
