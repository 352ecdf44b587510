package scan

import (
	"io"
	"strings"
	"testing"
)

// FuzzICAPResponse: no answer of a scanner (a compromised or broken one)
// crashes the parser, and an answer it accepts has a verdict or an error;
// a file sent back is read no further than one byte over its size.
func FuzzICAPResponse(f *testing.F) {
	f.Add("ICAP/1.0 204 No Content\r\nISTag: \"x\"\r\n\r\n")
	f.Add("ICAP/1.0 200 OK\r\nISTag: x\r\nX-Infection-Found: Type=0; Resolution=2; Threat=Eicar;\r\nEncapsulated: res-hdr=0, res-body=45\r\n\r\nHTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\n2\r\nno\r\n0\r\n\r\n")
	f.Add("ICAP/1.0 200 OK\r\nEncapsulated: req-hdr=0, req-body=20\r\n\r\nPOST / HTTP/1.1\r\n\r\n")
	f.Add("ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=50, res-body=0\r\n\r\n")
	f.Add(truncatedEcho)
	f.Add("ICAP/1.0 200 OK\r\nX-Violations-Found: 1\r\n\tf.txt\r\n\tEicar\r\n\t0\r\n\t2\r\nEncapsulated: res-hdr=0, null-body=19\r\n\r\nHTTP/1.1 403 No\r\n\r\n")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		r, body, err := parseResponse(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, dir := range []string{Download, Upload} {
			v, err := r.verdict(dir)
			if err == nil && v.Clean && v.Threat != "" {
				t.Fatalf("clean with a threat: %+v", v)
			}
		}
		const size = 10
		n, _ := readEcho(body, r.body, size, io.Discard)
		if n > size+1 {
			t.Fatalf("read %d bytes of a %d-byte file sent back", n, size)
		}
	})
}
