package pac

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzPACSettings feeds arbitrary pac settings (pac.proxy, pac.direct as
// lines, pac.direct_private) and Host headers to the PAC file generator. A
// configuration Validate accepts makes a PAC file whose every configured
// value sits inside a JavaScript string literal it cannot end, around
// which is only the generator's fixed text. Seeds in testdata/fuzz/FuzzPACSettings.
func FuzzPACSettings(f *testing.F) {
	f.Fuzz(func(t *testing.T, proxyAddr, direct string, directPrivate bool, host string) {
		c := Config{Proxy: proxyAddr, DirectPrivate: directPrivate}
		if direct != "" {
			c.Direct = strings.Split(direct, "\n")
		}
		if err := c.Validate(); err != nil {
			if !strings.HasPrefix(err.Error(), "pac.") {
				t.Fatalf("error %q does not name its key", err)
			}
			return
		}
		addr := c.Proxy
		if addr == "" {
			r := (&http.Request{Host: host}).WithContext(context.WithValue(context.Background(),
				http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 3128}))
			addr = pacAddrFor(r)
		}
		script, err := c.Script(addr)
		if err != nil {
			t.Fatalf("Validate accepted %+v (proxy address %q), Script refused it: %v", c, addr, err)
		}
		checkPACScript(t, c, string(script))
	})
}

// pacSkeleton is the part of the PAC file before pacLogic once each string
// literal is replaced by "": nothing a configuration sets may appear in it.
var pacSkeleton = regexp.MustCompile(`^` + regexp.QuoteMeta(
	"// Proxy auto-configuration for Glovebox, made from its pac settings.\n"+
		"// Everything goes through Glovebox except what is listed as direct.\n") +
	`var GLOVEBOX = "";\n` +
	`var DIRECT_DOMAINS = \[(""(,"")*)?\];\n` +
	`var DIRECT_IPS = \[(""(,"")*)?\];\n` +
	`var DIRECT_NETS = \[(\["",\d{1,2}\](,\["",\d{1,2}\])*)?\];\n` +
	`var DIRECT_PRIVATE = (true|false);\n$`)

// pacValue is what a value inside the script may be: a host name, an IP
// address, or either with a port after "PROXY ".
var pacValue = regexp.MustCompile(`^(PROXY )?[a-z0-9_.:\[\]-]+$`)

// checkPACScript fails t unless script is the generator's fixed text with
// only well-formed, properly quoted values in it.
func checkPACScript(t *testing.T, c Config, script string) {
	t.Helper()
	vars, ok := strings.CutSuffix(script, pacLogic)
	if !ok {
		t.Fatalf("the script does not end with the fixed logic:\n%s", script)
	}
	skeleton, values, err := blankJSStrings(vars)
	if err != nil {
		t.Fatalf("%v in:\n%s", err, vars)
	}
	if !pacSkeleton.MatchString(skeleton) {
		t.Fatalf("outside its string literals the script is not the template's text:\n%s", skeleton)
	}
	if want := 1 + len(c.Direct); len(values) != want {
		t.Fatalf("%d string literals for %d pac.direct entries:\n%s", len(values), len(c.Direct), vars)
	}
	if !strings.HasPrefix(values[0], "PROXY ") {
		t.Fatalf("GLOVEBOX = %q", values[0])
	}
	for _, v := range values {
		if !pacValue.MatchString(v) {
			t.Fatalf("value %q in the script is not a plain name or address (config %+v)", v, c)
		}
	}
	if strings.Contains(skeleton, "DIRECT_PRIVATE = true") != c.DirectPrivate {
		t.Fatalf("DIRECT_PRIVATE does not follow pac.direct_private = %v", c.DirectPrivate)
	}
}

// blankJSStrings replaces each double-quoted JavaScript string literal in
// src by "" and returns the literals' values. It fails on a literal that a
// JavaScript engine would end early or read differently from JSON: one with a
// raw line terminator (U+2028 and U+2029 included, which end a literal in
// pre-2019 engines) or control character, or an escape JSON does not have.
func blankJSStrings(src string) (string, []string, error) {
	var out strings.Builder
	var values []string
	for i := 0; i < len(src); {
		if src[i] != '"' {
			if src[i] == '\'' || src[i] == '`' {
				return "", nil, fmt.Errorf("a %c string outside the template at byte %d", src[i], i)
			}
			out.WriteByte(src[i])
			i++
			continue
		}
		j := i + 1
		for {
			if j >= len(src) {
				return "", nil, fmt.Errorf("unterminated string literal at byte %d", i)
			}
			r, n := utf8.DecodeRuneInString(src[j:])
			switch {
			case r == utf8.RuneError && n == 1:
				return "", nil, fmt.Errorf("invalid UTF-8 in the string literal at byte %d", i)
			case r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029':
				return "", nil, fmt.Errorf("raw %U in the string literal at byte %d", r, i)
			case r == '\\':
				if j+1 >= len(src) || !strings.ContainsRune(`"\/bfnrtu`, rune(src[j+1])) {
					return "", nil, fmt.Errorf("escape JSON does not have in the string literal at byte %d", i)
				}
				n = 2
			}
			if r == '"' {
				break
			}
			j += n
		}
		var v string
		if err := json.Unmarshal([]byte(src[i:j+1]), &v); err != nil {
			return "", nil, fmt.Errorf("string literal %s: %v", src[i:j+1], err)
		}
		values = append(values, v)
		out.WriteString(`""`)
		i = j + 1
	}
	return out.String(), values, nil
}
