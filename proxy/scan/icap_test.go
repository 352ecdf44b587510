package scan

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/glovebox/glovebox/internal/icaptest"
	"github.com/glovebox/glovebox/internal/testenv"
)

// TestICAPWithCICAP scans against a real c-icap with ClamAV: clean files
// pass both ways, EICAR is a threat both ways, a large clean file passes.
func TestICAPWithCICAP(t *testing.T) {
	srv := startICAP(t)
	sc, err := NewICAP(srv.URL, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	clean := []byte(strings.Repeat("a clean report\n", 1000))
	big := bytes.Repeat([]byte("0123456789abcdef"), 5<<20/16)
	for _, tt := range []struct {
		name      string
		dir       string
		body      []byte
		wantClean bool
	}{
		{"clean download", Download, clean, true},
		{"EICAR download", Download, []byte(icaptest.EICAR), false},
		{"clean upload", Upload, clean, true},
		{"EICAR upload", Upload, []byte(icaptest.EICAR), false},
		{"5 MiB clean download", Download, big, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, err := sc.Scan(t.Context(), File{Direction: tt.dir, Name: "f.bin", MIME: "application/octet-stream",
				Size: int64(len(tt.body)), URL: "http://a.test/f.bin", Body: bytes.NewReader(tt.body)})
			if err != nil {
				t.Fatalf("Scan: %v\n%s", err, srv.Log())
			}
			if v.Clean != tt.wantClean {
				t.Fatalf("verdict %+v, want clean=%v", v, tt.wantClean)
			}
			if !tt.wantClean && !strings.Contains(v.Threat, icaptest.Threat) {
				t.Errorf("threat %q, want %s", v.Threat, icaptest.Threat)
			}
			if v.Scanner == "" {
				t.Error("no scanner named in the verdict")
			}
		})
	}
}

// TestICAPDefaultMode: in c-icap's default mode a large file starts coming
// back before the scan ends; one with EICAR at its end is cut short, with
// no infection header, and must not pass as clean. A clean one passes.
func TestICAPDefaultMode(t *testing.T) {
	srv := startICAP(t)
	sc, err := NewICAP(srv.DefaultURL, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 6<<20/16)
	infected := append(append([]byte{}, big...), icaptest.EICAR...)
	for _, tt := range []struct {
		name      string
		body      []byte
		wantClean bool
	}{{"6 MiB clean", big, true}, {"6 MiB with EICAR at the end", infected, false}, {"EICAR alone", []byte(icaptest.EICAR), false}} {
		t.Run(tt.name, func(t *testing.T) {
			v, err := sc.Scan(t.Context(), File{Direction: Download, Name: "f.bin", Size: int64(len(tt.body)), URL: "http://a.test/f.bin", Body: bytes.NewReader(tt.body)})
			if err != nil {
				t.Fatalf("Scan: %v\n%s", err, srv.Log())
			}
			if v.Clean != tt.wantClean {
				t.Fatalf("verdict %+v, want clean=%v", v, tt.wantClean)
			}
		})
	}
}

// TestICAPFailures: no verdict is an error: nothing listening, a server
// that never answers (within the timeout), one that answers garbage.
func TestICAPFailures(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	scanWith := func(url string, timeout time.Duration) error {
		sc, err := NewICAP(url, timeout)
		if err != nil {
			t.Fatal(err)
		}
		_, err = sc.Scan(context.Background(), File{Direction: Download, Name: "f", Size: 3, Body: strings.NewReader("abc")})
		return err
	}
	if err := scanWith("icap://"+addr+"/avscan", time.Second); err == nil {
		t.Error("a scanner that is down: no error")
	}
	serve := func(reply string) string {
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
					buf := make([]byte, 4096)
					c.Read(buf)
					if reply == "" {
						c.SetReadDeadline(time.Now().Add(10 * time.Second))
						for {
							if _, err := c.Read(buf); err != nil {
								return
							}
						}
					}
					c.Write([]byte(reply))
				}()
			}
		}()
		return "icap://" + l.Addr().String() + "/avscan"
	}
	start := time.Now()
	if err := scanWith(serve(""), 500*time.Millisecond); err == nil {
		t.Error("a scanner that never answers: no error")
	} else if time.Since(start) > 5*time.Second {
		t.Errorf("the timeout of 500ms took %v", time.Since(start))
	}
	if err := scanWith(serve("HTTP/1.1 200 OK\r\n\r\nhello"), time.Second); err == nil {
		t.Error("a server that answers garbage: no error")
	}
	if err := scanWith(serve("ICAP/1.0 500 Server Error\r\n\r\n"), time.Second); err == nil {
		t.Error("an ICAP 500: no error")
	}
	for _, bad := range []string{"http://a/avscan", "icap:///avscan", "icap://a:1344/", "icap://a:99999/x"} {
		if _, err := NewICAP(bad, 0); err == nil {
			t.Errorf("NewICAP(%q): no error", bad)
		}
	}
}

// startICAP starts a real c-icap with ClamAV (a missing one fails in CI).
func startICAP(t testing.TB) *icaptest.Server {
	t.Helper()
	if err := icaptest.Missing(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	return icaptest.Start(t, 200)
}
