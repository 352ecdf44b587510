//go:build !linux

package podnet

import "errors"

// Lock needs Linux's nftables.
func Lock(Rules) error { return errors.New("podnet: nftables needs Linux") }
