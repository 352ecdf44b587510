package kubetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/glovebox/glovebox/internal/testenv"
	"github.com/glovebox/glovebox/isolate"
	"github.com/glovebox/glovebox/isolate/podrelay"
)

// kwokDir is where build-kwok.sh puts kwok and its stages.
func kwokDir() string {
	if d := os.Getenv("GLOVEBOX_KWOK_DIR"); d != "" {
		return d
	}
	return "/var/cache/glovebox/kwok-v0.8.0"
}

// scaleParams are BenchmarkScale's sizes, from GLOVEBOX_SCALE_* variables.
type scaleParams struct {
	nodes    int           // simulated nodes (NODES)
	tabs     int           // tabs created and closed in the churn (TABS)
	rate     float64       // tabs opened a second (RATE)
	lifetime time.Duration // how long each tab's pod lives once Running (LIFETIME)
	idle     time.Duration // the quiet spell that measures the nodes' own traffic (IDLE)
	burst    int           // pods created at once to measure the scheduler (BURST)
	pool     int           // idle warm-pool pods (POOL)
	claimers int           // concurrent claimers of the pool (CLAIMERS)
	workers  int           // concurrent creators in the burst and pool (WORKERS)
}

func params(b *testing.B) scaleParams {
	p := scaleParams{nodes: 1000, tabs: 20000, rate: 40, lifetime: 30 * time.Second, idle: 30 * time.Second,
		burst: 2000, pool: 1000, claimers: 16, workers: 32}
	ints := map[string]*int{"NODES": &p.nodes, "TABS": &p.tabs, "BURST": &p.burst, "POOL": &p.pool, "CLAIMERS": &p.claimers, "WORKERS": &p.workers}
	for k, v := range ints {
		if s := os.Getenv("GLOVEBOX_SCALE_" + k); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				b.Fatalf("GLOVEBOX_SCALE_%s=%q: want a count", k, s)
			}
			*v = n
		}
	}
	if s := os.Getenv("GLOVEBOX_SCALE_RATE"); s != "" {
		r, err := strconv.ParseFloat(s, 64)
		if err != nil || r <= 0 {
			b.Fatalf("GLOVEBOX_SCALE_RATE=%q: want tabs a second", s)
		}
		p.rate = r
	}
	for k, v := range map[string]*time.Duration{"LIFETIME": &p.lifetime, "IDLE": &p.idle} {
		if s := os.Getenv("GLOVEBOX_SCALE_" + k); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				b.Fatalf("GLOVEBOX_SCALE_%s=%q: want a duration", k, s)
			}
			*v = d
		}
	}
	return p
}

const (
	scaleNS     = "glovebox"
	labelPool   = "glovebox.io/pool"
	labelClaim  = "glovebox.io/claimed-by"
	labelBench  = "bench.glovebox.io/phase"
	kwokAnnot   = "kwok.x-k8s.io/node"
	kwokStagesD = "stage"
)

// BenchmarkScale measures the control plane (a real etcd, kube-apiserver,
// kube-scheduler and kube-controller-manager) under Glovebox's per-tab
// load on nodes simulated by kwok: tabs opened at a steady rate, each a
// Secret and a pod of the Kubernetes runtime's shape (KubeTabObjects)
// that is deleted after its lifetime; then a burst of pods for the
// scheduler's throughput; then a warm pool claimed by concurrent
// optimistic updates. It runs once whatever b.N (-benchtime 1x), reports
// its figures with ReportMetric and prints a table; it fails only if a
// pool pod is claimed twice. make bench-scale runs it.
func BenchmarkScale(b *testing.B) {
	if err := Missing(); err != nil {
		testenv.Missing(b, "%v", err)
	}
	kwokBin := filepath.Join(kwokDir(), "bin", "kwok")
	if _, err := os.Stat(kwokBin); err != nil {
		testenv.Missing(b, "needs kwok (make kwok-bin builds it): %v", err)
	}
	p := params(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &report{params: p}

	c := Start(b)
	ctl := c.StartControllers(b)
	startKwok(b, c, kwokBin)
	c.Namespace(b, scaleNS)
	rc := rest.CopyConfig(c.Config)
	rc.QPS, rc.Burst = 5000, 10000 // the load generator is not the bottleneck it measures
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	procs := map[string]int{}
	for _, pr := range c.procs {
		procs[pr.name] = pr.cmd.Process.Pid
	}
	sampler := startSampler(procs)
	defer sampler.stop()

	start := time.Now()
	createNodes(ctx, b, cs, p)
	r.nodesReady = time.Since(start)

	tr := newTracker()
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(scaleNS))
	inf := f.Core().V1().Pods().Informer()
	inf.AddEventHandler(tr)
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		b.Fatal("pod informer did not sync")
	}

	kcfg := tabConfig(ctx, b, cs, tr)
	id, err := podrelay.NewIdentity(365 * 24 * time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	objects := func(name string) (*corev1.Pod, *corev1.Secret) {
		// One identity for every tab: each tab's Secret has the same
		// size as a fresh one, without the benchmark's CPU going into
		// key generation on the machine it measures.
		return isolate.KubeTabObjects(kcfg, name, name[len(name)-12:]+"0000", id, 3129)
	}

	// The nodes' own traffic (leases, status), with no tab open.
	s0, cpu0 := mustSnap(ctx, b, c), sampler.cpu()
	time.Sleep(p.idle)
	s1 := mustSnap(ctx, b, c)
	r.idleCPU = sampler.cpu().minus(cpu0)
	r.background = requestDelta(s0, s1)
	r.idleWindow = s1.at.Sub(s0.at)

	churn(ctx, b, c, cs, tr, sampler, objects, p, r)
	// A later phase's failure still shows what the earlier ones measured.
	defer func() {
		if b.Failed() {
			r.print(b)
		}
	}()
	burst(ctx, b, c, ctl, cs, tr, objects, p, r)
	pool(ctx, b, cs, tr, inf, objects, p, r)
	r.peak = sampler.peaks()

	r.print(b)
	r.metrics(b)
}

// startKwok runs kwok on the nodes annotated kwok.x-k8s.io/node=fake,
// with its node (initialize, heartbeat with a lease) and pod (ready,
// complete, delete) stages: pods become Running as soon as they are
// bound, and go once deleted, as on a kubelet with no image to pull.
func startKwok(b *testing.B, c *Cluster, bin string) {
	stages := filepath.Join(kwokDir(), kwokStagesD)
	// kwok plays pod stages and renews leases with 4 workers each by
	// default: at 40 tabs a second that, not the control plane, was the
	// bottleneck (pods a minute late to Running, leases renewed late).
	// A real cluster has a kubelet per node, so give kwok more.
	docs := []string{`apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  podPlayStageParallelism: 64
  nodePlayStageParallelism: 16
  nodeLeaseParallelism: 32`}
	for _, f := range []string{"node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
		"pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml"} {
		d, err := os.ReadFile(filepath.Join(stages, f))
		if err != nil {
			b.Fatalf("kwok stage: %v (make kwok-bin copies them)", err)
		}
		docs = append(docs, string(d))
	}
	cfg := filepath.Join(c.dir, "kwok.yaml")
	if err := os.WriteFile(cfg, []byte(strings.Join(docs, "\n---\n")), 0o600); err != nil {
		b.Fatal(err)
	}
	c.start(b, "kwok", bin, "--kubeconfig", c.Kubeconfig, "--config", cfg,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector", kwokAnnot+"=fake",
		"--node-lease-duration-seconds", "40", "--cidr", "10.0.0.0/8", "--server-address", "127.0.0.1:"+freePort(b))
}

// createNodes makes the simulated nodes, of a size a browser node might
// be (16 cores, 64 GiB, 110 pods), and waits until kwok has made them
// all Ready.
func createNodes(ctx context.Context, b *testing.B, cs kubernetes.Interface, p scaleParams) {
	err := parallel(ctx, p.workers, p.nodes, func(i int) error {
		name := fmt.Sprintf("kwok-node-%04d", i)
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{kwokAnnot: "fake"},
				Labels: map[string]string{"kubernetes.io/hostname": name, "type": "kwok"}},
			Status: corev1.NodeStatus{
				Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("16"), corev1.ResourceMemory: resource.MustParse("64Gi"), corev1.ResourcePods: resource.MustParse("110")},
				Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("16"), corev1.ResourceMemory: resource.MustParse("64Gi"), corev1.ResourcePods: resource.MustParse("110")},
			},
		}
		_, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		b.Fatalf("create nodes: %v", err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		l, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		ready := 0
		if err == nil {
			for _, n := range l.Items {
				for _, cd := range n.Status.Conditions {
					if cd.Type == corev1.NodeReady && cd.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
		}
		if ready >= p.nodes {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d nodes Ready after 10 minutes (%v)", ready, p.nodes, err)
		}
		time.Sleep(time.Second)
	}
}

// tabConfig is the Kubernetes runtime's default configuration with an
// owner: a replica pod made here, so the garbage collector sees the tabs'
// ownerReferences resolve as in a real deployment.
func tabConfig(ctx context.Context, b *testing.B, cs kubernetes.Interface, tr *tracker) isolate.KubernetesConfig {
	owner := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "glovebox-0", Namespace: scaleNS},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "glovebox", Image: "glovebox.test/glovebox:1"}}}}
	w := tr.expect(owner.Name)
	o, err := cs.CoreV1().Pods(scaleNS).Create(ctx, owner, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	select {
	case <-w.running:
	case <-time.After(2 * time.Minute):
		b.Fatal("the owner pod is not Running after 2 minutes: is kwok running?")
	}
	cfg := isolate.DefaultKubernetesConfig()
	cfg.Namespace, cfg.Image, cfg.OwnerName, cfg.OwnerUID = scaleNS, "glovebox.test/browser:1", o.Name, string(o.UID)
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	return cfg
}

// churn opens p.tabs tabs at p.rate a second, each as Glovebox does (its
// Secret, its pod, Running seen through the informer), and closes each
// after p.lifetime (the pod with no grace, then the Secret).
func churn(ctx context.Context, b *testing.B, c *Cluster, cs kubernetes.Interface, tr *tracker, sm *sampler,
	objects func(string) (*corev1.Pod, *corev1.Secret), p scaleParams, r *report) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failed   atomic.Int64
		live     atomic.Int64
		peakLive atomic.Int64
	)
	before := mustSnap(ctx, b, c)
	cpu0 := sm.cpu()
	start := time.Now()
	interval := time.Duration(float64(time.Second) / p.rate)
	for i := range p.tabs {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("glovebox-tab-%012x", i)
			pod, secret := objects(name)
			w := tr.expect(name)
			t0 := time.Now()
			if _, err := cs.CoreV1().Secrets(scaleNS).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
				failed.Add(1)
				return
			}
			t1 := time.Now()
			if _, err := cs.CoreV1().Pods(scaleNS).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				failed.Add(1)
				cs.CoreV1().Secrets(scaleNS).Delete(ctx, name, metav1.DeleteOptions{})
				return
			}
			created := time.Since(t1)
			n := live.Add(1)
			for {
				pk := peakLive.Load()
				if n <= pk || peakLive.CompareAndSwap(pk, n) {
					break
				}
			}
			ok := true
			select {
			case <-w.running:
			case <-time.After(2 * time.Minute):
				ok = false
				failed.Add(1)
			}
			toRunning := time.Since(t0)
			mu.Lock()
			r.podCreate = append(r.podCreate, created)
			if ok {
				r.toRunning = append(r.toRunning, toRunning)
				r.toBound = append(r.toBound, w.boundAt.Sub(t0))
			}
			mu.Unlock()
			if ok {
				time.Sleep(p.lifetime)
			}
			t2 := time.Now()
			cs.CoreV1().Pods(scaleNS).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
			cs.CoreV1().Secrets(scaleNS).Delete(ctx, name, metav1.DeleteOptions{})
			live.Add(-1)
			mu.Lock()
			r.closeTab = append(r.closeTab, time.Since(t2))
			mu.Unlock()
			tr.forget(name)
		}()
	}
	r.openWindow = time.Since(start)
	wg.Wait()
	after := mustSnap(ctx, b, c)
	r.churnWindow = after.at.Sub(before.at)
	r.churnRequests = requestDelta(before, after)
	r.p50 = quantile(0.5, before.buckets, after.buckets)
	r.p99 = quantile(0.99, before.buckets, after.buckets)
	r.writeP50 = quantile(0.5, before.writes, after.writes)
	r.writeP99 = quantile(0.99, before.writes, after.writes)
	r.churnCPU = sm.cpu().minus(cpu0)
	r.failed = int(failed.Load())
	r.peakLive = int(peakLive.Load())
	r.churnPeak = sm.peaks()
}

// burst creates p.burst pods as fast as p.workers creators can and
// measures how fast the scheduler binds them to the simulated nodes.
func burst(ctx context.Context, b *testing.B, c *Cluster, ctl *Controllers, cs kubernetes.Interface, tr *tracker,
	objects func(string) (*corev1.Pod, *corev1.Secret), p scaleParams, r *report) {
	if p.burst == 0 {
		return
	}
	schedBefore, err := scrape(ctx, ctl.SchedulerURL, c.token)
	if err != nil {
		b.Logf("scheduler metrics: %v", err)
	}
	names := make([]string, p.burst)
	waits := make([]*waiter, p.burst)
	start := time.Now()
	err = parallel(ctx, p.workers, p.burst, func(i int) error {
		names[i] = fmt.Sprintf("glovebox-burst-%07x", i)
		pod, _ := objects(names[i])
		pod.Labels[labelBench] = "burst"
		pod.Spec.Containers[1].Env = nil // no Secret for these
		waits[i] = tr.expect(names[i])
		_, err := cs.CoreV1().Pods(scaleNS).Create(ctx, pod, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		b.Fatalf("burst: %v", err)
	}
	r.burstCreate = time.Since(start)
	var first, last time.Time
	for _, w := range waits {
		select {
		case <-w.bound:
		case <-time.After(5 * time.Minute):
			b.Fatalf("burst: a pod not bound after 5 minutes")
		}
		if first.IsZero() || w.boundAt.Before(first) {
			first = w.boundAt
		}
		if w.boundAt.After(last) {
			last = w.boundAt
		}
	}
	r.burstBind = last.Sub(start)
	r.schedPerSec = float64(p.burst) / last.Sub(start).Seconds()
	if schedBefore != nil {
		if after, err := scrape(ctx, ctl.SchedulerURL, c.token); err == nil {
			want := map[string]string{"result": "scheduled"}
			r.schedAttempts = counter(parseMetrics(after), "scheduler_schedule_attempts_total", want) -
				counter(parseMetrics(schedBefore), "scheduler_schedule_attempts_total", want)
		}
	}
	// One DELETE a pod, as Glovebox closes tabs (a DeleteCollection of
	// thousands outlasts the API server's 60 s request timeout here).
	del := time.Now()
	if err := parallel(ctx, p.workers, p.burst, func(i int) error {
		err := cs.CoreV1().Pods(scaleNS).Delete(ctx, names[i], metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}); err != nil {
		b.Fatalf("burst: delete: %v", err)
	}
	r.burstDelete = time.Since(del)
	for _, n := range names {
		tr.forget(n)
	}
}

// pool makes p.pool idle pods labelled glovebox.io/pool=idle and has
// p.claimers claimers take them all: each picks an idle pod from its
// informer's cache at random and relabels it claimed with an Update that
// carries the cached resourceVersion, so a pod someone else took first
// fails with a conflict and the claimer tries another.
func pool(ctx context.Context, b *testing.B, cs kubernetes.Interface, tr *tracker, inf cache.SharedIndexInformer,
	objects func(string) (*corev1.Pod, *corev1.Secret), p scaleParams, r *report) {
	if p.pool == 0 {
		return
	}
	waits := make([]*waiter, p.pool)
	err := parallel(ctx, p.workers, p.pool, func(i int) error {
		name := fmt.Sprintf("glovebox-pool-%07x", i)
		pod, _ := objects(name)
		pod.Labels[labelPool] = "idle"
		pod.Spec.Containers[1].Env = nil
		waits[i] = tr.expect(name)
		_, err := cs.CoreV1().Pods(scaleNS).Create(ctx, pod, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		b.Fatalf("pool: %v", err)
	}
	for _, w := range waits {
		select {
		case <-w.running:
		case <-time.After(5 * time.Minute):
			b.Fatal("pool: a pod not Running after 5 minutes")
		}
	}
	// Until the cache has every pod Running: a claim must not race
	// kwok's status update.
	for {
		idle := 0
		for _, o := range inf.GetStore().List() {
			if pd := o.(*corev1.Pod); pd.Labels[labelPool] == "idle" && pd.Status.Phase == corev1.PodRunning {
				idle++
			}
		}
		if idle == p.pool {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	var (
		mu        sync.Mutex
		winner    = map[string]string{}
		twice     []string
		claimed   atomic.Int64
		conflicts atomic.Int64
		other     atomic.Int64
		wg        sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(5 * time.Minute)
	for k := range p.claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			me := fmt.Sprintf("claimer-%d", k)
			for claimed.Load() < int64(p.pool) && time.Now().Before(deadline) {
				var idle []*corev1.Pod
				for _, o := range inf.GetStore().List() {
					if pd := o.(*corev1.Pod); pd.Labels[labelPool] == "idle" {
						idle = append(idle, pd)
					}
				}
				if len(idle) == 0 {
					time.Sleep(5 * time.Millisecond) // the cache is behind the claims
					continue
				}
				cp := idle[rand.IntN(len(idle))].DeepCopy()
				cp.Labels[labelPool] = "claimed"
				cp.Labels[labelClaim] = me
				_, err := cs.CoreV1().Pods(scaleNS).Update(ctx, cp, metav1.UpdateOptions{})
				switch {
				case err == nil:
					claimed.Add(1)
					mu.Lock()
					if w, ok := winner[cp.Name]; ok {
						twice = append(twice, fmt.Sprintf("%s by %s and %s", cp.Name, w, me))
					}
					winner[cp.Name] = me
					mu.Unlock()
				case apierrors.IsConflict(err):
					conflicts.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	r.claimWindow = time.Since(start)
	r.claims, r.conflicts, r.claimErrors = int(claimed.Load()), int(conflicts.Load()), int(other.Load())
	if len(twice) > 0 {
		b.Fatalf("pool: claimed twice: %v", twice)
	}
	// The API server's word: every pool pod claimed once, by its winner.
	l, err := cs.CoreV1().Pods(scaleNS).List(ctx, metav1.ListOptions{LabelSelector: labelPool})
	if err != nil {
		b.Fatal(err)
	}
	for _, pd := range l.Items {
		if pd.Labels[labelPool] != "claimed" || pd.Labels[labelClaim] != winner[pd.Name] {
			b.Fatalf("pool: %s is %s by %q, but the claimers recorded %q", pd.Name, pd.Labels[labelPool], pd.Labels[labelClaim], winner[pd.Name])
		}
	}
	if r.claims != p.pool || len(l.Items) != p.pool {
		b.Fatalf("pool: %d claims of %d pods (%d listed) within 5 minutes", r.claims, p.pool, len(l.Items))
	}
}

func mustSnap(ctx context.Context, b *testing.B, c *Cluster) snapshot {
	m, err := scrape(ctx, c.Config.Host, c.token)
	if err != nil {
		b.Fatal(err)
	}
	return takeSnapshot(parseMetrics(m))
}

// parallel runs fn(0..n-1) on k goroutines and returns the first error.
func parallel(ctx context.Context, k, n int, fn func(int) error) error {
	var (
		next    atomic.Int64
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
	)
	for range max(1, k) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					errOnce.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// waiter is one pod's milestones as the informer saw them.
type waiter struct {
	bound, running     chan struct{}
	boundAt, runningAt time.Time
}

// tracker turns the pod informer's events into each pod's milestones, as
// Glovebox's own informer does for its tabs.
type tracker struct {
	mu sync.Mutex
	w  map[string]*waiter
}

func newTracker() *tracker { return &tracker{w: map[string]*waiter{}} }

func (t *tracker) expect(name string) *waiter {
	w := &waiter{bound: make(chan struct{}), running: make(chan struct{})}
	t.mu.Lock()
	t.w[name] = w
	t.mu.Unlock()
	return w
}

func (t *tracker) forget(name string) {
	t.mu.Lock()
	delete(t.w, name)
	t.mu.Unlock()
}

func (t *tracker) see(obj any) {
	pd, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.w[pd.Name]
	if w == nil {
		return
	}
	if pd.Spec.NodeName != "" && w.boundAt.IsZero() {
		w.boundAt = now
		close(w.bound)
	}
	if pd.Status.Phase == corev1.PodRunning && w.runningAt.IsZero() {
		if w.boundAt.IsZero() {
			w.boundAt = now
			close(w.bound)
		}
		w.runningAt = now
		close(w.running)
	}
}

func (t *tracker) OnAdd(obj any, _ bool) { t.see(obj) }
func (t *tracker) OnUpdate(_, obj any)   { t.see(obj) }
func (t *tracker) OnDelete(any)          {}
