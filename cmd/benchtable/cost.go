package main

import (
	"fmt"
	"io"
)

// The cost per user, from the figures of a make bench run: what one tab
// costs in CPU and memory in each state, a stated browsing mix and
// concurrency, and cited public on-demand prices.

// Prices: Google Compute Engine N2, us-central1, on demand, as its price list
// gives them (https://cloud.google.com/compute/vm-instance-pricing,
// "N2 standard": n2-standard-2 = 2 vCPU × 0.031611 + 8 GiB × 0.004237 =
// $0.0971 an hour). A vCPU is a hardware thread, as a "core" of the VM the
// benchmarks run on is.
const (
	pricePerVCPUHour = 0.031611
	pricePerGiBHour  = 0.004237
	hoursPerMonth    = 730
	// concurrency is the share of the named users who have an isolated tab
	// open at any moment, with capacity provisioned for it all month.
	concurrency = 0.10
)

// mix is how an open tab's time is spent, with the benchmark whose CPU
// stands for each state (BenchmarkActiveTabCPU's pages).
var mix = []struct {
	state, bench string
	share        float64
}{
	{"hidden (another tab in front; frozen)", "BenchmarkActiveTabCPU/animated-hidden", 0.40},
	{"idle or reading (nothing moves)", "BenchmarkActiveTabCPU/static", 0.35},
	{"scrolling", "BenchmarkActiveTabCPU/scrolling", 0.15},
	{"video or animation", "BenchmarkActiveTabCPU/animated", 0.10},
}

// memoryBench is the memory per tab: the cgroup of each of ten idle tabs'
// containers, full Chromium.
const memoryBench = "BenchmarkIdleTabs/browser=chromium/tabs=10"

// Cost is the cost per user, with its inputs.
type Cost struct {
	States []CostState `json:"states"`
	// CoresPerTab and GiBPerTab are the mix's average.
	CoresPerTab float64 `json:"cores_per_tab"`
	GiBPerTab   float64 `json:"gib_per_tab"`
	Concurrency float64 `json:"concurrency"`
	// DollarsPerUserMonth is per named user.
	DollarsPerUserMonth float64 `json:"dollars_per_user_month"`
}

// CostState is one state of the mix.
type CostState struct {
	State string  `json:"state"`
	Share float64 `json:"share"`
	Cores float64 `json:"cores"` // Glovebox's and the remote Chromium's
}

// cost computes the cost per user from results, or reports which figure is
// missing.
func cost(results []Result) (Cost, error) {
	get := func(bench, unit string) (float64, bool) {
		for _, r := range results {
			if r.Benchmark == bench && r.Unit == unit {
				return r.Median, true
			}
		}
		return 0, false
	}
	var c Cost
	for _, s := range mix {
		server, ok1 := get(s.bench, "server-cores")
		remote, ok2 := get(s.bench, "remote-chromium-cores")
		if !ok1 || !ok2 {
			return Cost{}, fmt.Errorf("no CPU figures of %s", s.bench)
		}
		c.States = append(c.States, CostState{State: s.state, Share: s.share, Cores: server + remote})
		c.CoresPerTab += s.share * (server + remote)
	}
	mib, ok := get(memoryBench, "MiB-cgroup/tab")
	if !ok {
		return Cost{}, fmt.Errorf("no memory figure of %s", memoryBench)
	}
	c.GiBPerTab = mib / 1024
	c.Concurrency = concurrency
	perTabHour := c.CoresPerTab*pricePerVCPUHour + c.GiBPerTab*pricePerGiBHour
	c.DollarsPerUserMonth = concurrency * perTabHour * hoursPerMonth
	return c, nil
}

func writeCost(w io.Writer, c Cost) {
	fmt.Fprintln(w, "\n## Cost per user")
	fmt.Fprintln(w, "\n| state of an open tab | share of its time | CPU (Glovebox + remote Chromium) |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, s := range c.States {
		fmt.Fprintf(w, "| %s | %.0f %% | %s cores |\n", s.State, s.Share*100, num(s.Cores))
	}
	perTabHour := c.CoresPerTab*pricePerVCPUHour + c.GiBPerTab*pricePerGiBHour
	fmt.Fprintf(w, "\nAn open tab: %s cores and %s GiB (the cgroup memory of an idle tab) on average, $%.4f an hour "+
		"at $%.6f per vCPU-hour and $%.6f per GiB-hour (GCE N2, us-central1, on demand). "+
		"With %.0f %% of users having a tab open at any time, and capacity for them %d hours a month: "+
		"**$%.2f per user per month**.\n",
		num(c.CoresPerTab), num(c.GiBPerTab), perTabHour, pricePerVCPUHour, pricePerGiBHour,
		c.Concurrency*100, hoursPerMonth, c.DollarsPerUserMonth)
}
