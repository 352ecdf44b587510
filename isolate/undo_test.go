package isolate

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestUndoList(t *testing.T) {
	var u undoList
	var ran []int
	errTwo, errFour := errors.New("two"), errors.New("four")
	for i, err := range []error{nil, nil, errTwo, nil, errFour} {
		u.add(func(context.Context) error {
			ran = append(ran, i)
			return err
		})
	}
	err := u.run(t.Context())
	if want := []int{4, 3, 2, 1, 0}; !slices.Equal(ran, want) {
		t.Errorf("ran %v, want %v: the last registered first, and all of them", ran, want)
	}
	if !errors.Is(err, errTwo) || !errors.Is(err, errFour) {
		t.Errorf("run = %v, want both errors", err)
	}
	if err := (undoList{}).run(t.Context()); err != nil {
		t.Errorf("an empty list: %v", err)
	}
}
