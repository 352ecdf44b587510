package isolate

import (
	"slices"
	"strings"
	"testing"
)

func TestChromiumArgs(t *testing.T) {
	args := chromiumArgs("/tmp/glovebox-1", Spec{Width: 800, Height: 600}, []string{"--lang=de", "--disable-features=Foo,Bar"})
	var features []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--disable-features="); ok {
			features = append(features, v)
		}
		if a == "--no-sandbox" {
			t.Error("args have --no-sandbox")
		}
	}
	if len(features) != 1 || !strings.HasSuffix(features[0], ",Foo,Bar") || !strings.Contains(features[0], "WebUIOmniboxPopup") {
		t.Errorf("--disable-features = %q, want one merged list", features)
	}
	for _, want := range []string{"--headless=new", "--remote-debugging-port=0", "--user-data-dir=/tmp/glovebox-1", "--window-size=800,600", "--lang=de"} {
		if !slices.Contains(args, want) {
			t.Errorf("args lack %s: %q", want, args)
		}
	}
	if args[len(args)-1] != "about:blank" {
		t.Errorf("last arg = %q, want about:blank", args[len(args)-1])
	}
	if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--force-device-scale-factor") }) {
		t.Errorf("scale 1 sets --force-device-scale-factor: %q", args)
	}
	args = chromiumArgs("/tmp/glovebox-1", Spec{Width: 800, Height: 600, Scale: 1.5}, nil)
	if !slices.Contains(args, "--force-device-scale-factor=1.5") {
		t.Errorf("scale 1.5: args lack --force-device-scale-factor=1.5: %q", args)
	}
}

func TestTailBuffer(t *testing.T) {
	long := strings.Repeat("x", tailMax-10)
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{"nothing", nil, "no output"},
		{"blank", []string{"", "  "}, "no output"},
		{"lines", []string{"one", "two"}, "output ends with: one\ntwo"},
		{"oldest dropped", []string{"first", long, "last"}, "output ends with: " + long + "\nlast"},
		// A line as long as the whole tail keeps its end, and the older
		// lines go.
		{"long line", []string{"first", "ab" + strings.Repeat("y", tailMax)}, "output ends with: " + strings.Repeat("y", tailMax-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tb tailBuffer
			for _, l := range tt.lines {
				tb.WriteLine(l)
			}
			if got := tb.summary(); got != tt.want {
				t.Errorf("summary = %.60q…, want %.60q…", got, tt.want)
			}
			if n := len(tb.String()); n > tailMax {
				t.Errorf("keeps %d bytes, more than %d", n, tailMax)
			}
		})
	}
}
