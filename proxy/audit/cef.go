package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// CEF is ArcSight's Common Event Format, which every SIEM reads:
//
//	CEF:0|Glovebox|Glovebox|<version>|<event>|<name>|<severity>|<extension>
//
// The event's fields map to CEF's standard extension keys where one means
// the same (cefKeys), to labelled custom strings and numbers (cs1…cs6,
// cn1…cn3) for the tab id, the rule and the like, and what has no key of
// its own is left out of CEF (the JSON line has everything).

// cefNames are the CEF names of the events.
var cefNames = map[string]string{
	EventRequest:   "Proxy request",
	EventTabStart:  "Isolated tab started",
	EventTabEnd:    "Isolated tab ended",
	EventEgress:    "Isolated browser request",
	EventError:     "Error",
	EventDownload:  "Download",
	EventUpload:    "Upload",
	EventPrint:     "Print",
	EventClipboard: "Clipboard",
	EventNavigate:  "Isolated page navigated",
	EventDialog:    "Dialog answered",
	EventAdmin:     "Administrator action",
}

// cefKey is where an event field goes in CEF: a standard key, or a
// custom field with its label.
type cefKey struct {
	key, label string
}

// cefKeys map event fields to CEF extension keys.
var cefKeys = map[string]cefKey{
	"client_ip":   {key: "src"},
	"user":        {key: "suser"},
	"admin":       {key: "suser"}, // admin_action's actor; it has no user
	"method":      {key: "requestMethod"},
	"url":         {key: "request"},
	"host":        {key: "dhost"},
	"dest_ip":     {key: "dst"},
	"action":      {key: "act"},
	"decision":    {key: "act"},
	"reason":      {key: "reason"},
	"bytes":       {key: "out"},
	"file_name":   {key: "fname"},
	"size":        {key: "fsize"},
	"sha256":      {key: "fileHash"},
	"mime":        {key: "fileType"},
	"recording":   {key: "filePath"},
	"error":       {key: "msg"},
	"request_id":  {key: "externalId"},
	"tab":         {key: "cs1", label: "tab"},
	"rule":        {key: "cs2", label: "rule"},
	"verdict":     {key: "cs3", label: "verdict"},
	"threat":      {key: "cs4", label: "threat"},
	"direction":   {key: "cs5", label: "direction"},
	"browser":     {key: "cs6", label: "browser"},
	"target":      {key: "cs6", label: "target"}, // admin_action has no browser
	"status":      {key: "cn1", label: "status"},
	"duration_ms": {key: "cn2", label: "durationMs"},
	"frames":      {key: "cn3", label: "frames"},
	// Custom fields of events that have none of the above in the slot.
	"title":  {key: "cs4", label: "title"},  // tab_navigate (no threat)
	"how":    {key: "cs5", label: "how"},    // tab_navigate (no direction)
	"opener": {key: "cs5", label: "opener"}, // tab_start
	"kind":   {key: "cs3", label: "kind"},   // dialog, clipboard (no verdict)
	"answer": {key: "act"},                  // dialog
}

// CEFLine turns one audit event, as its JSON line, into a CEF line (no
// newline) of Glovebox version.
func CEFLine(line []byte, version string) (string, error) {
	var ev map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		return "", fmt.Errorf("cef: %w", err)
	}
	name, _ := ev["event"].(string)
	if name == "" {
		return "", fmt.Errorf("cef: the line has no event name")
	}
	title := cefNames[name]
	if title == "" {
		title = name
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CEF:0|Glovebox|Glovebox|%s|%s|%s|%d|", cefHeader(version), cefHeader(name), cefHeader(title), cefSeverity(ev))
	var ext []string
	if t, ok := ev["time"].(string); ok {
		if ts, err := time.Parse(time.RFC3339Nano, t); err == nil {
			ext = append(ext, "rt="+strconv.FormatInt(ts.UnixMilli(), 10))
		}
	}
	if o := cefOutcome(ev); o != "" {
		ext = append(ext, "outcome="+o)
	}
	fields := make([]string, 0, len(ev))
	for k := range ev {
		fields = append(fields, k)
	}
	sort.Strings(fields)
	used := map[string]bool{}
	for _, f := range fields {
		k, ok := cefKeys[f]
		if !ok || used[k.key] {
			continue
		}
		v := cefValue(ev[f])
		if v == "" {
			continue
		}
		used[k.key] = true
		if k.label != "" {
			ext = append(ext, k.key+"Label="+cefExt(k.label))
		}
		ext = append(ext, k.key+"="+cefExt(v))
	}
	b.WriteString(strings.Join(ext, " "))
	return b.String(), nil
}

// cefSeverity is 0 (low) to 10: 8 for a threat found, 5 for what was
// refused or blocked, 7 for errors, 3 otherwise.
func cefSeverity(ev map[string]any) int {
	switch {
	case ev["verdict"] == "infected":
		return 8
	case ev["event"] == EventError:
		return 7
	case ev["decision"] == FileDenied, ev["action"] == "block", ev["action"] == "refuse":
		return 5
	}
	return 3
}

// cefOutcome is success or failure where the event decided something.
func cefOutcome(ev map[string]any) string {
	switch {
	case ev["decision"] == FileDenied, ev["action"] == "block", ev["action"] == "refuse":
		return "failure"
	case ev["decision"] != nil, ev["action"] != nil:
		return "success"
	}
	return ""
}

func cefValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// cefHeader escapes a header field: backslash and pipe; a header has no
// line breaks.
func cefHeader(s string) string {
	return strings.NewReplacer(`\`, `\\`, `|`, `\|`, "\r", " ", "\n", " ").Replace(s)
}

// cefExt escapes an extension value: backslash, equals and line breaks.
func cefExt(s string) string {
	return strings.NewReplacer(`\`, `\\`, `=`, `\=`, "\r\n", `\n`, "\n", `\n`, "\r", `\r`).Replace(s)
}
