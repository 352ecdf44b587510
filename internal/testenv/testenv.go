// Package testenv decides what a test does when this machine lacks something
// it needs (root, Chromium, containerd, a tool): it skips, saying why, unless
// GLOVEBOX_REQUIRE=all asks for everything to run, as CI does, where a
// missing thing means a broken install and fails the test instead.
//
// Only tests import it (TestOnlyTestsImport holds that).
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// Env is the environment variable that turns skips into failures; "all" is
// its one value.
const Env = "GLOVEBOX_REQUIRE"

// Missing skips tb with the reason format gives, or fails it with that
// reason when GLOVEBOX_REQUIRE=all.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	decide(tb, os.Getenv(Env), testing.Short(), fmt.Sprintf(format, args...))
}

// SkipShort skips tb under -short, with reason: leaving slow tests out is a
// developer's choice. Under GLOVEBOX_REQUIRE=all it fails instead, since
// -short would leave out what that run must run.
func SkipShort(tb testing.TB, reason string) {
	tb.Helper()
	if testing.Short() {
		decide(tb, os.Getenv(Env), true, reason)
	}
}

// decide skips or fails tb, which cannot run for reason, given the value of
// GLOVEBOX_REQUIRE and whether -short is set.
func decide(tb testing.TB, require string, short bool, reason string) {
	tb.Helper()
	switch {
	case require == "":
		tb.Skip(reason)
	case require != "all":
		// A misspelt value must not quietly skip what CI means to run.
		tb.Fatalf("%s=%q, and all is its one value; the test would skip: %s", Env, require, reason)
	case short:
		tb.Fatalf("%s=all with -short, which leaves out tests this run must run: %s", Env, reason)
	default:
		tb.Fatalf("%s (%s=all: nothing may be missing)", reason, Env)
	}
}
