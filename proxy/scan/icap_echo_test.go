package scan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// truncatedEcho is c-icap 0.5.10's answer, in virus_scan's default mode
// (no mode=simple), about a 6 MB download with EICAR at its end: it sends
// the headers of the file back before scanning, and on finding the threat
// ends the body at once, with nothing in the headers to say why.
const truncatedEcho = "ICAP/1.0 200 OK\r\nServer: C-ICAP/0.5.10\r\nConnection: keep-alive\r\n" +
	"ISTag: \"CI0001-L5CkDhq+qWNs+PZ5DxxXsAAA\"\r\nEncapsulated: res-hdr=0, res-body=123\r\n\r\n" +
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6000068\r\n" +
	"Via: ICAP/1.0 vm (C-ICAP/0.5.10 Antivirus service )\r\n\r\n0\r\n\r\n"

// echo is an answer that sends body back, under an HTTP response (hdr
// res-hdr) or request (req-hdr).
func echo(hdr string, body []byte) string {
	http := "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
	if hdr == "req-hdr" {
		http = "POST http://a.test/up HTTP/1.1\r\nHost: a.test\r\n\r\n"
	}
	bodyName := "res-body"
	if hdr == "req-hdr" {
		bodyName = "req-body"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ICAP/1.0 200 OK\r\nISTag: \"fake\"\r\nEncapsulated: %s=0, %s=%d\r\n\r\n%s", hdr, bodyName, len(http), http)
	// Chunks of 7, to show that their size is the server's to choose.
	for len(body) > 0 {
		n := min(7, len(body))
		fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

// fakeICAP is an ICAP server that reads each request to its last chunk and
// answers reply; it is a fake of the seam Scan talks across, for answers a
// real c-icap gives only in some modes, or should never give.
func fakeICAP(t *testing.T, reply string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				var req []byte
				buf := make([]byte, 32<<10)
				for !bytes.HasSuffix(req, []byte("\r\n0\r\n\r\n")) && !bytes.Contains(req, []byte("null-body=")) {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					req = append(req, buf[:n]...)
				}
				c.Write([]byte(reply))
			}()
		}
	}()
	return "icap://" + l.Addr().String() + "/avscan"
}

// TestICAPAnswers: what each answer means. A file sent back is clean only
// whole and unchanged: c-icap's cut-short echo of an infected file is not.
func TestICAPAnswers(t *testing.T) {
	file := []byte("a file of some thirty-odd bytes\n")
	changed := bytes.ToUpper(file)
	for _, tt := range []struct {
		name   string
		dir    string
		reply  string
		clean  bool
		threat string // in the verdict's Threat, when not clean
	}{
		{"204", Download, "ICAP/1.0 204 No Content\r\nISTag: \"fake\"\r\n\r\n", true, ""},
		{"c-icap's cut-short echo", Download, truncatedEcho, false, "cut short, 0 of 32 bytes"},
		{"whole echo", Download, echo("res-hdr", file), true, ""},
		{"changed echo", Download, echo("res-hdr", changed), false, "sent back changed"},
		{"longer echo", Download, echo("res-hdr", append(file, '!')), false, "longer"},
		{"upload sent on whole", Upload, echo("req-hdr", file), true, ""},
		{"upload sent on cut short", Upload, echo("req-hdr", file[:4]), false, "cut short"},
		{"upload answered with 200", Upload, echo("res-hdr", file), false, "HTTP 200"},
		{"403 page", Download, "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, null-body=19\r\n\r\nHTTP/1.1 403 No\r\n\r\n", false, "HTTP 403"},
		{"X-Infection-Found", Download, "ICAP/1.0 200 OK\r\nX-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Test-Signature;\r\n" +
			"Encapsulated: res-hdr=0, null-body=19\r\n\r\nHTTP/1.1 403 No\r\n\r\n", false, "Eicar-Test-Signature"},
		{"X-Violations-Found", Download, "ICAP/1.0 200 OK\r\nX-Violations-Found: 1\r\n\tmy file.txt\r\n\tEicar-Sig\r\n\t0\r\n\t2\r\n" +
			"Encapsulated: res-hdr=0, null-body=19\r\n\r\nHTTP/1.1 403 No\r\n\r\n", false, "Eicar-Sig"},
		{"infection in an echo", Download, strings.Replace(echo("res-hdr", file), "ISTag", "X-Infection-Found: Threat=Bad;\r\nISTag", 1), false, "Bad"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := NewICAP(fakeICAP(t, tt.reply), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			v, err := sc.Scan(t.Context(), File{Direction: tt.dir, Name: "f.txt", MIME: "text/plain",
				Size: int64(len(file)), URL: "http://a.test/f.txt", Body: bytes.NewReader(file)})
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if v.Clean != tt.clean || !strings.Contains(v.Threat, tt.threat) {
				t.Errorf("verdict %+v, want clean=%v with a threat saying %q", v, tt.clean, tt.threat)
			}
			if v.Scanner == "" {
				t.Error("no scanner named")
			}
		})
	}
}

// TestICAPCancel: the caller's ctx ends a scan the scanner sits on, well
// before the timeout.
func TestICAPCancel(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}
	}()
	sc, err := NewICAP("icap://"+l.Addr().String()+"/avscan", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = sc.Scan(ctx, File{Direction: Upload, Name: "f", Size: 3, Body: strings.NewReader("abc")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Scan: %v, want the ctx's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestICAPBadInput: a page's name, type and URL for a file cannot add
// headers to the request, and a body that is not its size is an error.
func TestICAPBadInput(t *testing.T) {
	u, err := NewICAP("icap://scanner/avscan", 0)
	if err != nil {
		t.Fatal(err)
	}
	if u.String() != "icap://scanner:1344/avscan" {
		t.Errorf("URL %s, want the default port filled in", u)
	}
	head := string(requestHead("RESPMOD", u.service, File{Direction: Download, Size: 1,
		Name: "a\r\nX-Evil: 1.txt", MIME: "text/html\r\nX-Evil: 2", URL: "http://a.test/x\r\nX-Evil: 3 y"}))
	for _, line := range strings.Split(head, "\r\n") {
		if strings.HasPrefix(line, "X-Evil") || strings.Contains(line, "\n") || strings.Contains(line, "\r") {
			t.Errorf("line %q in\n%s", line, head)
		}
	}
	if !strings.Contains(head, "Encapsulated: req-hdr=0, res-hdr=") {
		t.Errorf("no Encapsulated in\n%s", head)
	}
	sc, err := NewICAP(fakeICAP(t, "ICAP/1.0 204 No Content\r\n\r\n"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Scan(t.Context(), File{Direction: Download, Name: "f", Size: 10, Body: strings.NewReader("abc")}); err == nil {
		t.Error("a 3-byte body said to be 10: no error")
	}
	if _, err := sc.Scan(t.Context(), File{Direction: "sideways", Size: 0}); err == nil {
		t.Error("no direction: no error")
	}
}
