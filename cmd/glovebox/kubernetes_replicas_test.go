package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/glovebox/glovebox/internal/kubetest"
	"github.com/glovebox/glovebox/internal/testenv"
	"github.com/glovebox/glovebox/isolate"
)

// TestKubernetesReplicas is Glovebox as deploy/kubernetes ships it, on a
// real API server and kubelet: the manifests applied as they are (the
// image, the API server's address and the site's rules set as an overlay
// would), two replicas running `glovebox serve` in pods with their
// ServiceAccount's Role, and a real user Chromium reaching them through a
// stand-in for the proxy Service (a TCP balancer over the replicas' ready
// pods: the test node runs no kube-proxy).
//
// A tab made through one replica is reattached (a reload) through the
// other, which forwards it to its owner; the owner's pod deleted, its
// browser pods are removed by Kubernetes' garbage collector, the user's page
// says its tab is lost, and a reload opens a new tab on a live replica;
// deleting the Deployment leaves no pod behind.
func TestKubernetesReplicas(t *testing.T) {
	needChromium(t)
	if err := kubetest.MissingBrowserNode(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	kc, node := kubetest.BrowserNode(t, "glovebox/chromium.json", kubeSeccompJSON(t))
	const ns = "glovebox"
	apiHost, apiPort := node.PodAPI(t)

	// The site, where the replicas' egress (in their pods) reaches it.
	site := newTestSiteAt(t, kubetest.NodeIP+":0")
	siteURL, _ := url.Parse(site.URL)

	caPEM := applyDeployment(t, kc, ns, map[string]any{
		"clients": []string{"127.0.0.0/8", kubetest.PodSubnet},
		"isolate": map[string]any{
			// The shared warm pool: an idle pod per replica.
			"pool":       map[string]any{"size": 1},
			"kubernetes": map[string]any{"image": kubetest.BrowserImageName, "image_pull_policy": "Never", "start_timeout": "120s"},
		},
		"egress": map[string]any{"allow_internal": []string{siteURL.Host}},
		// Every site isolated: what keeps a page off the cluster is then
		// the egress proxy's refusal of internal addresses, not a rule.
		"policy": map[string]any{"default": "isolate"},
	}, func(d *appsv1.Deployment) {
		c := &d.Spec.Template.Spec.Containers[0]
		c.Image, c.ImagePullPolicy = kubetest.BrowserImageName, corev1.PullNever
		c.Env = append(c.Env, corev1.EnvVar{Name: "KUBERNETES_SERVICE_HOST", Value: apiHost}, corev1.EnvVar{Name: "KUBERNETES_SERVICE_PORT", Value: apiPort})
	})
	replicas := func() []corev1.Pod {
		pods, err := kc.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=glovebox"})
		if err != nil {
			return nil
		}
		var ready []corev1.Pod
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Status.PodIP != "" && podReady(&p) {
				ready = append(ready, p)
			}
		}
		return ready
	}
	// Registered before the first wait: cleanups run last-in first-out,
	// so the logs are read while the node still has them.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		pods, _ := kc.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=glovebox"})
		for _, p := range pods.Items {
			t.Logf("replica %s log:\n%s", p.Name, lastLines(podLog(node, p), 40))
		}
	})
	waitFor(t, 3*time.Minute, "two replicas ready", func() (bool, string) {
		rs := replicas()
		return len(rs) == 2, fmt.Sprintf("%d ready; %s", len(rs), podStates(kc, ns))
	})

	// One interception CA for every replica: the glovebox-ca Secret's,
	// as README says to make it.
	for _, p := range replicas() {
		resp, err := http.Get("http://" + net.JoinHostPort(p.Status.PodIP, "3128") + "/glovebox-ca.pem")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != caPEM {
			t.Errorf("replica %s serves the CA %.80q…, want the glovebox-ca Secret's", p.Name, got)
		}
		// Mounted for the replicas' group alone (fsGroup, 0440): no warning.
		if l := podLog(node, p); strings.Contains(l, "private key is readable by others") {
			t.Errorf("replica %s warns of the CA key's mode:\n%s", p.Name, lastLines(l, 10))
		}
	}

	lb := newServiceBalancer(t, func() []string {
		var addrs []string
		for _, p := range replicas() {
			addrs = append(addrs, net.JoinHostPort(p.Status.PodIP, "3128"))
		}
		return addrs
	})

	// 1. The user's story through whichever replica the Service picks.
	bctx := userBrowser(t, lb.addr)
	tctx, closeTab := chromedp.NewContext(bctx)
	defer closeTab()
	lb.pin(0)
	if err := chromedp.Do(tctx, chromedp.Navigate(site.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, tctx, 600, 400, rgb{0, 160, 0}, 3*time.Minute)
	tabToken, err := chromedp.Run(tctx, chromedp.Evaluate[string](`sessionStorage.getItem('glovebox.tab') || ''`))
	if err != nil {
		t.Fatal(err)
	}
	owner := strings.Split(tabToken, ".")[0]
	var ownerPod, otherPod corev1.Pod
	for _, p := range replicas() {
		if p.Name == owner {
			ownerPod = p
		} else {
			otherPod = p
		}
	}
	if ownerPod.Name == "" || otherPod.Name == "" {
		t.Fatalf("the tab's token %.20q… names %q, not one of the replicas", tabToken, owner)
	}
	browserPods := func(ownerName string) []string {
		pods, _ := kc.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{
			LabelSelector: isolate.LabelOwner + "=" + ownerName + "," + isolate.LabelPool + "!=" + isolate.PoolIdle})
		var names []string
		for _, p := range pods.Items {
			names = append(names, p.Name)
		}
		return names
	}
	if bp := browserPods(owner); len(bp) != 1 {
		t.Fatalf("the owner %s has browser pods %v, want the tab's one", owner, bp)
	}

	// 2. Reached through the other replica: every new connection goes
	// there, the old ones are cut, and the page reloads: the landing page
	// reattaches with its token, which the other replica forwards.
	lb.pinTo(otherPod.Status.PodIP)
	lb.CutAll()
	before := peerRequests(t, otherPod, "forwarded")
	podsBefore := browserPods(owner)
	if err := chromedp.Do(tctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	// The reload reloads the remote page (issue 11) in the same tab: the
	// same token and browser pod, and the page's input works through it.
	waitForColour(t, tctx, 600, 400, rgb{0, 160, 0}, 60*time.Second)
	if got := peerRequests(t, otherPod, "forwarded"); got <= before {
		t.Errorf("%s forwarded %v API requests (before the reload: %v): the reattach did not go through it", otherPod.Name, got, before)
	}
	if got := peerRequests(t, ownerPod, "answered"); got < 1 {
		t.Errorf("%s answered %v forwarded requests", ownerPod.Name, got)
	}
	again, err := chromedp.Run(tctx, chromedp.Evaluate[string](`sessionStorage.getItem('glovebox.tab') || ''`))
	if err != nil || again != tabToken {
		t.Errorf("after the reload through %s the page holds another tab (err %v)", otherPod.Name, err)
	}
	if bp := browserPods(owner); fmt.Sprint(bp) != fmt.Sprint(podsBefore) || len(browserPods(otherPod.Name)) != 0 {
		t.Errorf("browser pods after the reload: %v of %s (was %v), %v of %s", bp, owner, podsBefore, browserPods(otherPod.Name), otherPod.Name)
	}
	waitFor(t, 30*time.Second, "the remote page's click handler, after the reattach", func() (bool, string) {
		chromedp.Do(tctx, chromedp.MouseClickXY(600, 400))
		c, _, _ := videoPixel(tctx, 600, 400)
		return c.near(rgb{200, 0, 0}, 40), c.String()
	})
	// A click on the field focuses it remotely (once the reloaded page
	// has it: clicked again each second until it says so).
	var lastClick time.Time
	waitFor(t, 30*time.Second, "the remote input to report its focus after the reattach", func() (bool, string) {
		if time.Since(lastClick) > time.Second {
			lastClick = time.Now()
			chromedp.Do(tctx, chromedp.MouseClickXY(100, 140))
		}
		return site.lastReport("focus") == "field", landingState(tctx)
	})

	// 3. From a page in a browser pod: the node, the API server, the
	// kubelet, another tab's browser pod, the other replica and its own
	// replica's other ports, a private address: all refused, with the CNI
	// enforcing no NetworkPolicy; the allowed site works.
	nodeAddr, nodeSecret := corsListener(t, kubetest.NodeIP+":0")
	n, err := kc.Client.CoreV1().Nodes().Get(context.Background(), kubetest.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ownerBrowser, err := kc.Client.CoreV1().Pods(ns).Get(context.Background(), browserPods(owner)[0], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, nodePort, _ := net.SplitHostPort(nodeAddr)
	checkPodNetwork(t, node, bctx, lb, site, otherPod, site.URL+"/", map[string]string{
		"node":                        "http://" + nodeAddr + "/",
		"API server":                  "https://" + net.JoinHostPort(apiHost, apiPort) + "/api",
		"kubelet":                     fmt.Sprintf("https://%s:%d/pods", kubetest.NodeIP, n.Status.DaemonEndpoints.KubeletEndpoint.Port),
		"another tab's browser pod":   "http://" + net.JoinHostPort(ownerBrowser.Status.PodIP, "9443") + "/",
		"another replica's proxy":     "http://" + net.JoinHostPort(ownerPod.Status.PodIP, "3128") + "/",
		"another replica's admin":     "http://" + net.JoinHostPort(ownerPod.Status.PodIP, "9090") + "/metrics",
		"another replica's peer port": "http://" + net.JoinHostPort(ownerPod.Status.PodIP, "9444") + "/",
		"its own replica's admin":     "http://" + net.JoinHostPort(otherPod.Status.PodIP, "9090") + "/metrics",
		"a private address":           "http://10.213.96.250:" + nodePort + "/",
	}, []string{nodeSecret, "glovebox_", "This is Glovebox"})

	// 4. The owner's pod deleted at once (no grace: as a node lost): its
	// browser pod is Kubernetes' to remove, the user is told, and a reload
	// opens a new tab on a live replica.
	zero := int64(0)
	if err := kc.Client.CoreV1().Pods(ns).Delete(context.Background(), ownerPod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the garbage collector to remove the lost replica's browser pods", func() (bool, string) {
		bp := browserPods(owner)
		return len(bp) == 0, fmt.Sprint(bp)
	})
	waitFor(t, 90*time.Second, "the user's page to say the tab is lost", func() (bool, string) {
		st := landingState(tctx)
		return strings.Contains(st, "Reload the page"), st
	})
	saveShot(t, tctx, "replica-lost")
	if err := chromedp.Do(tctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, tctx, 600, 400, rgb{0, 160, 0}, 3*time.Minute)
	newToken, err := chromedp.Run(tctx, chromedp.Evaluate[string](`sessionStorage.getItem('glovebox.tab') || ''`))
	if err != nil {
		t.Fatal(err)
	}
	if newOwner := strings.Split(newToken, ".")[0]; newOwner == owner || newToken == tabToken {
		t.Errorf("after the owner went, the reload's tab is owned by %q (was %q)", newOwner, owner)
	}
	if err := chromedp.Do(tctx, chromedp.MouseClickXY(600, 400)); err != nil {
		t.Fatal(err)
	}
	waitForColour(t, tctx, 600, 400, rgb{200, 0, 0}, 30*time.Second)

	// 5. Teardown: the tab closed and the Deployment deleted, no pod is left.
	closeTab()
	fg := metav1.DeletePropagationForeground
	if err := kc.Client.AppsV1().Deployments(ns).Delete(context.Background(), "glovebox", metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "no pod left in the namespace", func() (bool, string) {
		pods, err := kc.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var names []string
		for _, p := range pods.Items {
			names = append(names, p.Name)
		}
		return len(names) == 0, fmt.Sprint(names)
	})
}

// applyDeployment creates every object of deploy/kubernetes in ns, the
// config.yaml ConfigMap with over merged in, and the Deployment changed by
// patch, as a kustomize overlay would, and the glovebox-ca Secret as README
// says to make it (`glovebox ca`, then kubectl create secret tls). It
// returns the CA's certificate.
func applyDeployment(t *testing.T, kc *kubetest.Cluster, ns string, over map[string]any, patch func(*appsv1.Deployment)) string {
	t.Helper()
	caDir := filepath.Join(t.TempDir(), "ca")
	var caOut, caErr strings.Builder
	if err := run(t.Context(), []string{"ca", "--config", writeConfig(t, "tls:\n  dir: "+caDir+"\n")}, &caOut, &caErr); err != nil {
		t.Fatalf("glovebox ca: %v\n%s", err, caErr.String())
	}
	caCert, err := os.ReadFile(filepath.Join(caDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := os.ReadFile(filepath.Join(caDir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	caSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "glovebox-ca"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: caCert, corev1.TLSPrivateKeyKey: caKey}}
	dir := filepath.Join("..", "..", "deploy", "kubernetes")
	dc, err := dynamic.NewForConfig(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := yaml.Unmarshal(raw, &conf); err != nil {
		t.Fatal(err)
	}
	mergeMaps(conf, over)
	confYAML, err := yaml.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range manifestObjects(t, dir) {
		gv, _ := schema.ParseGroupVersion(obj.GetAPIVersion())
		res := gv.WithResource(manifestResources[obj.GetKind()])
		var ri dynamic.ResourceInterface = dc.Resource(res)
		if !clusterWide[obj.GetKind()] {
			obj.SetNamespace(ns)
			ri = dc.Resource(res).Namespace(ns)
		}
		if obj.GetKind() == "ConfigMap" && obj.GetName() == "glovebox-browser-image" {
			// The overlay's image for the admission policy, as its config's.
			img, _ := conf["isolate"].(map[string]any)["kubernetes"].(map[string]any)["image"].(string)
			if err := unstructured.SetNestedField(obj.Object, img, "data", "image"); err != nil {
				t.Fatal(err)
			}
		}
		if obj.GetKind() == "Deployment" {
			var d appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &d); err != nil {
				t.Fatal(err)
			}
			patch(&d)
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&d)
			if err != nil {
				t.Fatal(err)
			}
			obj.Object = m
			// The ConfigMap kustomize's configMapGenerator makes.
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "glovebox-config", Namespace: ns},
				Data: map[string]string{"config.yaml": string(confYAML)}}
			if _, err := kc.Client.CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ri.Create(context.Background(), &obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
		if obj.GetKind() == "Namespace" {
			if _, err := kc.Client.CoreV1().Secrets(ns).Create(context.Background(), caSecret, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return caOut.String()
}

// manifestObjects are the objects of the kustomization in dir, in its order.
func manifestObjects(t *testing.T, dir string) []unstructured.Unstructured {
	t.Helper()
	kust, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(kust, &k); err != nil {
		t.Fatal(err)
	}
	var out []unstructured.Unstructured
	for _, file := range k.Resources {
		raw, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
			var obj unstructured.Unstructured
			if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			out = append(out, obj)
		}
	}
	return out
}

// mergeMaps merges src into dst, maps key by key, anything else replaced.
func mergeMaps(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeMaps(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podStates is every pod of ns and its state, for a failure's message.
func podStates(kc *kubetest.Cluster, ns string) string {
	pods, err := kc.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "%s %s ready=%v; ", p.Name, p.Status.Phase, podReady(&p))
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil {
				fmt.Fprintf(&b, "%s waiting %s %s; ", cs.Name, w.Reason, w.Message)
			}
			if x := cs.State.Terminated; x != nil {
				fmt.Fprintf(&b, "%s exited %d %s; ", cs.Name, x.ExitCode, x.Message)
			}
		}
	}
	return b.String()
}

// podLog is a pod's first container's log as the kubelet wrote it on this
// node (the API server cannot reach the test kubelet's log endpoint).
func podLog(node *kubetest.Node, p corev1.Pod) string {
	matches, _ := filepath.Glob(filepath.Join(node.PodLogs, p.Namespace+"_"+p.Name+"_"+string(p.UID), "*", "*.log"))
	var b strings.Builder
	for _, m := range matches {
		raw, _ := os.ReadFile(m)
		b.Write(raw)
	}
	return b.String()
}

// peerRequests is a replica's glovebox_peer_requests_total{kind}, from its
// admin address.
func peerRequests(t *testing.T, p corev1.Pod, kind string) float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + net.JoinHostPort(p.Status.PodIP, "9090") + "/metrics")
	if err != nil {
		t.Fatalf("%s metrics: %v", p.Name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	prefix := `glovebox_peer_requests_total{kind="` + kind + `"} `
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// serviceBalancer stands in for the proxy's Service: each connection goes
// to one of the replicas' ready pods, in turn, or to the one pinned.
type serviceBalancer struct {
	*kubetest.Forwarder
	addr      string
	endpoints func() []string

	mu     sync.Mutex
	next   int
	pinned string
}

func newServiceBalancer(t *testing.T, endpoints func() []string) *serviceBalancer {
	t.Helper()
	b := &serviceBalancer{endpoints: endpoints}
	b.Forwarder = kubetest.Forward(t, "127.0.0.1:0", b.pick)
	b.addr = b.Forwarder.Addr
	return b
}

// pick is the endpoint of a new connection.
func (b *serviceBalancer) pick() string {
	eps := b.endpoints()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range eps {
		if b.pinned != "" && strings.HasPrefix(e, b.pinned+":") {
			return e
		}
	}
	if len(eps) == 0 {
		return "127.0.0.1:1"
	}
	b.next++
	return eps[b.next%len(eps)]
}

// pin sends every new connection to the i-th endpoint of the moment.
func (b *serviceBalancer) pin(i int) {
	eps := b.endpoints()
	host, _, _ := net.SplitHostPort(eps[i%len(eps)])
	b.pinTo(host)
}

// pinTo sends every new connection to ip ("" for round robin).
func (b *serviceBalancer) pinTo(ip string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pinned = ip
}

// checkPodNetwork opens a tab through the balancer (pinned to via) whose
// page fetches each of targets from its browser pod, and fails t unless
// only the allowed one was read: every other one refused by via's egress
// proxy (its audit, in its pod's log) and no secret of the test's
// listeners read.
func checkPodNetwork(t *testing.T, node *kubetest.Node, bctx context.Context, lb *serviceBalancer, site *testSite, via corev1.Pod, allowed string, targets map[string]string, secrets []string) {
	t.Helper()
	q := url.Values{}
	for _, u := range targets {
		q.Add("u", u)
	}
	q.Add("u", allowed)
	lb.pinTo(via.Status.PodIP)
	lb.CutAll()
	nctx, closeNet := chromedp.NewContext(bctx)
	defer closeNet()
	if err := chromedp.Do(nctx, chromedp.Navigate(site.URL+"/nettest?"+q.Encode())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Minute, "the page's network report", func() (bool, string) { return site.lastReport("nettest") != "", landingState(nctx) })
	var results map[string]string
	if err := json.Unmarshal([]byte(site.lastReport("nettest")), &results); err != nil {
		t.Fatal(err)
	}
	t.Logf("what a page in a browser pod could read: %v", results)
	if got := results[allowed]; !strings.HasPrefix(got, "status 200") || !strings.Contains(got, "Glovebox Test Page") {
		t.Errorf("the allowed site (%s): %q, want it read through the egress", allowed, got)
	}
	for name, u := range targets {
		for _, s := range secrets {
			if strings.Contains(results[u], s) {
				t.Errorf("%s (%s) was read from a browser pod's page: %q", name, u, results[u])
			}
		}
	}
	// Each was refused by the egress proxy itself, not merely unreadable.
	waitFor(t, 30*time.Second, "the egress refusals in "+via.Name+"'s audit", func() (bool, string) {
		refused := map[string]bool{}
		for _, e := range podEvents(node, via) {
			if e["event"] == "egress_request" && e["action"] == "refuse" {
				refused[fmt.Sprint(e["url"])] = true
			}
		}
		var missing []string
		for name, u := range targets {
			pu, _ := url.Parse(u)
			found := false
			for r := range refused {
				found = found || strings.Contains(r, pu.Host)
			}
			if !found {
				missing = append(missing, name+" "+u)
			}
		}
		return len(missing) == 0, fmt.Sprintf("not refused: %v (refused: %v)", missing, refused)
	})
}

// podEvents are the audit events in a replica's log (its stdout).
func podEvents(node *kubetest.Node, p corev1.Pod) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(podLog(node, p), "\n") {
		i := strings.Index(line, `{"`)
		if i < 0 {
			continue
		}
		var e map[string]any
		if json.Unmarshal([]byte(line[i:]), &e) == nil && e["event"] != nil {
			out = append(out, e)
		}
	}
	return out
}
