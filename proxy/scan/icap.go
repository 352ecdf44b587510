package scan

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"mime"
	"net"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultICAPPort is the port of an icap:// URL that names none (RFC 3507).
const DefaultICAPPort = "1344"

// DefaultICAPTimeout bounds one exchange with the scanner when NewICAP is
// given no timeout. It is generous because the scanner reads the whole file
// before it answers, and a 100 MB archive takes ClamAV a while.
const DefaultICAPTimeout = 2 * time.Minute

// maxResponseHeader bounds what Scan reads of an answer's headers: the
// ICAP headers and the encapsulated HTTP headers together. Of the
// encapsulated body, a block page is never read; a file sent back is read
// to compare with the one sent, and no further than its size.
const maxResponseHeader = 64 << 10

// ICAP is a Scanner that asks an ICAP server (c-icap with virus_scan,
// Squid's usual antivirus, or a secure web gateway): RESPMOD for downloads,
// REQMOD for uploads, one connection per file, the whole body sent without
// preview, and Allow: 204 so that a clean file costs no echo.
//
// A file sent back (200 with the HTTP 2xx) is clean only if it comes back
// whole and unchanged. c-icap's virus_scan, in its default mode, answers a
// file over about 64 KiB that way, headers first, before it has scanned
// it; when it then finds a threat it ends the body early (a 0 chunk,
// nothing in the headers), and only the short body says so.
//
// The server's own size limit matters: c-icap's virus_scan.MaxObjectSize
// (5M by default) lets larger files through unscanned, answering as it
// would for a clean one, so set it above download_max_mb and upload_max_mb
// (virus_scan.MaxObjectSize 200M for the default 100).
type ICAP struct {
	service *url.URL // icap://host:port/service, port filled in
	timeout time.Duration
	dialer  net.Dialer
}

// NewICAP returns a scanner for the ICAP service at rawURL,
// icap://host[:port]/service[?args], each exchange bounded by timeout
// (DefaultICAPTimeout when zero).
func NewICAP(rawURL string, timeout time.Duration) (*ICAP, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("icap url %q: %w", rawURL, err)
	}
	switch {
	case u.Scheme != "icap":
		// icaps:// (ICAP over TLS) is not spoken: say so rather than
		// send plain text to a TLS port.
		return nil, fmt.Errorf("icap url %q: scheme is %q, want icap://host:port/service", rawURL, u.Scheme)
	case u.User != nil:
		return nil, fmt.Errorf("icap url %q: user information is not supported", rawURL)
	case u.Hostname() == "":
		return nil, fmt.Errorf("icap url %q: no host, want icap://host:port/service", rawURL)
	case strings.Trim(u.Path, "/") == "":
		return nil, fmt.Errorf("icap url %q: no service, want icap://host:port/service (c-icap's virus_scan is often /avscan or /srv_clamav)", rawURL)
	case u.Fragment != "":
		return nil, fmt.Errorf("icap url %q: a fragment means nothing to ICAP", rawURL)
	}
	port := u.Port()
	if port == "" {
		port = DefaultICAPPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("icap url %q: bad port %q", rawURL, port)
	}
	u.Host = net.JoinHostPort(u.Hostname(), port)
	switch {
	case timeout < 0:
		return nil, fmt.Errorf("icap timeout %v is negative", timeout)
	case timeout == 0:
		timeout = DefaultICAPTimeout
	}
	return &ICAP{service: u, timeout: timeout}, nil
}

// String returns the service's URL.
func (c *ICAP) String() string { return c.service.String() }

// Scan sends f to the ICAP service and returns its verdict. A 204, or a 200
// that sends the file back untouched, is clean; a 200 that answers with
// something else (c-icap's 403 page, with X-Infection-Found) is not. Any
// other answer, no answer within the timeout, or ctx ending is an error.
func (c *ICAP) Scan(ctx context.Context, f File) (v Verdict, retErr error) {
	var method string
	switch f.Direction {
	case Download:
		method = "RESPMOD"
	case Upload:
		method = "REQMOD"
	default:
		return Verdict{}, fmt.Errorf("icap scan %q: direction %q, want %q or %q", f.Name, f.Direction, Download, Upload)
	}
	if f.Size < 0 || (f.Body == nil && f.Size > 0) {
		return Verdict{}, fmt.Errorf("icap scan %q: size %d with no body to read", f.Name, f.Size)
	}
	head := requestHead(method, c.service, f)

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, err := c.dialer.DialContext(ctx, "tcp", c.service.Host)
	if err != nil {
		return Verdict{}, c.fail(ctx, "connect", err)
	}
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return Verdict{}, c.fail(ctx, "set deadline", err)
	}
	// A ctx cancelled before the deadline ends the exchange at once.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	// The request is written while the answer is read: a server that
	// answers early (an error, a block on the name alone) and stops
	// reading must not leave the writer stuck until the deadline.
	sent := sha256.New()
	written := make(chan error, 1)
	go func() {
		err := writeRequest(conn, head, f, sent)
		if err != nil {
			// The read would wait for an answer to a request that
			// never ends.
			conn.SetDeadline(time.Now())
		}
		written <- err
	}()
	// Scan returns only once the writer is done with f.Body, which the
	// caller may close as soon as Scan returns.
	writing := true
	defer func() {
		conn.Close()
		if writing {
			<-written
		}
	}()

	resp, body, err := parseResponse(conn)
	if err != nil {
		// A write that failed first says more (a body cut short, a
		// connection reset while sending) than the read it ended.
		conn.Close()
		writing = false
		if werr := <-written; werr != nil && !errors.Is(werr, net.ErrClosed) {
			return Verdict{}, c.fail(ctx, "send "+method, werr)
		}
		return Verdict{}, c.fail(ctx, "read "+method+" answer", err)
	}
	v, err = resp.verdict(f.Direction)
	if err != nil {
		return Verdict{}, fmt.Errorf("icap %s %s: %w", method, c.service, err)
	}
	v.Scanner = c.service.String()
	if tag := cleanText(strings.Trim(resp.header.Get("ISTag"), `"`)); tag != "" {
		v.Scanner = tag
	}
	if !v.Clean {
		return v, nil
	}
	var back hash.Hash
	var n int64
	if resp.echo {
		back = sha256.New()
		if n, err = readEcho(body, resp.body, f.Size, back); err != nil {
			return Verdict{}, c.fail(ctx, "read "+method+" answer's body", err)
		}
	}
	// Clean means the server saw the whole file: a 204 before the last
	// chunk went out is no verdict.
	writing = false
	if err := <-written; err != nil {
		return Verdict{}, c.fail(ctx, "send "+method, err)
	}
	if resp.echo && (n != f.Size || !bytes.Equal(back.Sum(nil), sent.Sum(nil))) {
		return Verdict{Threat: fmt.Sprintf("blocked by scanner (sent back %s)", changed(n, f.Size)), Scanner: v.Scanner}, nil
	}
	return v, nil
}

// changed says how a file of size bytes came back as n bytes.
func changed(n, size int64) string {
	switch {
	case n < size:
		return fmt.Sprintf("cut short, %d of %d bytes", n, size)
	case n > size:
		return fmt.Sprintf("longer than the %d bytes sent", size)
	}
	return "changed"
}

// readEcho reads the chunked body of a file sent back, if the answer has
// one (hasBody), into h, and returns its length. It reads no more than one
// byte over size: that says it is longer.
func readEcho(r io.Reader, hasBody bool, size int64, h io.Writer) (int64, error) {
	if !hasBody {
		return 0, nil
	}
	n, err := io.CopyN(h, httputil.NewChunkedReader(r), size+1)
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// fail wraps err, from doing what, with the service's URL; when ctx has
// ended (the timeout or the caller), it says that instead of "i/o timeout".
func (c *ICAP) fail(ctx context.Context, what string, err error) error {
	ctxErr := ctx.Err()
	if d, ok := ctx.Deadline(); ok && ctxErr == nil && !time.Now().Before(d) {
		// The connection's deadline, ctx's own, fired before ctx's timer.
		ctxErr = context.DeadlineExceeded
	}
	if ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("icap %s %s: no answer within %v: %w (%v)", what, c.service, c.timeout, ctxErr, err)
		}
		return fmt.Errorf("icap %s %s: %w (%v)", what, c.service, ctxErr, err)
	}
	return fmt.Errorf("icap %s %s: %w", what, c.service, err)
}

// requestHead returns the ICAP request up to the encapsulated body: the
// ICAP headers and the synthetic HTTP headers of f, with the Encapsulated
// offsets that count them.
func requestHead(method string, service *url.URL, f File) []byte {
	target := httpTarget(f.URL)
	host := "unknown.invalid"
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		host = u.Host
	}
	mediaType := "application/octet-stream"
	if mt, params, err := mime.ParseMediaType(f.MIME); err == nil {
		if s := mime.FormatMediaType(mt, params); s != "" {
			mediaType = s
		}
	}
	disposition := "attachment"
	if name := cleanText(f.Name); name != "" {
		if s := mime.FormatMediaType("attachment", map[string]string{"filename": name}); s != "" {
			disposition = s
		}
	}
	entity := fmt.Sprintf("Content-Type: %s\r\nContent-Length: %d\r\nContent-Disposition: %s\r\n", mediaType, f.Size, disposition)

	var req, res string
	if method == "RESPMOD" {
		req = fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, host)
		res = "HTTP/1.1 200 OK\r\n" + entity + "\r\n"
	} else {
		req = fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", target, host, entity)
	}
	body := "req-body"
	if method == "RESPMOD" {
		body = "res-body"
	}
	if f.Body == nil {
		body = "null-body"
	}
	encapsulated := fmt.Sprintf("req-hdr=0, %s=%d", body, len(req))
	if res != "" {
		encapsulated = fmt.Sprintf("req-hdr=0, res-hdr=%d, %s=%d", len(req), body, len(req)+len(res))
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s ICAP/1.0\r\n", method, service)
	fmt.Fprintf(&b, "Host: %s\r\n", service.Host)
	b.WriteString("User-Agent: Glovebox\r\n")
	b.WriteString("Allow: 204\r\n")
	b.WriteString("Connection: close\r\n")
	fmt.Fprintf(&b, "Encapsulated: %s\r\n\r\n", encapsulated)
	b.WriteString(req)
	b.WriteString(res)
	return b.Bytes()
}

// httpTarget returns raw, a download's or a page's URL from the browser, fit
// for an HTTP request line: no controls, no spaces. A URL that will not
// parse is replaced; it is only there to inform the scanner.
func httpTarget(raw string) string {
	raw = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, raw)
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "http://unknown.invalid/"
	}
	u.User = nil
	u.Fragment = ""
	s := u.String()
	if u.Path == "" && u.RawQuery == "" {
		s += "/"
	}
	return strings.ReplaceAll(s, " ", "%20")
}

// writeRequest writes head, then f.Body chunked, then the last chunk, and
// the body to sent as well. It fails if the body is not f.Size bytes long,
// since the Content-Length the scanner saw would have been a lie.
func writeRequest(w io.Writer, head []byte, f File, sent io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.Write(head); err != nil {
		return err
	}
	if f.Body == nil {
		return bw.Flush()
	}
	var n int64
	buf := make([]byte, 32<<10)
	for {
		m, rerr := f.Body.Read(buf)
		if m > 0 {
			n += int64(m)
			sent.Write(buf[:m])
			fmt.Fprintf(bw, "%x\r\n", m)
			bw.Write(buf[:m])
			if _, err := bw.WriteString("\r\n"); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read %q: %w", f.Name, rerr)
		}
	}
	if n != f.Size {
		return fmt.Errorf("%q is %d bytes, not the %d its size says", f.Name, n, f.Size)
	}
	if _, err := bw.WriteString("0\r\n\r\n"); err != nil {
		return err
	}
	return bw.Flush()
}

// response is the part of an ICAP answer a verdict needs.
type response struct {
	status int                  // ICAP status code
	header textproto.MIMEHeader // ICAP headers
	// httpStatus is the encapsulated HTTP response's status code, 0 if
	// the answer encapsulates none; request says it encapsulates an HTTP
	// request (a REQMOD answer that lets the upload go on).
	httpStatus int
	request    bool
	// body says an encapsulated body follows the headers; echo that the
	// verdict rests on it being the file sent, back unchanged.
	body bool
	echo bool
}

// errMalformed is wrapped by the errors of answers that are not ICAP.
var errMalformed = errors.New("malformed ICAP answer")

// parseResponse reads an ICAP answer from r up to its encapsulated body,
// reading no more than maxResponseHeader bytes, and returns it with the
// reader of what follows.
func parseResponse(r io.Reader) (*response, io.Reader, error) {
	lr := &io.LimitedReader{R: r, N: maxResponseHeader}
	resp, br, err := parseHead(lr)
	// What follows is the body, which its reader bounds.
	lr.N = math.MaxInt64
	return resp, br, err
}

// parseHead parses the headers of an answer from r.
func parseHead(r io.Reader) (*response, *bufio.Reader, error) {
	br := bufio.NewReader(r)
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		return nil, nil, truncated("status line", err)
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	if !strings.HasPrefix(proto, "ICAP/1.") || len(code) != 3 {
		return nil, nil, fmt.Errorf("%w: status line %.80q", errMalformed, line)
	}
	resp := &response{}
	if resp.status, err = strconv.Atoi(code); err != nil || resp.status < 100 {
		return nil, nil, fmt.Errorf("%w: status line %.80q", errMalformed, line)
	}
	if resp.header, err = tp.ReadMIMEHeader(); err != nil {
		return nil, nil, truncated("headers", err)
	}
	if resp.status != 200 {
		// A 204 has nothing encapsulated that matters, and anything
		// else is an error whatever it carries.
		return resp, br, nil
	}
	sections, err := parseEncapsulated(resp.header.Get("Encapsulated"))
	if err != nil {
		return nil, nil, err
	}
	for i, s := range sections {
		if !strings.HasSuffix(s.name, "-hdr") {
			resp.body = s.name != "null-body"
			continue
		}
		// parseEncapsulated ends the list with a body section.
		block := make([]byte, sections[i+1].offset-s.offset)
		if _, err := io.ReadFull(tp.R, block); err != nil {
			return nil, nil, truncated("encapsulated "+s.name, err)
		}
		if s.name == "req-hdr" {
			resp.request = true
			continue
		}
		if resp.httpStatus, err = httpStatus(block); err != nil {
			return nil, nil, err
		}
	}
	return resp, br, nil
}

// truncated describes err, met reading part of an answer.
func truncated(part string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s cut short or over %d KiB", errMalformed, part, maxResponseHeader>>10)
	}
	var perr textproto.ProtocolError
	if errors.As(err, &perr) {
		return fmt.Errorf("%w: %s: %v", errMalformed, part, err)
	}
	return fmt.Errorf("%s: %w", part, err)
}

// section is one entry of an Encapsulated header.
type section struct {
	name   string
	offset int
}

// parseEncapsulated parses an Encapsulated header: header sections then one
// body section, at increasing offsets.
func parseEncapsulated(h string) ([]section, error) {
	if h == "" {
		return nil, fmt.Errorf("%w: 200 without an Encapsulated header", errMalformed)
	}
	var sections []section
	for _, part := range strings.Split(h, ",") {
		name, off, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(off)
		if !ok || err != nil || n < 0 || n > maxResponseHeader {
			return nil, fmt.Errorf("%w: Encapsulated %.80q", errMalformed, h)
		}
		if len(sections) > 0 {
			last := sections[len(sections)-1]
			if n < last.offset || !strings.HasSuffix(last.name, "-hdr") {
				return nil, fmt.Errorf("%w: Encapsulated %.80q", errMalformed, h)
			}
		}
		switch name {
		case "req-hdr", "res-hdr", "req-body", "res-body", "null-body", "opt-body":
		default:
			return nil, fmt.Errorf("%w: Encapsulated %.80q", errMalformed, h)
		}
		sections = append(sections, section{name, n})
	}
	if last := sections[len(sections)-1]; strings.HasSuffix(last.name, "-hdr") {
		return nil, fmt.Errorf("%w: Encapsulated %.80q ends without a body", errMalformed, h)
	}
	return sections, nil
}

// httpStatus returns the status code of an encapsulated HTTP response
// header.
func httpStatus(block []byte) (int, error) {
	line, _, _ := bytes.Cut(block, []byte("\n"))
	proto, rest, _ := strings.Cut(strings.TrimSuffix(string(line), "\r"), " ")
	code, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(code)
	if !strings.HasPrefix(proto, "HTTP/") || len(code) != 3 || err != nil || n < 100 {
		return 0, fmt.Errorf("%w: encapsulated status line %.80q", errMalformed, line)
	}
	return n, nil
}

// verdict turns the answer about a file going in direction into a verdict,
// or an error when the answer is none.
func (r *response) verdict(direction string) (Verdict, error) {
	threat := r.threat()
	switch r.status {
	case 204:
		if threat != "" {
			// A 204 that names a threat contradicts itself: believe
			// the threat.
			return Verdict{Threat: threat}, nil
		}
		return Verdict{Clean: true}, nil
	case 200:
	default:
		return Verdict{}, fmt.Errorf("scanner answered ICAP %d", r.status)
	}
	if threat != "" {
		return Verdict{Threat: threat}, nil
	}
	switch {
	case r.httpStatus != 0 && direction == Download && r.httpStatus/100 == 2:
		// Some servers send the file back instead of a 204; Scan
		// checks that it is the file.
		r.echo = true
		return Verdict{Clean: true}, nil
	case r.httpStatus != 0:
		// A response in place of the download, or in answer to an
		// upload (which the scanner was to pass on, not answer).
		return Verdict{Threat: fmt.Sprintf("blocked by scanner (HTTP %d)", r.httpStatus)}, nil
	case r.request && direction == Upload:
		// The upload sent back to go on its way, checked as above.
		r.echo = true
		return Verdict{Clean: true}, nil
	}
	return Verdict{}, errors.New("scanner answered ICAP 200 with neither the file nor a response")
}

// threat names what the answer says it found: X-Infection-Found's Threat,
// else X-Violations-Found's, else "" when neither header is there.
func (r *response) threat() string {
	inf, vio := r.header.Values("X-Infection-Found"), r.header.Values("X-Violations-Found")
	if len(inf) == 0 && len(vio) == 0 {
		return ""
	}
	for _, h := range inf {
		// Type=0; Resolution=2; Threat=Eicar-Test-Signature;
		for _, part := range strings.Split(h, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(part), "="); ok && strings.EqualFold(k, "Threat") {
				if t := cleanText(v); t != "" {
					return t
				}
			}
		}
	}
	for _, h := range vio {
		// A count, then per violation four folded lines: the file's
		// name, the threat, an ID and a resolution. The name may hold
		// spaces, so the threat is counted from the end.
		if f := strings.Fields(h); len(f) >= 5 {
			if t := cleanText(f[len(f)-3]); t != "" && t != "-" {
				return t
			}
		}
	}
	return "blocked by scanner"
}

// cleanText returns s, text from a browser or a scanner on its way into a
// header, a log or a block page, without controls, trimmed, and cut to 200
// bytes.
func cleanText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "")
	}
	return s
}
