package isolate

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/glovebox/glovebox/internal/kubetest"
	"github.com/glovebox/glovebox/internal/testenv"
)

func leftoverPod(name, owner string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelManaged: "true", LabelOwner: owner}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}},
	}
}

// TestKubernetesAPI runs the runtime against a real API server with no
// node: it writes the browsers' policy, reaps what a previous incarnation
// of its replica left (and nothing of another replica's), makes a pod the
// API server's validation takes with every property of kubePod, and, when
// the pod never runs, fails the start saying so and leaves nothing behind.
func TestKubernetesAPI(t *testing.T) {
	if err := kubetest.Missing(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	kc := kubetest.Start(t)
	const ns = "glovebox"
	kc.Namespace(t, ns)
	ctx := context.Background()
	pods := kc.Client.CoreV1().Pods(ns)
	for _, p := range []*corev1.Pod{leftoverPod("glovebox-tab-old", "replica-a"), leftoverPod("glovebox-tab-b", "replica-b")} {
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	cfg := DefaultKubernetesConfig()
	cfg.Namespace, cfg.Image, cfg.OwnerName, cfg.OwnerUID = ns, "glovebox:test", "replica-a", "6f1c5a52-0000-4000-8000-000000000001"
	cfg.Egress, cfg.StartTimeout, cfg.DataDir = "10.1.2.3:3129", 3*time.Second, t.TempDir()
	if _, err := NewKubernetes(ctx, cfg, kc.Config, 3128, nil, nil); err == nil || !strings.Contains(err.Error(), "egress port 3128") {
		t.Errorf("egress on another port than the proxy's: %v", err)
	}
	k, err := NewKubernetes(ctx, cfg, kc.Config, 3129, [][]byte{[]byte("not really DER")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()

	// Reaped: replica-a's leftover, not replica-b's pod.
	if p, err := pods.Get(ctx, "glovebox-tab-old", metav1.GetOptions{}); err == nil && p.DeletionTimestamp == nil {
		t.Error("the previous incarnation's pod was not reaped")
	}
	if _, err := pods.Get(ctx, "glovebox-tab-b", metav1.GetOptions{}); err != nil {
		t.Errorf("another replica's pod: %v", err)
	}
	cm, err := kc.Client.CoreV1().ConfigMaps(ns).Get(ctx, kubePolicyConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var pol map[string]any
	if err := json.Unmarshal([]byte(cm.Data["glovebox.json"]), &pol); err != nil || pol["CACertificates"] == nil || pol["BuiltInDnsClientEnabled"] != false {
		t.Errorf("policy ConfigMap: %v %v", pol, err)
	}

	w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: LabelOwner + "=replica-a," + LabelTab + "=feedfacecafebeef"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	_, err = k.Start(ctx, Spec{TabID: "feedfacecafebeef", Width: 800, Height: 600})
	if err == nil || !strings.Contains(err.Error(), "not running") || !strings.Contains(err.Error(), "Pending") {
		t.Fatalf("start with no node: %v", err)
	}
	var stored *corev1.Pod
	select {
	case ev := <-w.ResultChan():
		stored, _ = ev.Object.(*corev1.Pod)
	case <-time.After(10 * time.Second):
	}
	if stored == nil {
		t.Fatal("the pod was never created")
	}
	// As the API server stored it: validated and defaulted, still locked.
	if len(stored.OwnerReferences) != 1 || stored.OwnerReferences[0].Name != "replica-a" {
		t.Errorf("owner %v", stored.OwnerReferences)
	}
	b := stored.Spec.Containers[0]
	if b.Name != "browser" || *b.SecurityContext.RunAsUser != kubeBrowserUID || *b.SecurityContext.AllowPrivilegeEscalation ||
		b.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeLocalhost || *stored.Spec.AutomountServiceAccountToken {
		t.Errorf("stored browser container %+v", b.SecurityContext)
	}
	if !strings.Contains(strings.Join(b.Command, " "), "--window-size=800,600") {
		t.Errorf("browser command %v", b.Command)
	}
	// Nothing left: the pod (being deleted at once) and its Secret.
	kubeLeftNothing(t, kc, ns, "replica-a")
	if k.Running() != 0 {
		t.Errorf("%d running", k.Running())
	}
	if err := k.Health(ctx); err != nil {
		t.Errorf("health: %v", err)
	}
}

// TestKubernetesOwner: a replica is owned by its pod; a configured owner
// other than the pod is refused (every replica reads the same
// configuration); outside a cluster the owner is the host, a valid label.
func TestKubernetesOwner(t *testing.T) {
	for _, tc := range []struct {
		name, owner, uid, pod, podUID string
		wantName, wantUID, wantErr    string
	}{
		{name: "in a cluster", pod: "glovebox-7d9-abc", podUID: "u1", wantName: "glovebox-7d9-abc", wantUID: "u1"},
		{name: "configured, the pod's", owner: "glovebox-7d9-abc", uid: "u1", pod: "glovebox-7d9-abc", podUID: "u1", wantName: "glovebox-7d9-abc", wantUID: "u1"},
		{name: "configured, another's", owner: "replica-a", uid: "u2", pod: "glovebox-7d9-abc", podUID: "u1", wantErr: "POD_NAME"},
		{name: "configured, outside a cluster", owner: "replica-a", uid: "u2", wantName: "replica-a", wantUID: "u2"},
		{name: "outside a cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultKubernetesConfig()
			c.OwnerName, c.OwnerUID = tc.owner, tc.uid
			got, err := c.withOwner(tc.pod, tc.podUID)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "owner_name") {
					t.Fatalf("err %v, want one naming owner_name and %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || got.OwnerName != tc.wantName || got.OwnerUID != tc.wantUID {
				t.Errorf("owner %q %q, %v; want %q %q", got.OwnerName, got.OwnerUID, err, tc.wantName, tc.wantUID)
			}
		})
	}
	t.Setenv("POD_NAME", "glovebox-7d9-abc")
	cfg := DefaultKubernetesConfig()
	cfg.Image, cfg.OwnerName, cfg.OwnerUID, cfg.Egress, cfg.DataDir = "glovebox:test", "replica-a", "u2", "10.1.2.3:3129", t.TempDir()
	if _, err := NewKubernetes(context.Background(), cfg, &rest.Config{Host: "https://127.0.0.1:1"}, 3129, nil, nil); err == nil || !strings.Contains(err.Error(), "owner_name") {
		t.Errorf("NewKubernetes with another replica's owner_name: %v", err)
	}

	for _, host := range []string{"build-7", "My_Host.example.com", "", "-", "bad host/name:1", strings.Repeat("a", 100), strings.Repeat("b", 57) + ".-x"} {
		o := hostOwner(host)
		if errs := validation.IsValidLabelValue(o); len(errs) > 0 || !strings.HasPrefix(o, "host") {
			t.Errorf("hostOwner(%q) = %q: %v", host, o, errs)
		}
	}
	if hostOwner("build-7") != "host-build-7" || hostOwner("build-7") == hostOwner("build-8") {
		t.Errorf("hostOwner(build-7) = %q", hostOwner("build-7"))
	}
	// A host's pods carry its owner label and no ownerReference.
	p := testKubePod(t)
	p.cfg.OwnerName, p.cfg.OwnerUID = hostOwner("build-7"), ""
	if pod := p.pod(); pod.Labels[LabelOwner] != "host-build-7" || len(pod.OwnerReferences) != 0 {
		t.Errorf("host's pod: labels %v, owners %v", pod.Labels, pod.OwnerReferences)
	}
}

// createTransport stands for an API server whose answer to a pod's Create
// is lost after it stored the pod: the request goes through, then lost
// says what the client sees instead (the API server's answer is lost,
// its status in stored).
type createTransport struct {
	rt     http.RoundTripper
	lost   func(req *http.Request) error
	stored chan int
}

func (c createTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	if err != nil || req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/pods") {
		return resp, err
	}
	resp.Body.Close()
	select {
	case c.stored <- resp.StatusCode:
	default:
	}
	return nil, c.lost(req)
}

func withLostCreate(rc *rest.Config, lost func(*http.Request) error) (*rest.Config, chan int) {
	rc = rest.CopyConfig(rc)
	stored := make(chan int, 1)
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return createTransport{rt: rt, lost: lost, stored: stored}
	}
	return rc, stored
}

// TestKubernetesLeftNothing: outside a cluster the runtime reaps only its
// host's leftovers, never all the managed pods; a pod whose Create failed
// after the API server stored it is deleted; a Close while a Create is
// under way ends the start and leaves nothing.
func TestKubernetesLeftNothing(t *testing.T) {
	if err := kubetest.Missing(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	kc := kubetest.Start(t)
	const ns = "glovebox"
	kc.Namespace(t, ns)
	ctx := context.Background()
	pods := kc.Client.CoreV1().Pods(ns)
	host, _ := os.Hostname()
	bare := leftoverPod("glovebox-tab-bare", "")
	delete(bare.Labels, LabelOwner)
	for _, p := range []*corev1.Pod{leftoverPod("glovebox-tab-host", hostOwner(host)), leftoverPod("glovebox-tab-b", "replica-b"), bare} {
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("POD_NAME", "")
	t.Setenv("POD_UID", "")
	cfg := DefaultKubernetesConfig()
	cfg.Namespace, cfg.Image, cfg.Egress, cfg.StartTimeout, cfg.DataDir = ns, "glovebox:test", "10.1.2.3:3129", 20*time.Second, t.TempDir()
	lost, stored := withLostCreate(kc.Config, func(*http.Request) error { return errors.New("connection reset") })
	k, err := NewKubernetes(ctx, cfg, lost, 3129, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if p, err := pods.Get(ctx, "glovebox-tab-host", metav1.GetOptions{}); err == nil && p.DeletionTimestamp == nil {
		t.Error("this host's leftover was not reaped")
	}
	for _, name := range []string{"glovebox-tab-b", "glovebox-tab-bare"} {
		if p, err := pods.Get(ctx, name, metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
			t.Errorf("%s, not this host's, was reaped: %v", name, err)
		}
	}

	if _, err := k.Start(ctx, Spec{TabID: "feedfacecafebeef"}); err == nil || !strings.Contains(err.Error(), "create pod") {
		t.Fatalf("start with the Create's answer lost: %v", err)
	}
	select {
	case code := <-stored:
		if code != http.StatusCreated {
			t.Fatalf("the API server answered the pod's Create %d: the test tests nothing", code)
		}
	default:
		t.Fatal("no pod Create")
	}
	kubeLeftNothing(t, kc, ns, hostOwner(host))

	// Close while the pod's Create waits for its answer.
	creating := make(chan struct{}, 1)
	hung, _ := withLostCreate(kc.Config, func(req *http.Request) error {
		creating <- struct{}{}
		<-req.Context().Done()
		return req.Context().Err()
	})
	cfg.OwnerName, cfg.OwnerUID = "replica-c", "6f1c5a52-0000-4000-8000-00000000000c"
	k2, err := NewKubernetes(ctx, cfg, hung, 3129, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() {
		_, err := k2.Start(ctx, Spec{TabID: "0123456789abcdef"})
		started <- err
	}()
	select {
	case <-creating:
	case err := <-started:
		t.Fatalf("start: %v", err)
	}
	t0 := time.Now()
	k2.Close()
	if err := <-started; err == nil {
		t.Error("a start under Close succeeded")
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("Close took %v: the start did not end with it", d)
	}
	kubeLeftNothing(t, kc, ns, "replica-c")
}

// kubeLeftNothing fails t if owner has a pod not being deleted, or a
// Secret, in ns.
func kubeLeftNothing(t *testing.T, kc *kubetest.Cluster, ns, owner string) {
	t.Helper()
	sel := metav1.ListOptions{LabelSelector: LabelOwner + "=" + owner}
	ps, err := kc.Client.CoreV1().Pods(ns).List(context.Background(), sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps.Items {
		if p.DeletionTimestamp == nil {
			t.Errorf("pod %s of %s left", p.Name, owner)
		}
	}
	ss, err := kc.Client.CoreV1().Secrets(ns).List(context.Background(), sel)
	if err != nil || len(ss.Items) != 0 {
		t.Errorf("%d secrets of %s left, %v", len(ss.Items), owner, err)
	}
}
