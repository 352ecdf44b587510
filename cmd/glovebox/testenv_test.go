package main

import (
	"testing"

	"github.com/glovebox/glovebox/internal/testenv"
)

// missing skips t because this machine lacks something it needs, or fails it
// under GLOVEBOX_REQUIRE=all (testenv.Missing). It is here, one function,
// so that the package's many test files need no import of their own.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	testenv.Missing(t, format, args...)
}
