// Command benchtable turns `go test -bench` output into a markdown table of
// medians and a JSON file, with the machine that produced them.
//
//	go test -run '^$' -bench . -count 3 ./... | tee bench.out
//	go run ./cmd/benchtable -json bench-results/latest.json bench.out
//
// Each benchmark's figures (its b.ReportMetric units, ns/op left out when a
// benchmark reports it as 0) are collected over the -count runs; the table
// shows their median, with the range when the runs differ.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result is one benchmark's figure over its runs.
type Result struct {
	Package   string    `json:"package"`
	Benchmark string    `json:"benchmark"`
	Unit      string    `json:"unit"`
	Median    float64   `json:"median"`
	Min       float64   `json:"min"`
	Max       float64   `json:"max"`
	Runs      []float64 `json:"runs"`
}

// Machine describes where the figures were measured.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemoryGiB string `json:"memory_gib"`
	Kernel    string `json:"kernel"`
	OS        string `json:"os"`
	Go        string `json:"go"`
	Chromium  string `json:"chromium,omitempty"`
}

// Report is what the JSON file holds.
type Report struct {
	Time    time.Time `json:"time"`
	Machine Machine   `json:"machine"`
	Results []Result  `json:"results"`
	// Cost is the cost per user (cost.go), when the run has its figures.
	Cost *Cost `json:"cost,omitempty"`
}

func main() {
	jsonPath := flag.String("json", "", "also write the results as JSON to this file")
	flag.Parse()
	if err := run(flag.Args(), *jsonPath, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(files []string, jsonPath string, out io.Writer) error {
	var in []io.Reader
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return err
		}
		defer fh.Close()
		in = append(in, fh)
	}
	if len(in) == 0 {
		in = append(in, os.Stdin)
	}
	results, err := parse(io.MultiReader(in...))
	if err != nil {
		return err
	}
	if len(results) == 0 {
		return errors.New("no benchmark results in the input")
	}
	rep := Report{Time: time.Now().UTC(), Machine: machine(), Results: results}
	writeTable(out, rep)
	if c, err := cost(results); err == nil {
		rep.Cost = &c
		writeCost(out, c)
	} else {
		fmt.Fprintf(out, "\nNo cost per user: %v.\n", err)
	}
	if jsonPath == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(jsonPath), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(jsonPath, append(b, '\n'), 0o644)
}

// "BenchmarkX/sub-2   5   21.00 ms-p50   44.30 ms-p95"
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

func parse(r io.Reader) ([]Result, error) {
	type key struct{ pkg, bench, unit string }
	runs := map[key][]float64{}
	var order []key
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			unit := f[i+1]
			if unit == "ns/op" && v == 0 {
				continue // a benchmark that reports only its own figures
			}
			k := key{pkg, m[1], unit}
			if _, seen := runs[k]; !seen {
				order = append(order, k)
			}
			runs[k] = append(runs[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var out []Result
	for _, k := range order {
		v := runs[k]
		s := slices.Clone(v)
		slices.Sort(s)
		out = append(out, Result{Package: k.pkg, Benchmark: k.bench, Unit: k.unit,
			Median: s[len(s)/2], Min: s[0], Max: s[len(s)-1], Runs: v})
	}
	return out, nil
}

func writeTable(w io.Writer, rep Report) {
	m := rep.Machine
	fmt.Fprintf(w, "\nMachine: %d × %s, %s GiB, kernel %s, %s, %s", m.CPUs, m.CPUModel, m.MemoryGiB, m.Kernel, m.OS, m.Go)
	if m.Chromium != "" {
		fmt.Fprintf(w, ", %s", m.Chromium)
	}
	fmt.Fprintf(w, "\nMeasured %s. Medians over the runs (range when they differ).\n\n", rep.Time.Format(time.RFC3339))
	fmt.Fprintln(w, "| package | benchmark | figure | median | runs (min–max) |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range rep.Results {
		spread := fmt.Sprint(len(r.Runs))
		if r.Min != r.Max {
			spread += fmt.Sprintf(" (%s–%s)", num(r.Min), num(r.Max))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", filepath.Base(r.Package), strings.TrimPrefix(r.Benchmark, "Benchmark"), r.Unit, num(r.Median), spread)
	}
}

func num(v float64) string {
	switch a := max(v, -v); {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), OS: osName()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m.MemoryGiB = strconv.FormatFloat(kb/(1<<20), 'f', 1, 64)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("chromium", "--version").Output(); err == nil {
		m.Chromium = strings.TrimSpace(string(out))
	}
	return m
}

func osName() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return runtime.GOOS
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}
