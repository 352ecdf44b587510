// Package icaptest runs a real ICAP server for tests: Debian's c-icap with
// its ClamAV virus_scan service, and a signature database made for the
// test (ClamAV's own is fetched from the network, which tests never reach),
// in which the EICAR test file is a threat named Threat.
package icaptest

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EICAR is the anti-virus test file: every scanner reports it, it harms
// nothing.
const EICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// Threat is the name the test database gives EICAR (ClamAV reports a
// hash signature's name with ".UNOFFICIAL" appended).
const Threat = "Glovebox-Test-EICAR"

const modules = "/usr/lib/x86_64-linux-gnu/c_icap"

// ClamAV's database directory is compiled into the module
// (cl_retdbdir): the server runs in a mount namespace of its own, where
// the test's database is bound over it.
const clamDBDir = "/var/lib/clamav"

// Server is a c-icap the test started.
type Server struct {
	// URL is its virus-scanning service, icap://127.0.0.1:PORT/avscan,
	// which answers once it has scanned the whole file (mode=simple);
	// DefaultURL is the same in c-icap's default mode, which starts
	// sending a large file back before the scan ends and cuts it short if
	// it finds a threat.
	URL, DefaultURL string
	dir             string
}

// Log is c-icap's server log so far, for a failing test.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	return string(b)
}

// Missing says what this machine lacks to run the server, or nil: the
// caller hands it to testenv.Missing (a skip here, a failure in CI).
func Missing() error {
	for _, p := range []string{"/usr/bin/c-icap", modules + "/virus_scan.so", modules + "/clamav_mod.so", "/usr/bin/unshare"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("needs c-icap with its ClamAV module (make test installs c-icap, libc-icap-mod-virus-scan, clamav): %w", err)
		}
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root: c-icap runs in a mount namespace of its own")
	}
	return nil
}

// Start starts c-icap on a free loopback port, waits until it answers, and
// stops it when the test ends. maxMB is virus_scan.MaxObjectSize: c-icap
// passes larger files unscanned. Check Missing first.
func Start(t testing.TB, maxMB int) *Server {
	t.Helper()
	if err := Missing(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte(EICAR))
	if err := os.WriteFile(filepath.Join(db, "glovebox-test.hdb"),
		fmt.Appendf(nil, "%s:%d:%s\n", hex.EncodeToString(sum[:]), len(EICAR), Threat), 0o644); err != nil {
		t.Fatal(err)
	}
	// And anywhere in a file: a body signature.
	if err := os.WriteFile(filepath.Join(db, "glovebox-test.ndb"),
		fmt.Appendf(nil, "%s-Body:0:*:%s\n", Threat, hex.EncodeToString([]byte(EICAR))), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := fmt.Sprintf(`PidFile %[1]s/c-icap.pid
CommandsSocket %[1]s/c-icap.ctl
Port 127.0.0.1:%[2]d
Timeout 60
StartServers 1
MaxServers 2
MinSpareThreads 2
MaxSpareThreads 8
ThreadsPerChild 8
TmpDir %[1]s
ServerLog %[1]s/server.log
AccessLog %[1]s/access.log
DebugLevel 1
ModulesDir %[3]s
ServicesDir %[3]s
TemplateDir /usr/share/c_icap/templates/
TemplateDefaultLanguage en
LoadMagicFile /etc/c-icap/c-icap.magic
Module common clamav_mod.so
Service antivirus_module virus_scan.so
ServiceAlias avscan virus_scan?allow204=on&sizelimit=off&mode=simple
ServiceAlias avscan-default virus_scan?allow204=on&sizelimit=off
virus_scan.ScanFileTypes TEXT DATA EXECUTABLE ARCHIVE GIF JPEG MSOFFICE
virus_scan.SendPercentData 0
virus_scan.MaxObjectSize %[4]dM
clamav_mod.MaxScanSize %[4]dM
`, dir, port, modules, maxMB)
	confPath := filepath.Join(dir, "c-icap.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
		`mount --bind "$1" `+clamDBDir+` && exec /usr/bin/c-icap -N -f "$2"`, "sh", db, confPath)
	out, _ := os.Create(filepath.Join(dir, "stdout.log"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start c-icap: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s := &Server{URL: fmt.Sprintf("icap://127.0.0.1:%d/avscan", port), DefaultURL: fmt.Sprintf("icap://127.0.0.1:%d/avscan-default", port), dir: dir}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		out.Close()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := options(port)
		if err == nil {
			return s
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
			t.Fatalf("c-icap exited: %s\n%s", b, s.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("c-icap did not answer in 60 s: %v\n%s", err, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// options asks the avscan service for its OPTIONS: nil once it answers 200.
func options(port int) error {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "OPTIONS icap://127.0.0.1:%d/avscan ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n", port)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "ICAP/1.0 200") {
		return fmt.Errorf("OPTIONS: %s", strings.TrimSpace(line))
	}
	return nil
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
