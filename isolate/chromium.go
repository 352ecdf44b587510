package isolate

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// What both runtimes know of Chromium: its command line, the flags a
// configuration may not give it, its output's tail and its processes' state.

// disabledFeatures turn off Chromium services a headless tab does not need;
// together they cut a browser's memory by about 57 MiB (notes/memory.md: the
// omnibox WebUI renderer went only once the WebUIOmnibox* names were there).
var disabledFeatures = []string{
	"Translate", "OptimizationHints", "OptimizationGuideModelDownloading",
	"OptimizationHintsFetching", "MediaRouter", "DialMediaRouteProvider",
	"BackForwardCache", "SpareRendererForSitePerProcess", "PreloadTopChromeWebUI",
	"AutofillServerCommunication", "CertificateTransparencyComponentUpdater",
	"InterestFeedContentSuggestions", "HeavyAdIntervention", "LensOverlay",
	"PrivacySandboxSettings4", "GlobalMediaControls", "WebUIOmniboxPopup",
	"WebUIOmniboxAimPopup", "WebUIOmniboxFullPopup",
}

// baseFlags keep a headless Chromium quiet and small. In a container the
// managed policies (policy.go) hold it further; whatever still gets out, the
// egress proxy must refuse.
var baseFlags = []string{
	"--headless=new",
	"--no-first-run",
	"--no-default-browser-check",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--disable-gpu",
	"--disable-breakpad",
	"--password-store=basic",
	"--use-mock-keychain",
	"--mute-audio",
	"--hide-scrollbars",
	"--disable-extensions",
	"--disable-component-extensions-with-background-pages",
	"--disable-default-apps",
	"--disable-client-side-phishing-detection",
	"--disable-domain-reliability",
	"--no-pings",
	// Chromium 156 lists the Google accounts of the cookie jar at every
	// start (IdentityManager::OnNetworkInitialized) and asks for its
	// on-device model manifest, whatever the flags above and the managed
	// policies say. Port 9 is one Chromium never connects to
	// (ERR_UNSAFE_PORT), so both fail inside the browser instead of
	// reaching the egress proxy.
	"--gaia-url=http://127.0.0.1:9",
	"--component-updater=url-source=http://127.0.0.1:9/",
}

// chromiumArgs returns the command line of a browser with the profile dir.
// Chromium keeps only the last of a repeated switch, so a --disable-features
// in extra is merged into one list rather than passed on.
func chromiumArgs(dir string, spec Spec, extra []string) []string {
	features := append([]string(nil), disabledFeatures...)
	args := append([]string(nil), baseFlags...)
	var rest []string
	for _, f := range extra {
		if v, ok := strings.CutPrefix(f, "--disable-features="); ok {
			features = append(features, v)
			continue
		}
		rest = append(rest, f)
	}
	args = append(args,
		// Port 0: Chromium picks a free port and writes it to
		// DevToolsActivePort. Chromium 156 ignores
		// --remote-debugging-address, so DevTools is on 127.0.0.1 only.
		"--remote-debugging-port=0",
		"--user-data-dir="+dir,
		"--disable-features="+strings.Join(features, ","),
		// The first screencast frames come at the window size, before
		// render's viewport override applies (notes/media.md, pitfall 6).
		fmt.Sprintf("--window-size=%d,%d", spec.Width, spec.Height),
	)
	if spec.Scale != 0 && spec.Scale != 1 {
		args = append(args, "--force-device-scale-factor="+strconv.FormatFloat(spec.Scale, 'g', -1, 64))
	}
	args = append(args, rest...)
	return append(args, "about:blank")
}

// ownedFlags are set by the runtime or would weaken the isolation it gives;
// Flags must not contain them.
var ownedFlags = map[string]string{
	"--no-sandbox":                "Chromium's sandbox stays on",
	"--disable-setuid-sandbox":    "Chromium's sandbox stays on",
	"--single-process":            "it removes the renderer sandbox",
	"--no-zygote":                 "Chromium's sandbox stays on",
	"--remote-debugging-port":     "the runtime sets it",
	"--remote-debugging-pipe":     "the runtime uses the DevTools port",
	"--remote-debugging-address":  "the runtime sets DevTools up",
	"--user-data-dir":             "the runtime gives each browser its own profile",
	"--window-size":               "it is set from each tab's viewport",
	"--force-device-scale-factor": "it is set from each tab's scale",
}

// flagErrors reports each of flags that is not a flag or is refused by
// ownedFlags or by the runtime's own refused list (which may be nil), naming
// its index under the key "flags".
func flagErrors(flags []string, refused map[string]string) []error {
	var errs []error
	for i, f := range flags {
		name, _, _ := strings.Cut(f, "=")
		if !strings.HasPrefix(f, "--") || len(name) < 3 {
			errs = append(errs, fmt.Errorf("flags[%d]: %q must start with --", i, f))
			continue
		}
		why, ok := ownedFlags[name]
		if !ok {
			why, ok = refused[name]
		}
		if ok {
			errs = append(errs, fmt.Errorf("flags[%d]: %s is not allowed: %s", i, name, why))
		}
	}
	return errs
}

// tailBuffer keeps the last lines written to it, up to tailMax bytes.
type tailBuffer struct{ lines []string }

const tailMax = 2048

// WriteLine adds a line and drops the oldest beyond tailMax bytes.
func (t *tailBuffer) WriteLine(s string) {
	// Each line counts with its newline: a longer one would not fit at all.
	if len(s) > tailMax-1 {
		s = s[len(s)-(tailMax-1):]
	}
	t.lines = append(t.lines, s)
	n := 0
	for i := len(t.lines) - 1; i >= 0; i-- {
		n += len(t.lines[i]) + 1
		if n > tailMax {
			t.lines = append(t.lines[:0], t.lines[i+1:]...)
			break
		}
	}
}

func (t *tailBuffer) String() string { return strings.Join(t.lines, "\n") }

// summary says how the output ends, for a start error: "no output", or
// "output ends with: " and the tail.
func (t *tailBuffer) summary() string {
	s := strings.TrimSpace(t.String())
	if s == "" {
		return "no output"
	}
	return "output ends with: " + s
}

// procStat is what the runtimes read of a process's /proc/PID/stat.
type procStat struct {
	state byte
	pgrp  int
}

// readProcStat reads the state and process group from /proc/PID/stat.
func readProcStat(pid int) (procStat, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// The command name is in parentheses and may hold spaces or ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(data[i+1:])) // state ppid pgrp ...
	if len(f) < 3 || len(f[0]) != 1 {
		return procStat{}, false
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procStat{}, false
	}
	return procStat{state: f[0][0], pgrp: pgrp}, true
}

// lastWords waits a little for the output of a browser that exited during
// its start to end, so that its error can quote it. Crashpad, which
// outlives the browser, can hold the pipe open: it does not wait long.
func lastWords(outputDone <-chan struct{}) {
	select {
	case <-outputDone:
	case <-time.After(500 * time.Millisecond):
	}
}
