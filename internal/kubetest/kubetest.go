// Package kubetest runs a real Kubernetes control plane for tests: etcd
// and kube-apiserver v1.37.2, built from the Go module proxy by build.sh
// into $GLOVEBOX_KUBE_DIR/bin (make kube-bin), on loopback with ports of
// their own, a throwaway CA and serving certificate, a static admin token,
// RBAC and service-account signing keys. Everything is stopped and removed
// when the test ends.
//
// Without kube-controller-manager nothing creates a namespace's default
// ServiceAccount (which pods need): Namespace makes both.
package kubetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Dir is where build.sh puts the binaries.
func Dir() string {
	if d := os.Getenv("GLOVEBOX_KUBE_DIR"); d != "" {
		return d
	}
	return "/var/cache/glovebox/kube-v1.37.2"
}

// Missing says what this machine lacks to run the control plane, or nil:
// the caller hands it to testenv.Missing (a skip here, a failure in CI).
func Missing() error {
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(Dir(), "bin", b)); err != nil {
			return fmt.Errorf("needs the Kubernetes test binaries (make kube-bin builds them): %w", err)
		}
	}
	return nil
}

// Cluster is a running control plane.
type Cluster struct {
	// Config is the admin's (system:masters) REST configuration.
	Config *rest.Config
	// Client is a clientset with Config.
	Client kubernetes.Interface
	// Kubeconfig is a kubeconfig file of Config.
	Kubeconfig string

	dir   string
	procs []*proc
	// token is the admin's, nodeToken the node's (system:node:NodeName).
	token, nodeToken string
	caPEM            []byte
	stops            []func() // run in reverse after the processes are gone
}

// NodeName is the name of the node StartNode runs.
const NodeName = "kubetest-node"

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// Start starts etcd and kube-apiserver and waits until the API server is
// ready. The test fails if it cannot.
func Start(t testing.TB) *Cluster {
	t.Helper()
	if err := Missing(); err != nil {
		t.Fatal(err) // callers check Missing first and skip through testenv
	}
	dir := t.TempDir()
	c := &Cluster{dir: dir}
	t.Cleanup(c.stop)
	bin := filepath.Join(Dir(), "bin")

	etcdClient, etcdPeer := freePort(t), freePort(t)
	c.start(t, "etcd", filepath.Join(bin, "etcd"),
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://127.0.0.1:"+etcdClient, "--advertise-client-urls", "http://127.0.0.1:"+etcdClient,
		"--listen-peer-urls", "http://127.0.0.1:"+etcdPeer, "--initial-advertise-peer-urls", "http://127.0.0.1:"+etcdPeer,
		"--initial-cluster", "default=http://127.0.0.1:"+etcdPeer, "--log-level", "warn")

	caPEM, certPEM, keyPEM := serving(t)
	saKey := ecKeyPEM(t)
	token, nodeToken := randomToken(), randomToken()
	c.nodeToken, c.caPEM, c.token = nodeToken, caPEM, token
	files := map[string][]byte{
		"ca.crt": caPEM, "apiserver.crt": certPEM, "apiserver.key": keyPEM, "sa.key": saKey,
		"tokens.csv": []byte(token + ",admin,admin-uid,system:masters\n" +
			nodeToken + ",system:node:" + NodeName + ",node-uid,system:nodes\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	c.start(t, "kube-apiserver", filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers", "http://127.0.0.1:"+etcdClient,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", port,
		"--endpoint-reconciler-type", "none",
		"--tls-cert-file", filepath.Join(dir, "apiserver.crt"), "--tls-private-key-file", filepath.Join(dir, "apiserver.key"),
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "Node,RBAC",
		// As kubeadm and managed clusters run it, so a test of what
		// refuses a privileged pod does not lean on this flag's default.
		"--allow-privileged=true",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(dir, "sa.key"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--cert-dir", filepath.Join(dir, "certs"))

	c.Config = &rest.Config{Host: "https://127.0.0.1:" + port, BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}, QPS: 200, Burst: 400}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	c.Client = cs
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "%s", certificate-authority-data: %s}}]
users: [{name: admin, user: {token: %s}}]
contexts: [{name: test, context: {cluster: test, user: admin}}]
current-context: test
`, c.Config.Host, base64.StdEncoding.EncodeToString(caPEM), token)
	if err := os.WriteFile(c.Kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	c.waitReady(t, caPEM, token)
	return c
}

// Namespace creates a namespace and its default ServiceAccount.
func (c *Cluster) Namespace(t testing.TB, name string) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// waitReady polls /readyz until it says ok, or a process exits.
func (c *Cluster) waitReady(t testing.TB, caPEM []byte, token string) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, c.Config.Host+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		for _, p := range c.procs {
			select {
			case <-p.done:
				t.Fatalf("%s exited: %v\n%s", p.name, p.err, tail(p.log))
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver not ready within 60 s: %v\n%s", err, tail(c.procs[len(c.procs)-1].log))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) start(t testing.TB, name, bin string, args ...string) {
	t.Helper()
	log := filepath.Join(c.dir, name+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
}

// stop kills the processes, the last started first, then runs the stops.
func (c *Cluster) stop() {
	defer func() {
		for i := len(c.stops) - 1; i >= 0; i-- {
			c.stops[i]()
		}
	}()
	var wg sync.WaitGroup
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				<-p.done
			}
		}()
		wg.Wait()
	}
}

// Logs returns the tail of a component's log ("etcd", "kube-apiserver").
func (c *Cluster) Logs(name string) string {
	for _, p := range c.procs {
		if p.name == name {
			return tail(p.log)
		}
	}
	return ""
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func ecKeyPEM(t testing.TB) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// serving makes a CA and the API server's certificate for 127.0.0.1.
func serving(t testing.TB) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubetest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(NodeIP)}, DNSNames: []string{"localhost", "kubernetes.default.svc"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
