//go:build !linux

package isolate

import (
	"errors"
	"syscall"
)

// supported reports whether the process runtime works on this OS.
const supported = false

func sysProcAttr(*syscall.Credential) *syscall.SysProcAttr { return nil }

func killTree(int, bool, string, int) error {
	return errors.New("isolate: the process runtime needs Linux")
}
