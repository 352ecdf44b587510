package isolate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/glovebox/glovebox/isolate/podrelay"
)

// LabelPool marks a pod of the shared warm pool: PoolIdle until a replica
// claims it, PoolClaimed after.
const (
	LabelPool   = "glovebox.pool"
	PoolIdle    = "idle"
	PoolClaimed = "claimed"
)

// KubePool is the warm pool the replicas of a Deployment share: browser
// pods started ahead, labelled idle, their relays told no egress (their
// browsers reach nothing). Any replica claims any idle pod with one
// optimistic update of the pod (its resourceVersion: two replicas can
// never both succeed), which relabels it, makes the claimer its owner
// (label and ownerReference) and names the tab; the claimer then sets the
// relay's egress to its own. Each replica keeps Size idle pods of its own
// making, so the pool refills whoever claims. Idle pods have
// isolate.kubernetes.pool_priority_class, lower than the tabs', so that
// under pressure the pool yields first.
type KubePool struct {
	k   *Kubernetes
	cfg PoolConfig
	log *slog.Logger

	idle cache.SharedIndexInformer // every replica's idle pods
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu         sync.Mutex
	starting   int
	closed     bool
	stats      PoolStats
	failStreak int
	lastErr    error
}

// NewKubePool starts the shared pool on k, and fills it.
func NewKubePool(ctx context.Context, k *Kubernetes, cfg PoolConfig, log *slog.Logger) (*KubePool, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sel := labels.SelectorFromSet(labels.Set{LabelManaged: "true", LabelPool: PoolIdle}).String()
	f := informers.NewSharedInformerFactoryWithOptions(k.cs, 0, informers.WithNamespace(k.cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	p := &KubePool{k: k, cfg: cfg, log: log.With("component", "pool", "runtime", "kubernetes"), idle: f.Core().V1().Pods().Informer()}
	p.ctx, p.stop = context.WithCancel(k.base)
	// A pod that leaves the pool (claimed, gone) may be this replica's to
	// replace.
	p.idle.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(any) { p.fill() }})
	go p.idle.RunWithContext(p.ctx)
	sctx, cancel := context.WithTimeout(ctx, k.cfg.StartTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), p.idle.HasSynced) {
		p.stop()
		return nil, fmt.Errorf("%w: watch the warm pool's pods in %s: not synced within %v", ErrKubernetes, k.cfg.Namespace, k.cfg.StartTimeout)
	}
	p.fill()
	return p, nil
}

// Name is the runtime's name.
func (p *KubePool) Name() string { return p.k.Name() }

// Holds is false: an idle pod's relay has no egress, so its browser never
// reaches the egress proxy for the pool to vouch for.
func (p *KubePool) Holds(string) bool { return false }

// Start claims an idle pod of any replica's for spec, or starts a cold one
// when there is none (or none can be had).
func (p *KubePool) Start(ctx context.Context, spec Spec) (*Browser, error) {
	t0 := time.Now()
	spec, err := spec.normalize()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	defer p.fill()
	for _, pod := range p.candidates() {
		b, err := p.claim(ctx, pod, spec)
		if errors.Is(err, errTaken) {
			p.count(func(s *PoolStats) { s.Conflicts++ })
			continue
		}
		if err != nil {
			p.log.Warn("claimed warm pod unusable; trying another", "pod", pod.Name, "err", err)
			p.count(func(s *PoolStats) { s.Discards++ })
			continue
		}
		p.count(func(s *PoolStats) { s.Claims++ })
		p.log.Info("warm pod claimed", "tab", spec.TabID, "pod", pod.Name, "made_by", pod.Labels[LabelOwner], "wait", time.Since(t0))
		return b, nil
	}
	p.count(func(s *PoolStats) { s.Misses++ })
	p.log.Info("no warm pod ready: starting a cold one", "tab", spec.TabID)
	return p.k.Start(ctx, spec)
}

// errTaken is a claim another replica won.
var errTaken = errors.New("claimed by another replica")

// candidates are the idle pods ready to claim, oldest first: those whose
// lock lets their relay reach this replica's egress port (the replicas of
// one Deployment share it; any other replica's pods are not for this one).
func (p *KubePool) candidates() []*corev1.Pod {
	var out []*corev1.Pod
	for _, obj := range p.idle.GetStore().List() {
		if pod, ok := obj.(*corev1.Pod); ok && pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning &&
			pod.Status.PodIP != "" && allRunning(pod) && lockedEgressPort(pod) == p.k.egressPort {
			out = append(out, pod)
		}
	}
	slices.SortFunc(out, func(a, b *corev1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	return out
}

// claim takes pod for spec: the optimistic update first (errTaken if
// another replica's came first), then the pod's relay identity from its
// Secret, its egress set to this replica's, and DevTools through it.
func (p *KubePool) claim(ctx context.Context, pod *corev1.Pod, spec Spec) (_ *Browser, retErr error) {
	k := p.k
	// One merge patch with the pod's resourceVersion: it fails with a
	// conflict if any other write (another replica's claim) came first.
	owner := k.cfg.OwnerName
	meta := map[string]any{
		"resourceVersion": pod.ResourceVersion,
		"labels":          map[string]any{LabelPool: PoolClaimed, LabelTab: spec.TabID, LabelOwner: owner},
		"ownerReferences": kubePod{cfg: k.cfg}.owner(),
	}
	if owner == "" {
		meta["labels"].(map[string]any)[LabelOwner] = nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return nil, err
	}
	kb := k.newKubeBrowser(pod.Name, spec)
	if !k.track(kb) {
		return nil, ErrClosed
	}
	claimed, err := k.cs.CoreV1().Pods(k.cfg.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		kb.b.exited()
		k.browsers.remove(kb.b)
		k.mu.Lock()
		delete(k.watched, pod.Name)
		k.mu.Unlock()
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil, errTaken
		}
		return nil, fmt.Errorf("%w: claim pod %s: %w", ErrKubernetes, pod.Name, err)
	}
	// Ours from here: whatever fails, closing it deletes the pod and its
	// Secret.
	kb.mu.Lock()
	kb.madePod, kb.madeSecret = true, true
	kb.mu.Unlock()
	defer func() {
		if retErr != nil {
			kb.b.Close()
		}
	}()
	kb.update(claimed, false)
	sec, err := k.cs.CoreV1().Secrets(k.cfg.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: the claimed pod's Secret %s: %w", ErrKubernetes, pod.Name, err)
	}
	client := podrelay.Client{Addr: net.JoinHostPort(claimed.Status.PodIP, strconv.Itoa(kubeRelayPort)),
		CertPEM: sec.Data[secretCert], Token: string(sec.Data[secretToken])}
	ctx, cancel := context.WithTimeout(ctx, k.cfg.StartTimeout)
	defer cancel()
	if err := k.attach(ctx, kb, claimed, client); err != nil {
		return nil, err
	}
	kb.b.Warm = true
	return kb.b, nil
}

// fill starts idle pods until this replica's own idle and starting ones
// reach Size.
func (p *KubePool) fill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	mine := 0
	for _, obj := range p.idle.GetStore().List() {
		if pod, ok := obj.(*corev1.Pod); ok && pod.DeletionTimestamp == nil && pod.Labels[LabelOwner] == p.k.cfg.OwnerName {
			mine++
		}
	}
	for !p.closed && mine+p.starting < p.cfg.Size {
		p.starting++
		mine++
		p.wg.Add(1)
		go p.startOne()
	}
}

// startOne makes one idle pod and waits until it runs.
func (p *KubePool) startOne() {
	defer p.wg.Done()
	err := p.k.startIdle(p.ctx, Spec{TabID: "pool", Scale: p.cfg.Scale})
	p.mu.Lock()
	p.starting--
	closed := p.closed
	if err == nil {
		p.failStreak, p.lastErr = 0, nil
		p.mu.Unlock()
		// A claim while this one started saw it twice (starting, and in
		// the store): count again.
		p.fill()
		return
	}
	p.stats.Failures++
	if !closed && !errors.Is(err, context.Canceled) {
		p.failStreak++
		p.lastErr = err
	}
	p.mu.Unlock()
	if closed || errors.Is(err, context.Canceled) {
		return
	}
	p.log.Warn("warm pod failed to start", "err", err, "retry_in", p.cfg.RetryDelay)
	select {
	case <-time.After(p.cfg.RetryDelay):
		p.fill()
	case <-p.ctx.Done():
	}
}

func (p *KubePool) count(f func(*PoolStats)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.stats)
}

// Stats are the pool's counters; Ready is every replica's idle pods ready
// to claim.
func (p *KubePool) Stats() PoolStats {
	p.mu.Lock()
	s := p.stats
	s.Starting = p.starting
	p.mu.Unlock()
	s.Ready = len(p.candidates())
	return s
}

// Health fails after three failed starts in a row, like the local pool's.
func (p *KubePool) Health() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failStreak >= 3 {
		return fmt.Errorf("warm pool: %d starts failed in a row: %w", p.failStreak, p.lastErr)
	}
	return nil
}

// Close stops filling and deletes this replica's idle pods (claimed ones
// are their tabs'; Kubernetes would remove the rest with the replica).
func (p *KubePool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.stop()
	p.wg.Wait()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.k.base), 30*time.Second)
	defer cancel()
	return p.k.deleteIdle(ctx)
}

// startIdle makes an idle pod of the pool and waits until it runs: no
// tab, no egress, this replica its maker until another claims it.
func (k *Kubernetes) startIdle(ctx context.Context, spec Spec) error {
	spec, err := spec.normalize()
	if err != nil {
		return err
	}
	id, err := podrelay.NewIdentity(365 * 24 * time.Hour)
	if err != nil {
		return err
	}
	name := newPodName()
	p := kubePod{name: name, cfg: k.cfg, spec: spec, id: id, egressPort: k.egressPort, idle: true}
	ctx, cancel := context.WithTimeout(ctx, k.cfg.StartTimeout)
	defer cancel()
	if _, err := k.cs.CoreV1().Secrets(k.cfg.Namespace).Create(ctx, p.secret(), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("%w: create secret %s: %w", ErrKubernetes, name, err)
	}
	if _, err := k.cs.CoreV1().Pods(k.cfg.Namespace).Create(ctx, p.pod(), metav1.CreateOptions{}); err != nil {
		k.cs.CoreV1().Secrets(k.cfg.Namespace).Delete(context.WithoutCancel(ctx), name, metav1.DeleteOptions{})
		k.cs.CoreV1().Pods(k.cfg.Namespace).Delete(context.WithoutCancel(ctx), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
		return fmt.Errorf("%w: create pod %s: %w", ErrKubernetes, name, err)
	}
	// Ready when it runs; one that never does is removed.
	for {
		pod, err := k.cs.CoreV1().Pods(k.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil && pod.Status.Phase == corev1.PodRunning && allRunning(pod) {
			return nil
		}
		if err == nil && pod.Labels[LabelPool] != PoolIdle {
			return nil // claimed already
		}
		select {
		case <-ctx.Done():
			dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer dcancel()
			k.deleteIdlePod(dctx, name)
			return fmt.Errorf("warm pod %s: not running: %w: %s", name, ctx.Err(), podSummary(pod))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// deleteIdle deletes this replica's idle pods and their Secrets.
func (k *Kubernetes) deleteIdle(ctx context.Context) error {
	sel := labels.SelectorFromSet(labels.Set{LabelManaged: "true", LabelPool: PoolIdle, LabelOwner: k.cfg.OwnerName}).String()
	pods, err := k.cs.CoreV1().Pods(k.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return fmt.Errorf("%w: list idle pods: %w", ErrKubernetes, err)
	}
	var errs []error
	for _, pod := range pods.Items {
		errs = append(errs, k.deleteIdlePod(ctx, pod.Name))
	}
	return errors.Join(errs...)
}

// deleteIdlePod deletes an idle pod, unless it was claimed meanwhile (the
// delete's precondition is the label, checked by a fresh read), and its
// Secret.
func (k *Kubernetes) deleteIdlePod(ctx context.Context, name string) error {
	pod, err := k.cs.CoreV1().Pods(k.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return ignoreNotFound(err)
	}
	if pod.Labels[LabelPool] != PoolIdle {
		return nil
	}
	rv := pod.ResourceVersion
	err = k.cs.CoreV1().Pods(k.cfg.Namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0)),
		Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
	if apierrors.IsConflict(err) {
		return nil // claimed in between: its claimer's now
	}
	return errors.Join(ignoreNotFound(err), ignoreNotFound(k.cs.CoreV1().Secrets(k.cfg.Namespace).Delete(ctx, name, metav1.DeleteOptions{})))
}

// lockedEgressPort is the egress port a browser pod's lock lets its relay
// reach (its init container's --egress-port), or 0.
func lockedEgressPort(pod *corev1.Pod) int {
	for _, c := range pod.Spec.InitContainers {
		if i := slices.Index(c.Command, "--egress-port"); c.Name == "netlock" && i >= 0 && i+1 < len(c.Command) {
			n, _ := strconv.Atoi(c.Command[i+1])
			return n
		}
	}
	return 0
}
