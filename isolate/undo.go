package isolate

import (
	"context"
	"errors"
)

// undoList is what a start has made, as the functions that take it back.
type undoList []func(ctx context.Context) error

// add registers fn, to run before everything registered so far.
func (u *undoList) add(fn func(ctx context.Context) error) { *u = append(*u, fn) }

// run calls every function, the last registered first, whatever fails, and
// joins their errors.
func (u undoList) run(ctx context.Context) error {
	var errs []error
	for i := len(u) - 1; i >= 0; i-- {
		if err := u[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
