package kubetest

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/glovebox/glovebox/internal/testenv"
)

const helloServer = `package main

import (
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello from " + os.Getenv("HOSTNAME"))) })
	http.ListenAndServe(":8080", nil)
}
`

// TestNode: a pod of an image built here runs on the real kubelet, its IP
// answers from the host, deleting it removes it, and a pod whose owner is
// deleted is garbage-collected by the controller-manager.
func TestNode(t *testing.T) {
	if err := Missing(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	if err := MissingNode(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	before := cniResults()
	t.Run("pods", func(t *testing.T) { testNodePods(t) })
	// The node's cleanup has run: nothing of it is left on the host.
	if err := exec.Command("ip", "link", "show", podBridge).Run(); err == nil {
		t.Errorf("bridge %s left", podBridge)
	}
	for name := range cniResults() {
		if !before[name] {
			t.Errorf("CNI result %s left", name)
		}
	}
	for _, h := range cgroupHierarchies() {
		if _, err := os.Stat(filepath.Join(h, cgroupRoot)); err == nil {
			t.Errorf("cgroup %s left", filepath.Join(h, cgroupRoot))
		}
	}
	links, _ := os.ReadDir(containerLogLinks)
	for _, l := range links {
		if _, err := os.Stat(filepath.Join(containerLogLinks, l.Name())); err != nil {
			t.Errorf("container log link %s left, to a log that is gone", l.Name())
		}
	}
	if out, _ := exec.Command("iptables-save").Output(); strings.Contains(string(out), "KUBE-") {
		t.Errorf("kubelet's iptables chains left:\n%s", out)
	}
	if out, _ := exec.Command("pgrep", "-f", "^("+filepath.Join(Dir(), "bin")+"/|/usr/bin/containerd --config .*/node/containerd.toml|/usr/bin/containerd-shim-runc-v2 -namespace k8s.io|/pause$|/hello$)").Output(); len(out) > 0 {
		t.Errorf("processes left: %s", out)
	}
}

func testNodePods(t *testing.T) {
	c := Start(t)
	c.Namespace(t, "kt")
	n := c.StartNode(t)
	n.Import(t, ImageTar(t, "glovebox.test/hello:1", []string{"/hello"}, []File{{Path: "hello", Mode: 0o755, Data: BuildStatic(t, t.TempDir(), helloServer)}}))
	ctx := context.Background()
	pods := c.Client.CoreV1().Pods("kt")
	mk := func(name string, owner *corev1.Pod) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "hello", Image: "glovebox.test/hello:1", ImagePullPolicy: corev1.PullNever}},
			TerminationGracePeriodSeconds: new(int64(0)),
		}}
		if owner != nil {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: owner.Name, UID: owner.UID}}
		}
		got, err := pods.Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	running := func(name string) *corev1.Pod {
		var p *corev1.Pod
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			var err error
			p, err = pods.Get(ctx, name, metav1.GetOptions{})
			return err == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "", nil
		})
		if err != nil {
			t.Fatalf("pod %s not running: %v %+v\nkubelet:\n%s", name, err, p.Status, c.Logs("kubelet"))
		}
		return p
	}
	gone := func(name string) {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := pods.Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			t.Fatalf("pod %s still there: %v", name, err)
		}
	}

	start := time.Now()
	owner := mk("owner", nil)
	p := running("owner")
	t.Logf("pod running %v after creation, IP %s", time.Since(start).Round(time.Millisecond), p.Status.PodIP)
	hc := http.Client{Timeout: 5 * time.Second}
	var body []byte
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		resp, err := hc.Get("http://" + p.Status.PodIP + ":8080/")
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return true, nil
	})
	if err != nil || string(body) != "hello from owner" {
		t.Fatalf("pod answered %q, %v", body, err)
	}

	mk("dependent", owner)
	running("dependent")
	if err := pods.Delete(ctx, "owner", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	gone("owner")
	gone("dependent") // the garbage collector's doing
}
