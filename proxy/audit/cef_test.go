package audit

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// parseCEF is the test's own CEF reader, written from the format's
// specification and shared with nothing: seven header fields split on
// unescaped pipes, then key=value pairs, a value running to the space
// before the next key.
func parseCEF(t *testing.T, line string) (header []string, ext map[string]string) {
	t.Helper()
	var cur strings.Builder
	i := 0
	for ; i < len(line) && len(header) < 7; i++ {
		switch c := line[i]; {
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '|':
			header = append(header, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if len(header) != 7 {
		t.Fatalf("CEF header has %d fields: %q", len(header), line)
	}
	rest := line[i:]
	keyAt := regexp.MustCompile(`(?:^| )([A-Za-z0-9]+)=`)
	locs := keyAt.FindAllStringSubmatchIndex(rest, -1)
	// A key starts only after an unescaped space: "\=" never starts one.
	ext = map[string]string{}
	for n, l := range locs {
		end := len(rest)
		if n+1 < len(locs) {
			end = locs[n+1][0]
		}
		raw := rest[l[1]:end]
		v := strings.NewReplacer(`\\`, `\`, `\=`, `=`, `\n`, "\n", `\r`, "\r").Replace(raw)
		ext[rest[l[2]:l[3]]] = v
	}
	return header, ext
}

func TestCEFLine(t *testing.T) {
	var buf bytes.Buffer
	a := New(&buf)
	a.File(FileEvent{Event: EventDownload, Tab: "t1", ClientIP: "192.0.2.1", User: `dom\alice`, URL: "http://a.test/x?a=b|c",
		Host: "a.test", Name: "re=port|1\\.txt", MIME: "text/plain", Size: 42, SHA256: "ab12", Decision: FileDenied,
		Reason: "threat found", Verdict: "infected", Threat: "Eicar-Test\nSignature", Scanner: "c-icap"})
	line, err := CEFLine(bytes.TrimSpace(buf.Bytes()), "1.2|3")
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(line, "\n\r") {
		t.Fatalf("a CEF line with a line break: %q", line)
	}
	h, ext := parseCEF(t, line)
	if want := []string{"CEF:0", "Glovebox", "Glovebox", "1.2|3", "download", "Download", "8"}; strings.Join(h, "¦") != strings.Join(want, "¦") {
		t.Errorf("header = %q, want %q", h, want)
	}
	for k, want := range map[string]string{
		"src": "192.0.2.1", "suser": `dom\alice`, "request": "http://a.test/x?a=b|c", "dhost": "a.test",
		"fname": "re=port|1\\.txt", "fsize": "42", "fileHash": "ab12", "fileType": "text/plain", "act": "denied",
		"outcome": "failure", "reason": "threat found", "cs1": "t1", "cs1Label": "tab", "cs3": "infected",
		"cs4": "Eicar-Test\nSignature", "cs4Label": "threat",
	} {
		if ext[k] != want {
			t.Errorf("%s = %q, want %q (line %s)", k, ext[k], want, line)
		}
	}
	if ext["rt"] == "" {
		t.Errorf("no rt (event time) in %s", line)
	}

	for _, bad := range []string{"", "{", `{"time":"x"}`} {
		if _, err := CEFLine([]byte(bad), "1"); err == nil {
			t.Errorf("CEFLine(%q) accepted", bad)
		}
	}
}

func FuzzCEFLine(f *testing.F) {
	f.Add([]byte(`{"event":"download","file_name":"a|b=c\\d\ne","size":3}`))
	f.Add([]byte(`{"event":"x|y","url":"=\\=","tab":"t"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		out, err := CEFLine(line, "1")
		if err != nil {
			return
		}
		if strings.ContainsAny(out, "\n\r") {
			t.Fatalf("line break in %q", out)
		}
		if !strings.HasPrefix(out, "CEF:0|Glovebox|Glovebox|1|") {
			t.Fatalf("header of %q", out)
		}
	})
}
