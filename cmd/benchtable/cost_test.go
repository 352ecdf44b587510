package main

import (
	"math"
	"strings"
	"testing"
)

func TestCost(t *testing.T) {
	in := `pkg: github.com/glovebox/glovebox/cmd/glovebox
BenchmarkActiveTabCPU/static-2 5 0.007 server-cores 0.006 remote-chromium-cores
BenchmarkActiveTabCPU/animated-2 5 0.2 server-cores 0.7 remote-chromium-cores
BenchmarkActiveTabCPU/scrolling-2 5 0.3 server-cores 0.9 remote-chromium-cores
BenchmarkActiveTabCPU/animated-hidden-2 5 0.004 server-cores 0.003 remote-chromium-cores
BenchmarkIdleTabs/browser=chromium/tabs=10-2 1 128 MiB-cgroup/tab
`
	results, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	c, err := cost(results)
	if err != nil {
		t.Fatal(err)
	}
	cores := 0.40*0.007 + 0.35*0.013 + 0.15*1.2 + 0.10*0.9
	if math.Abs(c.CoresPerTab-cores) > 1e-9 || c.GiBPerTab != 0.125 {
		t.Errorf("per tab %v cores %v GiB, want %v and 0.125", c.CoresPerTab, c.GiBPerTab, cores)
	}
	want := 0.10 * (cores*0.031611 + 0.125*0.004237) * 730
	if math.Abs(c.DollarsPerUserMonth-want) > 1e-9 {
		t.Errorf("$%v per user a month, want $%v", c.DollarsPerUserMonth, want)
	}
	var out strings.Builder
	writeCost(&out, c)
	if !strings.Contains(out.String(), "per user per month") {
		t.Errorf("cost section:\n%s", out.String())
	}
	if _, err := cost(results[:3]); err == nil || !strings.Contains(err.Error(), "animated-hidden") {
		t.Errorf("without the hidden tab's figures: %v", err)
	}
}
