package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `goos: linux
pkg: github.com/glovebox/glovebox/cmd/glovebox
BenchmarkClickToPhoton/720p-2         	       1	         0 clicks-missed	        21.00 ms-p50	        44.30 ms-p95
BenchmarkClickToPhoton/720p-2         	       1	         0 clicks-missed	        25.00 ms-p50	        40.00 ms-p95
BenchmarkClickToPhoton/720p-2         	       1	         0 clicks-missed	        23.00 ms-p50	        50.00 ms-p95
pkg: github.com/glovebox/glovebox/stream
BenchmarkEncode720p-2        	      60	   8477933 ns/op	         2.297 decode-ms/frame
PASS
`

func TestRun(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "bench.out")
	if err := os.WriteFile(in, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	js := filepath.Join(dir, "out", "latest.json")
	var table strings.Builder
	if err := run([]string{in}, js, &table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| glovebox | ClickToPhoton/720p | ms-p50 | 23.00 | 3 (21.00–25.00) |",
		"| glovebox | ClickToPhoton/720p | ms-p95 | 44.30 | 3 (40.00–50.00) |",
		"| glovebox | ClickToPhoton/720p | clicks-missed | 0 | 3 |",
		"| stream | Encode720p | ns/op | 8477933 | 1 |",
		"Machine: ",
	} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	raw, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 5 || rep.Machine.CPUs == 0 || rep.Results[1].Median != 23 {
		t.Errorf("json: %+v", rep)
	}
	if err := run([]string{filepath.Join(dir, "none")}, "", &table); err == nil {
		t.Error("missing file: no error")
	}
}
