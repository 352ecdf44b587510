package main

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/glovebox/glovebox/internal/kubetest"
	"github.com/glovebox/glovebox/internal/testenv"
	"github.com/glovebox/glovebox/isolate"
	"github.com/glovebox/glovebox/proxy/policy"
)

// TestKubernetesEndToEnd is the first issue's story with the tab's browser
// in a pod on a real kubelet: a real Chromium through the proxy sees the
// site's pixels, clicks, types and follows a link, none of the site's bytes
// reach it, every file the remote browser loaded went through this
// replica's egress proxy from the pod's address, tab_start names the pod and
// its node, and closing the tab removes the pod.
func TestKubernetesEndToEnd(t *testing.T) {
	needChromium(t)
	if err := kubetest.MissingBrowserNode(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	kc, _ := kubetest.BrowserNode(t, "glovebox/chromium.json", kubeSeccompJSON(t))
	const ns = "glovebox"
	kc.Namespace(t, ns)

	site := newTestSite(t)
	siteURL, _ := url.Parse(site.URL)
	dataDir, err := os.MkdirTemp("/tmp", "gbk-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	eport := freePort(t)
	g := startGlovebox(t, func(c *Config) {
		c.Isolate.Runtime = "kubernetes"
		k := &c.Isolate.Kubernetes
		k.Kubeconfig, k.Namespace, k.Image, k.ImagePullPolicy = kc.Kubeconfig, ns, kubetest.BrowserImageName, "Never"
		k.Egress, k.DataDir = kubetest.NodeIP+":"+strconv.Itoa(eport), filepath.Join(dataDir, "kubernetes")
		c.Egress.Port = eport
		c.Egress.AllowInternal = []string{siteURL.Host}
		c.Proxy.Policy.Default = policy.ActionBlock
		c.Proxy.Policy.Rules = []policy.Rule{{Name: "test-site", Host: "127.0.0.1", Action: policy.ActionIsolate}}
	})

	// The pod's processes, by the pod's UID (kept once seen: the pod is
	// gone from the API before its processes are).
	var mu sync.Mutex
	uids := map[string]string{}
	podPIDs := func(name string) []int {
		mu.Lock()
		uid := uids[name]
		mu.Unlock()
		if uid == "" {
			p, err := kc.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				return nil
			}
			uid = string(p.UID)
			mu.Lock()
			uids[name] = uid
			mu.Unlock()
		}
		var pids []int
		filepath.WalkDir("/sys/fs/cgroup/pids/kubetest", func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() || !strings.Contains(p, uid) && !strings.Contains(p, strings.ReplaceAll(uid, "-", "_")) {
				return nil
			}
			b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
		return pids
	}
	tab := runEndToEnd(t, g, site, podPIDs)

	var start map[string]any
	for _, e := range g.audit.events() {
		if e["event"] == "tab_start" && e["tab"] == tab {
			start = e
		}
	}
	if start == nil || start["runtime"] != "kubernetes" || start["node"] != kubetest.NodeName || !strings.HasPrefix(start["browser"].(string), "glovebox-tab-") {
		t.Errorf("tab_start = %v, want a kubernetes browser on %s", start, kubetest.NodeName)
	}
	seen := map[string]bool{}
	for _, e := range g.audit.events() {
		if e["event"] == "egress_request" && e["tab"] == tab && e["status"] == float64(200) {
			u, _ := url.Parse(e["url"].(string))
			seen[u.Path] = true
		}
	}
	for _, p := range []string{"/", "/app.js", "/style.css", "/next"} {
		if !seen[p] {
			t.Errorf("no egress_request with tab %s for %s; saw %v", tab, p, seen)
		}
	}
	waitFor(t, 60*time.Second, "the tab's pod and Secret to go", func() (bool, string) {
		sel := metav1.ListOptions{LabelSelector: isolate.LabelTab + "=" + tab}
		pods, err1 := kc.Client.CoreV1().Pods(ns).List(context.Background(), sel)
		secrets, err2 := kc.Client.CoreV1().Secrets(ns).List(context.Background(), sel)
		return err1 == nil && err2 == nil && len(pods.Items) == 0 && len(secrets.Items) == 0, ""
	})
}

// kubeSeccompJSON is the browser pods' seccomp profile as the file a node
// gets.
func kubeSeccompJSON(t testing.TB) []byte {
	t.Helper()
	prof, err := isolate.KubeSeccompProfile()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(prof)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
