package isolate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/glovebox/glovebox/internal/kubetest"
	"github.com/glovebox/glovebox/internal/testenv"
)

// procOf finds the pid of a process of the pod whose command line starts
// with prefix, by the pod's cgroup (the kubelet's, under kubetest's root).
func procOf(t *testing.T, podUID, prefix string) int {
	t.Helper()
	var pid int
	filepath.WalkDir("/sys/fs/cgroup/pids/kubetest", func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() || pid != 0 || !strings.Contains(p, strings.ReplaceAll(podUID, "-", "_")) && !strings.Contains(p, podUID) {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n))
			if strings.HasPrefix(string(cmd), prefix) {
				pid = n
				return filepath.SkipAll
			}
		}
		return nil
	})
	if pid == 0 {
		t.Fatalf("no process %q in pod %s", prefix, podUID)
	}
	return pid
}

// procStatus reads fields of /proc/pid/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// TestKubernetesPod: on a real kubelet, a tab's pod starts and its
// DevTools answers through the relay; the browser runs as uid 1000 with no
// capability, no new privileges and seccomp filtering; a page it opens goes
// through the relay to the owner's egress; from the pod's network the
// browser's user reaches neither the node, nor the API server, nor the
// egress directly; closing the tab deletes its pod and Secret.
func TestKubernetesPod(t *testing.T) {
	if err := kubetest.MissingBrowserNode(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	kc, _ := kubetest.BrowserNode(t, "glovebox/chromium.json", KubeSeccompJSON(t))
	const ns = "glovebox"
	kc.Namespace(t, ns)

	// The owner's egress: a stand-in proxy on the node's address that
	// records what reaches it and answers each request.
	eln, err := net.Listen("tcp", kubetest.NodeIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	egress := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.String()+" from "+r.RemoteAddr)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<title>through the egress</title>")
	})}
	go egress.Serve(eln)
	defer egress.Close()
	eport := eln.Addr().(*net.TCPAddr).Port

	cfg := DefaultKubernetesConfig()
	cfg.Namespace, cfg.Image, cfg.ImagePullPolicy = ns, "glovebox.test/browser:1", "Never"
	cfg.Egress, cfg.DataDir = eln.Addr().String(), t.TempDir()
	k, err := NewKubernetes(context.Background(), cfg, kc.Config, eport, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	start := time.Now()
	b, err := k.Start(context.Background(), Spec{TabID: "0123456789abcdef"})
	if err != nil {
		pods, _ := kc.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		for _, p := range pods.Items {
			t.Logf("pod %s: %s", p.Name, podSummary(&p))
		}
		t.Fatalf("start: %v\nkubelet:\n%s", err, kc.Logs("kubelet"))
	}
	t.Logf("pod started, DevTools answering, in %v", time.Since(start).Round(time.Millisecond))
	if b.Node != kubetest.NodeName || b.Addr == nil || !strings.HasPrefix(b.DevToolsURL, "ws://localhost/devtools/browser/") {
		t.Errorf("browser %+v", b)
	}
	pod, err := kc.Client.CoreV1().Pods(ns).Get(context.Background(), b.ID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The browser's processes as the kernel sees them.
	pid := procOf(t, string(pod.UID), "/usr/lib/chromium/chromium")
	st := procStatus(t, pid)
	if !strings.HasPrefix(st["Uid"], "1000\t") || st["CapEff"] != "0000000000000000" || st["CapBnd"] != "0000000000000000" || st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" {
		t.Errorf("browser process: Uid %q CapEff %q CapBnd %q NoNewPrivs %q Seccomp %q", st["Uid"], st["CapEff"], st["CapBnd"], st["NoNewPrivs"], st["Seccomp"])
	}
	rpid := procOf(t, string(pod.UID), "/usr/local/bin/glovebox")
	if rs := procStatus(t, rpid); !strings.HasPrefix(rs["Uid"], "1001\t") || rs["CapEff"] != "0000000000000000" {
		t.Errorf("relay process: Uid %q CapEff %q", rs["Uid"], rs["CapEff"])
	}

	// A page through DevTools: the request reaches the egress from the pod.
	devToolsNewPage(t, b.DevToolsSocket, "http://site.test/page")
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got := strings.Join(seen, "\n")
		mu.Unlock()
		if strings.Contains(got, "GET http://site.test/page from "+b.Addr.String()+":") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page's request never reached the egress from %s: %q", b.Addr, got)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// From the pod's network namespace, as the browser's user: nothing
	// but loopback.
	apiHost, apiPort, _ := net.SplitHostPort(strings.TrimPrefix(kc.Config.Host, "https://"))
	for _, target := range []string{kubetest.NodeIP + ":" + strconv.Itoa(eport), apiHost + ":" + apiPort, kubetest.NodeIP + ":10250"} {
		h, p, _ := net.SplitHostPort(target)
		err := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-n", "setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
			"timeout", "2", "bash", "-c", "exec 3<>/dev/tcp/"+h+"/"+p).Run()
		if err == nil {
			t.Errorf("the browser's user reached %s from the pod", target)
		}
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	sel := metav1.ListOptions{LabelSelector: LabelTab + "=0123456789abcdef"}
	secrets, _ := kc.Client.CoreV1().Secrets(ns).List(context.Background(), sel)
	if len(secrets.Items) != 0 {
		t.Error("the Secret outlived the tab")
	}
	pods, _ := kc.Client.CoreV1().Pods(ns).List(context.Background(), sel)
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			t.Errorf("pod %s outlived the tab", p.Name)
		}
	}
}

// KubeSeccompJSON is KubeSeccompProfile as the file a node gets.
func KubeSeccompJSON(t testing.TB) []byte {
	t.Helper()
	prof, err := KubeSeccompProfile()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(prof)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// devToolsNewPage opens url in a new page of the browser whose DevTools
// is at the unix socket.
func devToolsNewPage(t *testing.T, socket, url string) {
	t.Helper()
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	req, _ := http.NewRequest(http.MethodPut, "http://localhost/json/new?"+url, nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
