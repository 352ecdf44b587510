package isolate

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// The annotations a replica publishes on its own pod for the others.
const (
	// AnnotationPeerKey is the SHA-256 of its peer certificate's public
	// key, hex: the only key the others accept from it.
	AnnotationPeerKey = "glovebox.io/peer-key"
	// AnnotationPeerAddr is its peer listener, host:port.
	AnnotationPeerAddr = "glovebox.io/peer-addr"
	// AnnotationMedia are its media addresses, comma-separated.
	AnnotationMedia = "glovebox.io/media-addrs"
)

// KubePeer is one replica as its pod says.
type KubePeer struct {
	Name  string
	Addr  string
	Key   [32]byte
	Media []netip.Addr
}

// KubePeers is the replicas' directory: the pods that cfg.PeerSelector
// selects in the namespace, each with what it published (its annotations)
// once it could be reached. The API server is the one authority: no
// replica trusts another except through what its pod says, and only
// subjects the replicas' Role allows can write it.
type KubePeers struct {
	self     string
	informer cache.SharedIndexInformer
	stop     context.CancelFunc
}

// PublishPeer is what a replica publishes of itself.
type PublishPeer struct {
	Key   [32]byte
	Addr  string
	Media []netip.Addr
}

// NewKubePeers publishes me on the replica's own pod (cfg.OwnerName, in
// the namespace) and watches the others' until ctx ends or Close.
func NewKubePeers(ctx context.Context, cfg KubernetesConfig, rc *rest.Config, me PublishPeer, log *slog.Logger) (*KubePeers, error) {
	if cfg.OwnerName == "" && cfg.OwnerUID == "" {
		cfg.OwnerName, cfg.OwnerUID = os.Getenv("POD_NAME"), os.Getenv("POD_UID")
	}
	if cfg.OwnerName == "" {
		return nil, fmt.Errorf("isolate kubernetes config: peers need the replica's pod name (owner_name or POD_NAME)")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKubernetes, err)
	}
	media := make([]string, len(me.Media))
	for i, m := range me.Media {
		media[i] = m.String()
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		AnnotationPeerKey: hex.EncodeToString(me.Key[:]), AnnotationPeerAddr: me.Addr, AnnotationMedia: strings.Join(media, ","),
	}}})
	if _, err := cs.CoreV1().Pods(cfg.Namespace).Patch(ctx, cfg.OwnerName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return nil, fmt.Errorf("%w: publish this replica on its pod %s/%s: %w", ErrKubernetes, cfg.Namespace, cfg.OwnerName, err)
	}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = cfg.PeerSelector }))
	inf := f.Core().V1().Pods().Informer()
	ictx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go inf.RunWithContext(ictx)
	sctx, scancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer scancel()
	if !cache.WaitForCacheSync(sctx.Done(), inf.HasSynced) {
		cancel()
		return nil, fmt.Errorf("%w: watch the replicas' pods (%s) in %s: not synced within %v", ErrKubernetes, cfg.PeerSelector, cfg.Namespace, cfg.StartTimeout)
	}
	if log != nil {
		log.Info("replica published for its peers", "component", "peers", "pod", cfg.OwnerName, "addr", me.Addr)
	}
	return &KubePeers{self: cfg.OwnerName, informer: inf, stop: cancel}, nil
}

// Self is this replica's pod name.
func (k *KubePeers) Self() string { return k.self }

// Live is every replica whose pod is running, not being deleted, and
// published itself.
func (k *KubePeers) Live() []KubePeer {
	var out []KubePeer
	for _, obj := range k.informer.GetStore().List() {
		if p, ok := obj.(*corev1.Pod); ok {
			if peer, ok := peerOf(p); ok {
				out = append(out, peer)
			}
		}
	}
	return out
}

// peerOf is the replica p is, if it is live and published a usable entry.
func peerOf(p *corev1.Pod) (KubePeer, bool) {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return KubePeer{}, false
	}
	a := p.Annotations
	key, err := hex.DecodeString(a[AnnotationPeerKey])
	if err != nil || len(key) != 32 {
		return KubePeer{}, false
	}
	host, port, err := net.SplitHostPort(a[AnnotationPeerAddr])
	if err != nil || net.ParseIP(host) == nil {
		return KubePeer{}, false
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return KubePeer{}, false
	}
	peer := KubePeer{Name: p.Name, Addr: a[AnnotationPeerAddr]}
	copy(peer.Key[:], key)
	for _, m := range strings.Split(a[AnnotationMedia], ",") {
		if ip, err := netip.ParseAddr(m); err == nil {
			peer.Media = append(peer.Media, ip.Unmap())
		}
	}
	return peer, true
}

// Close stops watching.
func (k *KubePeers) Close() { k.stop() }
