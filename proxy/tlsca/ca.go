// Package tlsca is the interception CA of Glovebox's HTTPS inspection: it
// loads or generates the CA, issues the per-host certificates presented to
// browsers, and keeps them in a bounded cache. It imports no other Glovebox
// package.
package tlsca

import (
	"container/list"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// TLSConfig configures HTTPS interception: the CA that issues the
// certificates Glovebox presents to browsers, and what Glovebox trusts of
// the sites it connects to.
type Config struct {
	// Dir holds the CA Glovebox generates at its first start (ca.crt, and
	// ca.key readable by its owner only), used when CACert and CAKey are empty.
	Dir string `mapstructure:"dir"`
	// CACert and CAKey are PEM files of an existing CA (an intermediate of
	// the organisation's own PKI, say) to issue certificates with instead.
	// Give both or neither.
	CACert string `mapstructure:"ca_cert"`
	CAKey  string `mapstructure:"ca_key"`
	// CertCacheSize bounds the per-host certificates kept in memory; the
	// least recently used is dropped first.
	CertCacheSize int `mapstructure:"cert_cache_size"`
	// ExtraCAFiles are PEM files of CA certificates trusted for sites'
	// certificates in addition to the system's roots.
	ExtraCAFiles []string `mapstructure:"extra_ca_files"`
}

// DefaultDir is tls.dir's default. Tests point it at a temporary
// directory, so that no test makes a CA in /var/lib.
var DefaultDir = "/var/lib/glovebox/tls"

// DefaultConfig returns the defaults documented in config.yaml.
func DefaultConfig() Config {
	return Config{Dir: DefaultDir, CertCacheSize: 1000}
}

// Validate reports every bad value, each naming its key. It has no side
// effects: the files it names are read by Check.
func (c *Config) Validate() error {
	var errs []error
	if (c.CACert == "") != (c.CAKey == "") {
		errs = append(errs, fmt.Errorf("tls.ca_cert, tls.ca_key: give both files or neither"))
	}
	if c.CACert == "" && c.Dir == "" {
		errs = append(errs, fmt.Errorf("tls.dir: empty: give a directory for the generated CA, or tls.ca_cert and tls.ca_key"))
	}
	if c.CertCacheSize < 1 || c.CertCacheSize > 1_000_000 {
		errs = append(errs, fmt.Errorf("tls.cert_cache_size: %d: want 1–1000000", c.CertCacheSize))
	}
	for i, f := range c.ExtraCAFiles {
		if f == "" {
			errs = append(errs, fmt.Errorf("tls.extra_ca_files[%d]: empty path", i))
		}
	}
	return errors.Join(errs...)
}

// Check reads the files c names, as serving would: the configured CA's
// certificate and key, and every extra CA file. It does not generate a
// CA: tls.dir is made at the first start.
func (c *Config) Check() error {
	var errs []error
	if c.CACert != "" && c.CAKey != "" {
		if _, err := loadCAFiles(c.CACert, c.CAKey, "tls.ca_cert", "tls.ca_key", slog.New(slog.DiscardHandler)); err != nil {
			errs = append(errs, err)
		}
	}
	for i, f := range c.ExtraCAFiles {
		if err := AppendCAFile(x509.NewCertPool(), f); err != nil {
			errs = append(errs, fmt.Errorf("tls.extra_ca_files[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// AppendCAFile adds the certificates of a PEM file to pool.
func AppendCAFile(pool *x509.CertPool, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("%s: no PEM certificates in it", path)
	}
	return nil
}

// The CA Glovebox generates, in Config.Dir.
const (
	caCertFile = "ca.crt"
	caKeyFile  = "ca.key"
	// CAName is the common name of the CA Glovebox generates.
	CAName = "Glovebox Interception CA"
)

const (
	caValidity = 10 * 365 * 24 * time.Hour
	// Leaf certificates live a week and are issued again a day before they
	// end; only the cache holds them, so a short life costs nothing.
	leafValidity = 7 * 24 * time.Hour
	leafRenew    = 24 * time.Hour
	// Clocks of clients a little behind Glovebox's still accept a new certificate.
	backdate = time.Hour
)

// ErrCA is wrapped by every error loading or generating the CA.
var ErrCA = errors.New("interception CA")

// CA issues the certificates Glovebox presents to browsers for the sites it
// intercepts.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
	// leafKey is shared by every leaf, as mitmproxy does: one key pair
	// keeps issuing cheap, and its secrecy is that of the CA key beside it.
	leafKey *ecdsa.PrivateKey
}

// LoadCA loads the CA from cfg.CACert and cfg.CAKey, or from cfg.Dir, where
// it is generated (ECDSA P-256, ten years) if there is none yet. Errors name
// the configuration key at fault.
func Load(cfg Config, log *slog.Logger) (*CA, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCA, err)
	}
	var (
		ca  *CA
		err error
	)
	if cfg.CACert != "" {
		ca, err = loadCAFiles(cfg.CACert, cfg.CAKey, "tls.ca_cert", "tls.ca_key", log)
	} else {
		ca, err = loadOrCreateCA(cfg.Dir, log)
	}
	if err != nil {
		return nil, err
	}
	ca.leafKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%w: generate the leaf key: %v", ErrCA, err)
	}
	return ca, nil
}

// Certificate is the CA's certificate, the one browsers must trust.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM is the CA's certificate in PEM.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

func loadOrCreateCA(dir string, log *slog.Logger) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		return loadCAFiles(certPath, keyPath, "tls.dir", "tls.dir", log)
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		ca, err := createCA(dir, certPath, keyPath)
		if errors.Is(err, fs.ErrExist) {
			// Another Glovebox (glovebox ca beside glovebox serve) is
			// writing one this moment: use it.
			return waitForCA(certPath, keyPath, log)
		}
		if err == nil {
			log.Info("generated the interception CA: install its certificate in your browsers (glovebox ca prints it)",
				"cert", certPath, "key", keyPath)
		}
		return ca, err
	case keyErr == nil && errors.Is(certErr, fs.ErrNotExist):
		return waitForCA(certPath, keyPath, log)
	case certErr == nil && errors.Is(keyErr, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: tls.dir: %s exists but %s does not: restore the key, or remove both to generate a new CA (browsers must then trust the new one)", ErrCA, certPath, keyPath)
	case certErr != nil:
		return nil, fmt.Errorf("%w: tls.dir: %v", ErrCA, certErr)
	default:
		return nil, fmt.Errorf("%w: tls.dir: %v", ErrCA, keyErr)
	}
}

// waitForCA waits briefly for the certificate of a CA whose key another
// process has just written.
func waitForCA(certPath, keyPath string, log *slog.Logger) (*CA, error) {
	for range 20 {
		if _, err := os.Stat(certPath); err == nil {
			return loadCAFiles(certPath, keyPath, "tls.dir", "tls.dir", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("%w: tls.dir: %s exists but %s does not: remove the key to generate a new CA", ErrCA, keyPath, certPath)
}

// createCA writes a new CA: the key first, created exclusively with mode
// 0600, then the certificate (0644) by rename, so a reader that sees the
// certificate sees a whole key.
func createCA(dir, certPath, keyPath string) (retCA *CA, retErr error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: tls.dir: %v", ErrCA, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%w: generate key: %v", ErrCA, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: CAName, Organization: []string{"Glovebox"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("%w: create certificate: %v", ErrCA, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: parse new certificate: %v", ErrCA, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: marshal key: %v", ErrCA, err)
	}

	kf, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: tls.dir: %v", ErrCA, err)
	}
	defer func() {
		if retErr != nil {
			os.Remove(keyPath)
		}
	}()
	if err := pem.Encode(kf, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}); err != nil {
		kf.Close()
		return nil, fmt.Errorf("%w: tls.dir: write %s: %v", ErrCA, keyPath, err)
	}
	if err := kf.Sync(); err != nil {
		kf.Close()
		return nil, fmt.Errorf("%w: tls.dir: write %s: %v", ErrCA, keyPath, err)
	}
	if err := kf.Close(); err != nil {
		return nil, fmt.Errorf("%w: tls.dir: write %s: %v", ErrCA, keyPath, err)
	}
	tmp, err := os.CreateTemp(dir, ".ca.crt-*")
	if err != nil {
		return nil, fmt.Errorf("%w: tls.dir: %v", ErrCA, err)
	}
	defer os.Remove(tmp.Name())
	err = pem.Encode(tmp, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), certPath)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: tls.dir: write %s: %v", ErrCA, certPath, err)
	}
	return &CA{cert: cert, key: key}, nil
}

// readPEMFile reads the file at path (configured as key) and parses it.
func readPEMFile[T any](path, key string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	b, err := os.ReadFile(path)
	if err != nil {
		return zero, fmt.Errorf("%w: %s: %v", ErrCA, key, err)
	}
	v, err := parse(b)
	if err != nil {
		return zero, fmt.Errorf("%w: %s: %s: %v", ErrCA, key, path, err)
	}
	return v, nil
}

// loadCAFiles reads a CA certificate and its key, naming certKey or keyKey
// (configuration keys) in what goes wrong with each.
func loadCAFiles(certPath, keyPath, certKey, keyKey string, log *slog.Logger) (*CA, error) {
	cert, err := readPEMFile(certPath, certKey, parseCertPEM)
	if err != nil {
		return nil, err
	}
	switch {
	case !cert.IsCA || !cert.BasicConstraintsValid:
		return nil, fmt.Errorf("%w: %s: %s: not a CA certificate (basic constraints CA:FALSE): it cannot issue certificates", ErrCA, certKey, certPath)
	case cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, fmt.Errorf("%w: %s: %s: its key usage does not include certificate signing", ErrCA, certKey, certPath)
	case time.Now().After(cert.NotAfter):
		return nil, fmt.Errorf("%w: %s: %s: expired on %s", ErrCA, certKey, certPath, cert.NotAfter.Format(time.DateOnly))
	}
	if st, err := os.Stat(keyPath); err == nil && keyExposed(keyPath, st) {
		log.Warn("the interception CA's private key is readable by others: chmod 600 it",
			"key", keyPath, "mode", st.Mode().Perm().String())
	}
	key, err := readPEMFile(keyPath, keyKey, parseKeyPEM)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("%w: %s: %s: the private key does not match the certificate %s", ErrCA, keyKey, keyPath, certPath)
	}
	return &CA{cert: cert, key: key}, nil
}

// parseCertPEM returns the first certificate of a PEM file.
func parseCertPEM(b []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no PEM CERTIFICATE block found")
		}
		if block.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("bad certificate: %v", err)
			}
			return c, nil
		}
	}
}

// parseKeyPEM returns the first private key of a PEM file: PKCS #8, or
// the older PKCS #1 (RSA) and SEC 1 (EC) forms.
func parseKeyPEM(b []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no PEM PRIVATE KEY block found")
		}
		var (
			k   any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the key is encrypted: give it decrypted (openssl pkey -in KEY -out KEY.dec) and readable by root only")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bad %s: %v", strings.ToLower(block.Type), err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
		return s, nil
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// keyID is the SHA-1 of a public key, the usual subject key identifier.
func keyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha1.Sum(der)
	return sum[:]
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n.Add(n, big.NewInt(1))
}

// Issue makes a certificate for one host name or IP address.
func (ca *CA) Issue(host string) (*tls.Certificate, error) {
	if host == "" {
		return nil, errors.New("issue certificate: empty host")
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: host, Organization: []string{"Glovebox"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.Unmap().AsSlice())
	} else {
		if len(host) > 64 {
			// The common name is limited to 64 bytes; the SAN is what counts.
			tmpl.Subject.CommonName = ""
		}
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &ca.leafKey.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w", host, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: ca.leafKey, Leaf: leaf}, nil
}

// certCache keeps issued certificates by host, least recently used
// dropped first past its bound. It is a goproxy.CertStorage.
type Cache struct {
	max int

	mu sync.Mutex
	ll *list.List // of *cacheEntry, most recent first
	m  map[string]*list.Element
}

type cacheEntry struct {
	host string
	cert *tls.Certificate
}

func NewCache(max int) *Cache {
	return &Cache{max: max, ll: list.New(), m: map[string]*list.Element{}}
}

// Fetch returns the cached certificate for host, or one gen makes. A
// certificate close to its end is made again.
func (c *Cache) Fetch(host string, gen func() (*tls.Certificate, error)) (*tls.Certificate, error) {
	c.mu.Lock()
	if el, ok := c.m[host]; ok {
		e := el.Value.(*cacheEntry)
		if e.cert.Leaf == nil || time.Until(e.cert.Leaf.NotAfter) > leafRenew {
			c.ll.MoveToFront(el)
			c.mu.Unlock()
			return e.cert, nil
		}
	}
	c.mu.Unlock()

	// Issuing outside the lock: two first requests for one host may both
	// issue, and the second replaces the first, which is harmless.
	cert, err := gen()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[host]; ok {
		el.Value.(*cacheEntry).cert = cert
		c.ll.MoveToFront(el)
		return cert, nil
	}
	c.m[host] = c.ll.PushFront(&cacheEntry{host: host, cert: cert})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*cacheEntry).host)
	}
	return cert, nil
}

// Len is how many certificates the cache holds.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// keyExposed tells whether the key file at path (st its Stat) can be read
// by others than this process's user: by anyone, or by a group, unless the
// file is a Kubernetes Secret's (a symlink into the kubelet's ..data
// directory) readable by this process's own group: a pod's fsGroup.
func keyExposed(path string, st fs.FileInfo) bool {
	perm := st.Mode().Perm()
	if perm&0o007 != 0 {
		return true
	}
	if perm&0o070 == 0 {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || int(sys.Gid) != os.Getgid() {
		return true
	}
	target, err := os.Readlink(path)
	return err != nil || !strings.HasPrefix(target, "..data/")
}
