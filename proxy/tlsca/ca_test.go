package tlsca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestCAGeneratedOnceAndReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	cfg := DefaultConfig()
	cfg.Dir = dir
	ca1, err := Load(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	c := ca1.Certificate()
	if c.Subject.CommonName != CAName || !c.IsCA || !c.BasicConstraintsValid || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("generated CA: CN %q, CA %v, key usage %v", c.Subject.CommonName, c.IsCA, c.KeyUsage)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", c.PublicKey)
	}
	if life := c.NotAfter.Sub(c.NotBefore); life < 5*365*24*time.Hour || life > 11*365*24*time.Hour {
		t.Errorf("CA validity %v, want about ten years", life)
	}
	for name, want := range map[string]os.FileMode{caKeyFile: 0o600, caCertFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("tls.dir holds %d files, want ca.crt and ca.key only", len(entries))
	}

	// A restart loads the same CA rather than making another.
	ca2, err := Load(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca1.CertPEM(), ca2.CertPEM()) {
		t.Error("a second start made a new CA")
	}
	// Certificates from the restarted CA chain to the first one's certificate.
	leaf, err := ca2.Issue("example.test")
	if err != nil {
		t.Fatal(err)
	}
	verifyLeaf(t, ca1.Certificate(), leaf, "example.test")
}

func TestCALoadsConfiguredFiles(t *testing.T) {
	for _, form := range []string{"ecdsa-pkcs8", "ecdsa-sec1", "rsa-pkcs1"} {
		t.Run(form, func(t *testing.T) {
			pki := newTestPKI(t, "Corp Intermediate", form)
			cfg := DefaultConfig()
			cfg.Dir = filepath.Join(t.TempDir(), "unused")
			cfg.CACert, cfg.CAKey = pki.certFile, pki.keyFile
			ca, err := Load(cfg, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			if !ca.Certificate().Equal(pki.cert) {
				t.Error("loaded a different certificate")
			}
			if _, err := os.Stat(cfg.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Error("tls.dir was used although ca_cert and ca_key are set")
			}
			leaf, err := ca.Issue("127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			verifyLeaf(t, pki.cert, leaf, "127.0.0.1")
		})
	}
}

func TestCABadFiles(t *testing.T) {
	good := newTestPKI(t, "Good CA", "ecdsa-pkcs8")
	other := newTestPKI(t, "Other CA", "ecdsa-pkcs8")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := write("garbage.pem", "this is not PEM\n")
	badDER := write("bad-der.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})))
	badKey := write("bad-key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")})))
	encrypted := write("enc.pem", string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("x")})))
	notCA := write("leaf.pem", string(good.leafPEM(t, "leaf.test")))

	onlyCert := filepath.Join(t.TempDir(), "tls")
	os.MkdirAll(onlyCert, 0o755)
	os.WriteFile(filepath.Join(onlyCert, caCertFile), good.certPEM, 0o644)
	badDir := filepath.Join(t.TempDir(), "tls")
	os.MkdirAll(badDir, 0o755)
	os.WriteFile(filepath.Join(badDir, caCertFile), good.certPEM, 0o644)
	os.WriteFile(filepath.Join(badDir, caKeyFile), []byte("corrupt"), 0o600)

	tests := []struct {
		name      string
		cert, key string
		dir       string
		want      []string
	}{
		{"cert not PEM", garbage, good.keyFile, "", []string{"tls.ca_cert", garbage, "no PEM CERTIFICATE"}},
		{"cert not DER", badDER, good.keyFile, "", []string{"tls.ca_cert", "bad certificate"}},
		{"key not PEM", good.certFile, garbage, "", []string{"tls.ca_key", garbage, "no PEM PRIVATE KEY"}},
		{"key corrupt", good.certFile, badKey, "", []string{"tls.ca_key", "bad private key"}},
		{"key encrypted", good.certFile, encrypted, "", []string{"tls.ca_key", "encrypted"}},
		{"key of another CA", good.certFile, other.keyFile, "", []string{"tls.ca_key", other.keyFile, "does not match", good.certFile}},
		{"not a CA", notCA, good.keyFile, "", []string{"tls.ca_cert", "not a CA"}},
		{"cert missing", filepath.Join(dir, "nope.pem"), good.keyFile, "", []string{"tls.ca_cert", "no such file"}},
		{"key missing", good.certFile, filepath.Join(dir, "nope.key"), "", []string{"tls.ca_key", "no such file"}},
		{"dir has a cert but no key", "", "", onlyCert, []string{"tls.dir", "ca.key", "does not"}},
		{"dir has a corrupt key", "", "", badDir, []string{"tls.dir", filepath.Join(badDir, caKeyFile), "no PEM PRIVATE KEY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.CACert, cfg.CAKey, cfg.Dir = tt.cert, tt.key, tt.dir
			_, err := Load(cfg, quietLog())
			if !errors.Is(err, ErrCA) {
				t.Fatalf("err = %v, want ErrCA", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to mention %q", err, w)
				}
			}
		})
	}
	if _, err := Load(Config{CACert: good.certFile, CertCacheSize: 1}, quietLog()); err == nil ||
		!strings.Contains(err.Error(), "tls.ca_cert, tls.ca_key") {
		t.Errorf("cert without key: %v", err)
	}
}

func TestLeafCertificates(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	ca, err := Load(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"www.example.test", "127.0.0.1", "::1", "xn--bcher-kva.test"} {
		leaf, err := ca.Issue(host)
		if err != nil {
			t.Fatal(err)
		}
		c := leaf.Leaf
		verifyLeaf(t, ca.Certificate(), leaf, host)
		if ip := net.ParseIP(host); ip != nil {
			if len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(ip) || len(c.DNSNames) != 0 {
				t.Errorf("%s: SANs %v %v, want the IP only", host, c.DNSNames, c.IPAddresses)
			}
		} else if len(c.DNSNames) != 1 || c.DNSNames[0] != host || len(c.IPAddresses) != 0 {
			t.Errorf("%s: SANs %v %v, want the name only", host, c.DNSNames, c.IPAddresses)
		}
		if life := c.NotAfter.Sub(c.NotBefore); life > leafValidity+backdate {
			t.Errorf("%s: leaf valid for %v", host, life)
		}
		if c.IsCA {
			t.Errorf("%s: leaf is a CA", host)
		}
	}
}

func TestCertCacheBound(t *testing.T) {
	c := NewCache(3)
	gens := map[string]int{}
	fetch := func(host string) *tls.Certificate {
		cert, err := c.Fetch(host, func() (*tls.Certificate, error) {
			gens[host]++
			return &tls.Certificate{Leaf: &x509.Certificate{NotAfter: time.Now().Add(leafValidity)}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	a := fetch("a")
	if fetch("a") != a || gens["a"] != 1 {
		t.Error("a cached certificate was issued again")
	}
	for i := range 50 {
		fetch(fmt.Sprintf("h%d", i))
		fetch("a") // kept recent, so never evicted
		if n := c.Len(); n > 3 {
			t.Fatalf("cache holds %d, bound 3", n)
		}
	}
	if gens["a"] != 1 {
		t.Errorf("the most recently used entry was evicted (%d issues)", gens["a"])
	}
	fetch("h0")
	if gens["h0"] != 2 {
		t.Errorf("an old entry was not evicted")
	}
	// A certificate near its end is issued again.
	c.Fetch("old", func() (*tls.Certificate, error) {
		return &tls.Certificate{Leaf: &x509.Certificate{NotAfter: time.Now().Add(time.Hour)}}, nil
	})
	fetch("old")
	if gens["old"] != 1 {
		t.Error("an expiring certificate was served from the cache")
	}
}

func verifyLeaf(t *testing.T, root *x509.Certificate, leaf *tls.Certificate, host string) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(root)
	c, err := x509.ParseCertificate(leaf.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("leaf for %s does not verify: %v", host, err)
	}
}

// testPKI is a CA made by a test, its files, and leaves it signs.
type testPKI struct {
	cert     *x509.Certificate
	key      any
	certPEM  []byte
	certFile string
	keyFile  string
}

func newTestPKI(t *testing.T, name, form string) *testPKI {
	t.Helper()
	var (
		key    any
		pub    any
		keyPEM []byte
	)
	switch form {
	case "rsa-pkcs1":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		key, pub = k, &k.PublicKey
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	default:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key, pub = k, &k.PublicKey
		if form == "ecdsa-sec1" {
			der, _ := x509.MarshalECPrivateKey(k)
			keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
		} else {
			der, _ := x509.MarshalPKCS8PrivateKey(k)
			keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	dir := t.TempDir()
	p := &testPKI{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		certFile: filepath.Join(dir, "ca.pem"), keyFile: filepath.Join(dir, "ca.key")}
	os.WriteFile(p.certFile, p.certPEM, 0o644)
	os.WriteFile(p.keyFile, keyPEM, 0o600)
	return p
}

// leafPEM is a server certificate for host signed by the test CA.
func (p *testPKI) leafPEM(t *testing.T, host string) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &k.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestKeyExposed(t *testing.T) {
	dir := t.TempDir()
	// As the kubelet mounts a Secret: the file in a ..data directory,
	// reached through a symlink.
	if err := os.Mkdir(filepath.Join(dir, "..data"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "..data", "ca.key")
	if err := os.WriteFile(file, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "ca.key")
	if err := os.Symlink("..data/ca.key", secret); err != nil {
		t.Fatal(err)
	}
	check := func(path string, mode os.FileMode, gid int, want bool) {
		t.Helper()
		if err := os.Chmod(file, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(file, -1, gid); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := keyExposed(path, st); got != want {
			t.Errorf("%s mode %v, group %d (ours %d): exposed %v, want %v", path, mode, gid, os.Getgid(), got, want)
		}
	}
	own := os.Getgid()
	for _, p := range []string{file, secret} {
		check(p, 0o600, own, false)
		check(p, 0o400, own, false)
		check(p, 0o644, own, true)
		check(p, 0o604, own, true)
	}
	check(file, 0o640, own, true)    // a plain file: the group may be a shared one
	check(secret, 0o640, own, false) // a Secret mounted with the pod's fsGroup
	if os.Geteuid() == 0 {           // only root gives a file to another group
		check(secret, 0o640, own+4242, true)
	}
}
