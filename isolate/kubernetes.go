package isolate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/glovebox/glovebox/isolate/podrelay"
)

// ErrKubernetes reports that the Kubernetes API server could not be reached
// or refused a call.
var ErrKubernetes = errors.New("isolate: kubernetes unavailable")

// Kubernetes is the runtime that runs each browser in a pod of its own,
// created for one tab and never reused (issue 14; see kubePod for the pod):
// Chromium as uid 1000 with no capabilities, a read-only root, Glovebox's
// seccomp profile and memory-backed emptyDirs, beside a relay (podrelay)
// that is the pod's only door, in a network namespace its init container
// has locked (podnet) before either starts. Each pod has a Secret with its
// relay's certificate and token, and both are owned by the replica's own
// pod, so Kubernetes removes them if the replica goes.
//
// The browser's DevTools is reached through a unix socket in DataDir (open
// to Glovebox's user only) that forwards each connection to the pod's relay;
// its requests leave through the relay for this replica's egress proxy,
// which sees them come from the pod's IP (Browser.Addr).
type Kubernetes struct {
	cfg        KubernetesConfig
	cs         kubernetes.Interface
	log        *slog.Logger
	egressPort int
	selector   labels.Selector // this replica's pods

	informer cache.SharedIndexInformer
	stopInf  context.CancelFunc

	mu      sync.Mutex
	watched map[string]*kubeBrowser // by pod name

	browsers browserSet[*kubeBrowser]
	base     context.Context
	cancel   context.CancelFunc
	starts   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// KubeClientConfig returns the REST configuration of cfg: its kubeconfig,
// or the in-cluster one.
func KubeClientConfig(cfg KubernetesConfig) (*rest.Config, error) {
	if cfg.Kubeconfig != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", cfg.Kubeconfig, err)
		}
		return rc, nil
	}
	rc, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster configuration (set kubeconfig outside a cluster): %w", err)
	}
	return rc, nil
}

// NewKubernetes returns the Kubernetes runtime, talking to the API server
// with rc. egressPort is the egress proxy's port on this replica, which
// the pods' locks let their relays reach; trustedCAs go into the browsers'
// policy ConfigMap. It removes the pods and Secrets a previous incarnation
// of this replica left (same owner name), and watches its pods from then on.
//
// The owner name is the replica's pod (POD_NAME) in a cluster; outside one
// (POD_NAME unset and no owner_name) it is "host-" and the host's name, so
// that a restart on the same host reaps what it left and nothing of
// another's, and the pods have no ownerReference.
func NewKubernetes(ctx context.Context, cfg KubernetesConfig, rc *rest.Config, egressPort int, trustedCAs [][]byte, log *slog.Logger) (_ *Kubernetes, retErr error) {
	cfg, err := cfg.withOwner(os.Getenv("POD_NAME"), os.Getenv("POD_UID"))
	if err != nil {
		return nil, err
	}
	if cfg.Egress == "" {
		cfg.Egress = net.JoinHostPort(os.Getenv("POD_IP"), strconv.Itoa(egressPort))
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.OwnerName == "" {
		host, _ := os.Hostname()
		cfg.OwnerName = hostOwner(host)
	}
	if host, port, err := net.SplitHostPort(cfg.Egress); err != nil || net.ParseIP(host) == nil || port != strconv.Itoa(egressPort) {
		return nil, fmt.Errorf("isolate kubernetes config: egress: %q: want this replica's pod IP and the egress port %d (POD_IP unset?)", cfg.Egress, egressPort)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("runtime", "kubernetes")
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKubernetes, err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	// Never all of the namespace's managed pods: only this owner's.
	sel := labels.SelectorFromSet(labels.Set{LabelManaged: "true", LabelOwner: cfg.OwnerName})
	k := &Kubernetes{cfg: cfg, cs: cs, log: log, egressPort: egressPort, selector: sel, watched: map[string]*kubeBrowser{}}
	k.base, k.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if retErr != nil {
			k.cancel()
		}
	}()
	if err := k.writePolicy(ctx, trustedCAs); err != nil {
		return nil, err
	}
	if err := k.Reap(ctx); err != nil {
		return nil, err
	}
	if err := k.watch(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// writePolicy creates or updates the browsers' policy ConfigMap.
func (k *Kubernetes) writePolicy(ctx context.Context, trustedCAs [][]byte) error {
	pj, err := policyJSON(trustedCAs)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: kubePolicyConfigMap, Namespace: k.cfg.Namespace, Labels: map[string]string{LabelManaged: "true"}},
		Data:       map[string]string{"glovebox.json": string(pj)},
	}
	api := k.cs.CoreV1().ConfigMaps(k.cfg.Namespace)
	_, err = api.Create(ctx, cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		var cur *corev1.ConfigMap
		if cur, err = api.Get(ctx, kubePolicyConfigMap, metav1.GetOptions{}); err == nil {
			cur.Data = cm.Data
			_, err = api.Update(ctx, cur, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("%w: browser policy ConfigMap %s/%s: %w", ErrKubernetes, k.cfg.Namespace, kubePolicyConfigMap, err)
	}
	return nil
}

// Reap deletes the pods and Secrets of this replica's (its owner name's)
// that no browser of this runtime uses: what a crashed incarnation left.
func (k *Kubernetes) Reap(ctx context.Context) error {
	opts := metav1.ListOptions{LabelSelector: k.selector.String()}
	pods, err := k.cs.CoreV1().Pods(k.cfg.Namespace).List(ctx, opts)
	if err != nil {
		return fmt.Errorf("%w: list pods: %w", ErrKubernetes, err)
	}
	secrets, err := k.cs.CoreV1().Secrets(k.cfg.Namespace).List(ctx, opts)
	if err != nil {
		return fmt.Errorf("%w: list secrets: %w", ErrKubernetes, err)
	}
	var errs []error
	for _, p := range pods.Items {
		if k.inUse(p.Name) {
			continue
		}
		k.log.Info("reap browser pod", "pod", p.Name, "tab", p.Labels[LabelTab])
		errs = append(errs, ignoreNotFound(k.cs.CoreV1().Pods(k.cfg.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})))
	}
	for _, s := range secrets.Items {
		if k.inUse(s.Name) {
			continue
		}
		errs = append(errs, ignoreNotFound(k.cs.CoreV1().Secrets(k.cfg.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{})))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: reap: %w", ErrKubernetes, err)
	}
	return nil
}

func (k *Kubernetes) inUse(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.watched[name]
	return ok
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// watch starts the informer of this replica's pods, which tells each
// browser its pod's changes.
func (k *Kubernetes) watch(ctx context.Context) error {
	f := informers.NewSharedInformerFactoryWithOptions(k.cs, 0, informers.WithNamespace(k.cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = k.selector.String() }))
	inf := f.Core().V1().Pods().Informer()
	deliver := func(obj any, gone bool) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj, gone = t.Obj, true
		}
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		k.mu.Lock()
		kb := k.watched[p.Name]
		k.mu.Unlock()
		if kb != nil {
			kb.update(p, gone)
		}
	}
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { deliver(obj, false) },
		UpdateFunc: func(_, obj any) { deliver(obj, false) },
		DeleteFunc: func(obj any) { deliver(obj, true) },
	})
	ictx, cancel := context.WithCancel(k.base)
	k.informer, k.stopInf = inf, cancel
	go inf.RunWithContext(ictx)
	sctx, scancel := context.WithTimeout(ctx, k.cfg.StartTimeout)
	defer scancel()
	if !cache.WaitForCacheSync(sctx.Done(), inf.HasSynced) {
		cancel()
		return fmt.Errorf("%w: watch pods in %s: not synced within %v", ErrKubernetes, k.cfg.Namespace, k.cfg.StartTimeout)
	}
	return nil
}

// Name is "kubernetes".
func (k *Kubernetes) Name() string { return "kubernetes" }

// Running is how many browsers run.
func (k *Kubernetes) Running() int { return k.browsers.running() }

// Health reports whether the API server answers.
func (k *Kubernetes) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	if _, err := k.cs.CoreV1().Pods(k.cfg.Namespace).List(ctx, metav1.ListOptions{Limit: 1, LabelSelector: k.selector.String()}); err != nil {
		return fmt.Errorf("%w: %w", ErrKubernetes, err)
	}
	return nil
}

// Close ends every browser (their pods deleted) and stops the watch.
func (k *Kubernetes) Close() error {
	k.closeOnce.Do(func() {
		bs := k.browsers.close()
		var errs []error
		for _, b := range bs {
			errs = append(errs, b.Close())
		}
		k.starts.Wait()
		k.stopInf()
		k.cancel()
		k.closeErr = errors.Join(errs...)
	})
	return k.closeErr
}

// Start makes a pod for spec and returns once its Chromium's DevTools
// answers through the relay, with the relay's egress set to this
// replica's egress proxy.
func (k *Kubernetes) Start(ctx context.Context, spec Spec) (_ *Browser, retErr error) {
	spec, err := spec.normalize()
	if err != nil {
		return nil, err
	}
	if k.browsers.isClosed() {
		return nil, ErrClosed
	}
	k.starts.Add(1)
	defer k.starts.Done()
	id, err := podrelay.NewIdentity(365 * 24 * time.Hour)
	if err != nil {
		return nil, err
	}
	name := newPodName()
	p := kubePod{name: name, cfg: k.cfg, spec: spec, id: id, egressPort: k.egressPort}
	kb := k.newKubeBrowser(name, spec)
	b := kb.b
	if !k.track(kb) {
		return nil, ErrClosed
	}
	defer func() {
		if retErr != nil {
			b.Close()
		}
	}()

	// The start ends with the browser too (kb.ctx, from k.base): a Close
	// under way cuts its API calls short.
	ctx, cancel := context.WithTimeout(ctx, k.cfg.StartTimeout)
	defer cancel()
	defer context.AfterFunc(kb.ctx, cancel)()
	start := time.Now()
	if err := kb.create(&kb.madeSecret, func() error {
		_, err := k.cs.CoreV1().Secrets(k.cfg.Namespace).Create(ctx, p.secret(), metav1.CreateOptions{})
		return err
	}); err != nil {
		return nil, fmt.Errorf("%w: create secret %s: %w", ErrKubernetes, name, err)
	}
	if err := kb.create(&kb.madePod, func() error {
		_, err := k.cs.CoreV1().Pods(k.cfg.Namespace).Create(ctx, p.pod(), metav1.CreateOptions{})
		return err
	}); err != nil {
		return nil, fmt.Errorf("%w: create pod %s: %w", ErrKubernetes, name, err)
	}
	pod, err := kb.waitRunning(ctx)
	if err != nil {
		return nil, err
	}
	client := podrelay.Client{Addr: net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(kubeRelayPort)), CertPEM: id.CertPEM, Token: id.Token}
	if err := k.attach(ctx, kb, pod, client); err != nil {
		return nil, err
	}
	kb.log.Info("browser started", "node", b.Node, "ip", pod.Status.PodIP, "ms", time.Since(start).Milliseconds())
	return b, nil
}

// newPodName is a browser pod's name, and its Secret's.
func newPodName() string {
	var rb [6]byte
	rand.Read(rb[:])
	return "glovebox-tab-" + hex.EncodeToString(rb[:])
}

// newKubeBrowser is the state of the pod name for a tab of spec.
func (k *Kubernetes) newKubeBrowser(name string, spec Spec) *kubeBrowser {
	kb := &kubeBrowser{k: k, name: name, dir: filepath.Join(k.cfg.DataDir, name), log: k.log.With("pod", name, "tab", spec.TabID),
		changed: make(chan struct{}, 1)}
	kb.ctx, kb.cancel = context.WithCancel(k.base)
	kb.b = newBrowser(name, k.Name(), func() error { return kb.stop() })
	return kb
}

// track makes kb one of the runtime's browsers, told of its pod's
// changes; false once the runtime is closed.
func (k *Kubernetes) track(kb *kubeBrowser) bool {
	if !k.browsers.add(kb.b, kb) {
		return false
	}
	k.mu.Lock()
	k.watched[kb.name] = kb
	k.mu.Unlock()
	return true
}

// attach makes kb's running pod this replica's browser: the relay's
// egress set to this replica's egress proxy, DevTools through it.
func (k *Kubernetes) attach(ctx context.Context, kb *kubeBrowser, pod *corev1.Pod, client podrelay.Client) error {
	kb.b.Addr = net.ParseIP(pod.Status.PodIP)
	kb.relay = client
	// The relay's container has started; it listens a moment later.
	if err := retry(ctx, func() error { return kb.relay.SetEgress(ctx, k.cfg.Egress) }); err != nil {
		return fmt.Errorf("start pod %s: set its egress: %w", kb.name, err)
	}
	if err := kb.forward(); err != nil {
		return err
	}
	path, err := kb.waitDevTools(ctx)
	if err != nil {
		return err
	}
	kb.b.DevToolsURL = "ws://localhost" + path
	kb.b.DevToolsSocket = kb.socket()
	kb.b.Node = pod.Spec.NodeName
	return nil
}

// retry calls f every 50 ms until it succeeds or ctx ends.
func retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kubeBrowser is the runtime's state of one pod.
type kubeBrowser struct {
	k    *Kubernetes
	b    *Browser
	name string
	dir  string
	log  *slog.Logger
	// ctx ends with the browser: its DevTools connections are cut.
	ctx    context.Context
	cancel context.CancelFunc

	relay podrelay.Client
	fwdWG sync.WaitGroup
	// creating counts the Creates under way, which stop waits for.
	creating sync.WaitGroup

	mu sync.Mutex
	// madeSecret and madePod: a Create of the Secret or the pod was
	// sent, and its name is not another's (it did not already exist),
	// so stop deletes it, even if the Create failed: the API server may
	// have stored it anyway.
	madeSecret, madePod bool
	ln                  net.Listener
	stopped             bool // no Create or listener after stop
	pod                 *corev1.Pod
	gone                bool
	changed             chan struct{}
}

// create calls f, the Create of the Secret or the pod, and records it in
// made, unless stop has begun.
func (kb *kubeBrowser) create(made *bool, f func() error) error {
	kb.mu.Lock()
	if kb.stopped {
		kb.mu.Unlock()
		return ErrClosed
	}
	kb.creating.Add(1)
	kb.mu.Unlock()
	defer kb.creating.Done()
	err := f()
	kb.mu.Lock()
	*made = !apierrors.IsAlreadyExists(err)
	kb.mu.Unlock()
	return err
}

// update is the informer telling of the pod.
func (kb *kubeBrowser) update(p *corev1.Pod, gone bool) {
	kb.mu.Lock()
	kb.pod, kb.gone = p, kb.gone || gone
	ended := kb.gone || p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded || p.DeletionTimestamp != nil
	kb.mu.Unlock()
	select {
	case kb.changed <- struct{}{}:
	default:
	}
	if ended {
		kb.b.exited()
	} else if p.Status.Phase == corev1.PodRunning {
		for _, st := range p.Status.ContainerStatuses {
			if st.State.Terminated != nil {
				kb.b.exited() // Chromium or its relay ended: the pod is no use
			}
		}
	}
}

// waitRunning waits until every container of the pod runs.
func (kb *kubeBrowser) waitRunning(ctx context.Context) (*corev1.Pod, error) {
	for {
		kb.mu.Lock()
		p := kb.pod
		kb.mu.Unlock()
		if p != nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && allRunning(p) {
			return p, nil
		}
		select {
		case <-kb.changed:
		case <-kb.b.Done():
			return nil, fmt.Errorf("start pod %s: it ended during start: %s", kb.name, podSummary(p))
		case <-ctx.Done():
			return nil, fmt.Errorf("start pod %s: not running: %w: %s", kb.name, ctx.Err(), podSummary(p))
		}
	}
}

func allRunning(p *corev1.Pod) bool {
	if len(p.Status.ContainerStatuses) < len(p.Spec.Containers) {
		return false
	}
	for _, st := range p.Status.ContainerStatuses {
		if st.State.Running == nil {
			return false
		}
	}
	return true
}

// podSummary says where a pod stands, for errors.
func podSummary(p *corev1.Pod) string {
	if p == nil {
		return "no status yet"
	}
	s := "phase " + string(p.Status.Phase)
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			s += "; " + string(c.Type) + ": " + c.Message
		}
	}
	for _, st := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		switch {
		case st.State.Waiting != nil && st.State.Waiting.Reason != "":
			s += fmt.Sprintf("; %s waiting: %s %s", st.Name, st.State.Waiting.Reason, st.State.Waiting.Message)
		case st.State.Terminated != nil:
			s += fmt.Sprintf("; %s exited %d: %s %s", st.Name, st.State.Terminated.ExitCode, st.State.Terminated.Reason, st.State.Terminated.Message)
		}
	}
	return s
}

func (kb *kubeBrowser) socket() string { return filepath.Join(kb.dir, "devtools.sock") }

// forward opens the unix socket whose connections go to the pod's
// DevTools through its relay.
func (kb *kubeBrowser) forward() error {
	if err := os.MkdirAll(kb.dir, 0o700); err != nil {
		return fmt.Errorf("start pod %s: %w", kb.name, err)
	}
	ln, err := net.Listen("unix", kb.socket())
	if err != nil {
		return fmt.Errorf("start pod %s: devtools socket: %w", kb.name, err)
	}
	kb.mu.Lock()
	defer kb.mu.Unlock()
	if kb.stopped {
		ln.Close()
		return ErrClosed
	}
	kb.ln = ln
	kb.fwdWG.Add(1)
	go func() {
		defer kb.fwdWG.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			kb.fwdWG.Add(1)
			go func() {
				defer kb.fwdWG.Done()
				defer c.Close()
				ctx, cancel := context.WithTimeout(kb.ctx, 10*time.Second)
				up, err := kb.relay.DialDevTools(ctx)
				cancel()
				if err != nil {
					kb.log.Warn("devtools through the relay", "err", err)
					return
				}
				defer up.Close()
				stop := context.AfterFunc(kb.ctx, func() { c.Close(); up.Close() })
				defer stop()
				done := make(chan struct{})
				go func() {
					defer close(done)
					io.Copy(up, c)
					if cw, ok := up.(interface{ CloseWrite() error }); ok {
						cw.CloseWrite()
					}
				}()
				io.Copy(c, up)
				c.(*net.UnixConn).CloseWrite()
				<-done
			}()
		}
	}()
	return nil
}

// waitDevTools polls /json/version through the socket until DevTools
// answers.
func (kb *kubeBrowser) waitDevTools(ctx context.Context) (string, error) {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", kb.socket())
	}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	for {
		if path, ok := devtoolsPath(ctx, hc, "http://localhost/json/version"); ok {
			return path, nil
		}
		select {
		case <-time.After(25 * time.Millisecond):
		case <-kb.b.Done():
			kb.mu.Lock()
			p := kb.pod
			kb.mu.Unlock()
			return "", fmt.Errorf("start chromium in pod %s: it ended during start: %s", kb.name, podSummary(p))
		case <-ctx.Done():
			return "", fmt.Errorf("start chromium in pod %s: DevTools did not answer: %w", kb.name, ctx.Err())
		}
	}
}

// stop deletes the pod and its Secret and closes the socket.
func (kb *kubeBrowser) stop() error {
	k := kb.k
	defer func() {
		k.browsers.remove(kb.b)
		k.mu.Lock()
		delete(k.watched, kb.name)
		k.mu.Unlock()
	}()
	kb.cancel() // ends a start under way, its Creates among them
	kb.mu.Lock()
	kb.stopped = true
	kb.mu.Unlock()
	kb.creating.Wait()
	kb.mu.Lock()
	madePod, madeSecret, ln := kb.madePod, kb.madeSecret, kb.ln
	kb.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(k.base), 30*time.Second)
	defer cancel()
	var errs []error
	if madePod {
		errs = append(errs, ignoreNotFound(k.cs.CoreV1().Pods(k.cfg.Namespace).Delete(ctx, kb.name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})))
	}
	if madeSecret {
		errs = append(errs, ignoreNotFound(k.cs.CoreV1().Secrets(k.cfg.Namespace).Delete(ctx, kb.name, metav1.DeleteOptions{})))
	}
	kb.b.exited()
	kb.fwdWG.Wait()
	os.RemoveAll(kb.dir)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: remove pod %s: %w", ErrKubernetes, kb.name, err)
	}
	kb.log.Info("browser closed")
	return nil
}
