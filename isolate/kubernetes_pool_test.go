package isolate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/glovebox/glovebox/internal/kubetest"
	"github.com/glovebox/glovebox/internal/testenv"
)

// egressB is replica b's address in TestKubernetesPool: on the node's
// bridge (the test's own network), in its subnet but far above the
// addresses its pods get.
const egressB = "10.213.96.254"

// TestKubernetesPool is the warm pool two replicas share, on a real API
// server and kubelet: replica a keeps two idle pods, replica b none; both
// claiming the same idle pod at once, exactly one gets it, every time; b
// claims a's idle pods (its label and ownerReference then name b); the
// browser claimed answers DevTools and reaches its claimer's egress only;
// a refills its pool; closing leaves no pod behind.
func TestKubernetesPool(t *testing.T) {
	if err := kubetest.MissingBrowserNode(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	kc, node := kubetest.BrowserNode(t, "glovebox/chromium.json", KubeSeccompJSON(t))
	const ns = "glovebox"
	kc.Namespace(t, ns)
	ctx := context.Background()

	type replica struct {
		name string
		uid  string
		k    *Kubernetes
		pool *KubePool
		mu   sync.Mutex
		seen []string // what reached its egress
	}
	// The replicas of a Deployment share the egress port (the idle pods'
	// locks name it): b's egress listens on a second address of the node's
	// bridge, on a's port.
	if out, err := exec.Command("ip", "addr", "add", egressB+"/32", "dev", "gbktbr0").CombinedOutput(); err != nil {
		t.Fatalf("second node address: %v: %s", err, out)
	}
	egressPort := "0"
	newReplica := func(name, addr string, size int) *replica {
		// The replica's own pod, which owns what it makes.
		owner, err := kc.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "pause", Image: "glovebox.test/pause:1", ImagePullPolicy: corev1.PullNever}},
				TerminationGracePeriodSeconds: new(int64(0))},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r := &replica{name: name, uid: string(owner.UID)}
		eln, err := net.Listen("tcp", net.JoinHostPort(addr, egressPort))
		if err != nil {
			t.Fatal(err)
		}
		_, egressPort, _ = net.SplitHostPort(eln.Addr().String())
		egress := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			r.mu.Lock()
			r.seen = append(r.seen, req.URL.String()+" from "+req.RemoteAddr)
			r.mu.Unlock()
			io.WriteString(w, "<title>egress of "+name+"</title>")
		})}
		go egress.Serve(eln)
		t.Cleanup(func() { egress.Close() })
		cfg := DefaultKubernetesConfig()
		cfg.Namespace, cfg.Image, cfg.ImagePullPolicy = ns, kubetest.BrowserImageName, "Never"
		cfg.OwnerName, cfg.OwnerUID = name, r.uid
		cfg.Egress, cfg.DataDir = eln.Addr().String(), t.TempDir()
		if r.k, err = NewKubernetes(ctx, cfg, kc.Config, eln.Addr().(*net.TCPAddr).Port, nil, nil); err != nil {
			t.Fatal(err)
		}
		if r.pool, err = NewKubePool(ctx, r.k, PoolConfig{Size: size, RetryDelay: time.Second}, nil); err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := newReplica("replica-a", kubetest.NodeIP, 2), newReplica("replica-b", egressB, 0)
	idle := func(made string) []*corev1.Pod {
		var out []*corev1.Pod
		for _, p := range b.pool.candidates() {
			if p.Labels[LabelOwner] == made {
				out = append(out, p)
			}
		}
		return out
	}
	waitIdle := func(n int) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for len(idle(a.name)) < n {
			if time.Now().After(deadline) {
				pods, _ := kc.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				var st []string
				for _, p := range pods.Items {
					st = append(st, p.Name+" "+p.Labels[LabelPool]+" "+podSummary(&p))
				}
				t.Fatalf("a's pool never had %d idle pods ready: %v", n, st)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// Both claim the same idle pod at once, three times: one wins.
	var browsers []*Browser
	t.Cleanup(func() {
		for _, br := range browsers {
			br.Close()
		}
	})
	for round := range 3 {
		waitIdle(1)
		pod := idle(a.name)[0]
		type result struct {
			by  string
			br  *Browser
			err error
		}
		results := make(chan result, 2)
		for _, r := range []*replica{a, b} {
			go func() {
				br, err := r.pool.claim(ctx, pod, Spec{TabID: fmt.Sprintf("%s-%d", r.name[len(r.name)-1:], round)})
				results <- result{r.name, br, err}
			}()
		}
		var winner string
		for range 2 {
			res := <-results
			switch {
			case res.err == nil:
				if winner != "" {
					t.Fatalf("round %d: pod %s claimed by both %s and %s", round, pod.Name, winner, res.by)
				}
				winner = res.by
				browsers = append(browsers, res.br)
			case errors.Is(res.err, errTaken):
			default:
				t.Fatalf("round %d: %s's claim: %v", round, res.by, res.err)
			}
		}
		if winner == "" {
			t.Fatalf("round %d: nobody got pod %s", round, pod.Name)
		}
		got, err := kc.Client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w := a
		if winner == b.name {
			w = b
		}
		if got.Labels[LabelPool] != PoolClaimed || got.Labels[LabelOwner] != winner || len(got.OwnerReferences) != 1 || string(got.OwnerReferences[0].UID) != w.uid {
			t.Errorf("round %d: the claimed pod's labels %v, owners %v; want claimed by %s", round, got.Labels, got.OwnerReferences, winner)
		}
		t.Logf("round %d: %s claimed %s", round, winner, pod.Name)
	}

	// b, whose own pool is empty, takes a's idle pod through Start.
	waitIdle(1)
	before := b.pool.Stats().Claims
	br, err := b.pool.Start(ctx, Spec{TabID: "b-start"})
	if err != nil {
		t.Fatal(err)
	}
	browsers = append(browsers, br)
	if !br.Warm || b.pool.Stats().Claims != before+1 {
		t.Errorf("b's Start got warm=%v, claims %d→%d: want a's idle pod", br.Warm, before, b.pool.Stats().Claims)
	}
	// Its DevTools answers, and its page's requests go to b's egress only.
	devToolsNewPage(t, br.DevToolsSocket, "http://site.test/claimed")
	deadline := time.Now().Add(20 * time.Second)
	for {
		b.mu.Lock()
		got := strings.Join(b.seen, "\n")
		b.mu.Unlock()
		if strings.Contains(got, "http://site.test/claimed from "+br.Addr.String()+":") {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := filepath.Glob(filepath.Join(node.PodLogs, ns+"_"+br.ID+"_*", "*", "*.log"))
			var text []string
			for _, l := range logs {
				raw, _ := os.ReadFile(l)
				text = append(text, l+":\n"+string(raw))
			}
			t.Fatalf("the claimed browser's request never reached b's egress: %q\n%s", got, strings.Join(text, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.mu.Lock()
	for _, s := range a.seen {
		if strings.Contains(s, "/claimed") {
			t.Errorf("the claimed browser's request reached its maker's egress: %s", s)
		}
	}
	a.mu.Unlock()

	// a refills: two idle again.
	waitIdle(2)
	t.Logf("a: %+v; b: %+v", a.pool.Stats(), b.pool.Stats())

	// Closing: the tabs' pods, then the pools and runtimes; nothing left
	// but the owners' own pods.
	for _, br := range browsers {
		if err := br.Close(); err != nil {
			t.Error(err)
		}
	}
	browsers = nil
	for _, r := range []*replica{a, b} {
		if err := r.pool.Close(); err != nil {
			t.Error(err)
		}
		r.k.Close()
	}
	deadline = time.Now().Add(time.Minute)
	for {
		pods, _ := kc.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelManaged + "=true"})
		secrets, _ := kc.Client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelManaged + "=true"})
		if len(pods.Items) == 0 && len(secrets.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left after closing: %d pods, %d Secrets", len(pods.Items), len(secrets.Items))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
