package isolate

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
)

// KubernetesConfig configures the Kubernetes runtime, which runs each
// browser in a pod of its own (see Kubernetes).
type KubernetesConfig struct {
	// Kubeconfig is the path of a kubeconfig file; empty means the
	// in-cluster configuration (the replica's ServiceAccount).
	Kubeconfig string `mapstructure:"kubeconfig"`
	// Namespace is where the browser pods, their Secrets and the policy
	// ConfigMap live. The replica's Role must allow pods, secrets and
	// configmaps there, and nothing else is needed.
	Namespace string `mapstructure:"namespace"`
	// Image is the browser pods' image (deploy/Containerfile): Chromium
	// and the glovebox binary, which runs the pod's relay and its network
	// lock.
	Image string `mapstructure:"image"`
	// ImagePullPolicy is the pods' pull policy: Always, IfNotPresent or
	// Never.
	ImagePullPolicy string `mapstructure:"image_pull_policy"`
	// Chromium and Glovebox are the two programs' paths in the image.
	Chromium string `mapstructure:"chromium"`
	Glovebox string `mapstructure:"glovebox"`
	// Flags are extra Chromium flags, as in the other runtimes; those that
	// would take the browser's requests away from the egress proxy are
	// refused, as in the containerd runtime.
	Flags []string `mapstructure:"flags"`
	// SeccompProfile is the browser container's Localhost seccomp
	// profile, relative to the kubelet's seccomp directory
	// (/var/lib/kubelet/seccomp): the file `glovebox seccomp-profile`
	// writes, installed on every node.
	SeccompProfile string `mapstructure:"seccomp_profile"`
	// CPURequest, CPULimit, MemoryRequest and MemoryLimit are the browser
	// container's resources, in Kubernetes quantities ("500m", "1Gi").
	CPURequest    string `mapstructure:"cpu_request"`
	CPULimit      string `mapstructure:"cpu_limit"`
	MemoryRequest string `mapstructure:"memory_request"`
	MemoryLimit   string `mapstructure:"memory_limit"`
	// TmpMB, ShmMB and HomeMB are the sizes of the memory-backed
	// emptyDirs at /tmp, /dev/shm and the browser's home (its profile).
	TmpMB  int `mapstructure:"tmp_mb"`
	ShmMB  int `mapstructure:"shm_mb"`
	HomeMB int `mapstructure:"home_mb"`
	// PriorityClass is the pods' PriorityClass (empty: the cluster's
	// default).
	PriorityClass string `mapstructure:"priority_class"`
	// PoolPriorityClass is the shared warm pool's idle pods' PriorityClass
	// (empty: PriorityClass): lower than the tabs', so that under pressure
	// the scheduler places pending tabs before the pool's refills. A pod's
	// priority is fixed at its creation: a claimed pod keeps the pool's
	// (deploy/kubernetes/priorityclass.yaml says why neither preempts).
	PoolPriorityClass string `mapstructure:"pool_priority_class"`
	// StartTimeout bounds a start: the pod scheduled, its images there,
	// the lock in place, Chromium's DevTools answering.
	StartTimeout time.Duration `mapstructure:"start_timeout"`
	// OwnerName and OwnerUID name the replica's own pod, which owns every
	// browser pod it makes (an ownerReference: Kubernetes removes them if
	// the replica's pod goes), and whose leftovers alone the reaper
	// removes. Empty: from the environment, POD_NAME and POD_UID (the
	// Deployment sets them with the downward API); leave them so in a
	// cluster, where every replica reads the same configuration (an
	// owner_name other than POD_NAME is refused). All empty outside a
	// cluster: the owner is "host-" and the host's name, the pods have no
	// ownerReference, and the reaper at the next start on this host
	// removes what is left.
	OwnerName string `mapstructure:"owner_name"`
	OwnerUID  string `mapstructure:"owner_uid"`
	// Egress is this replica's egress proxy as the pods reach it,
	// host:port; the host defaults to POD_IP, the port to egress.port.
	Egress string `mapstructure:"egress"`
	// PeerPort is the port on which the replicas forward each other the
	// requests about tabs they do not hold (mutual TLS, each replica
	// pinned to the key it publishes on its own pod); 0 turns forwarding
	// off. It is on only for a replica in a cluster (owner_name set).
	PeerPort int `mapstructure:"peer_port"`
	// PeerSelector is the label selector of the replicas' pods (the
	// Deployment's), in the namespace.
	PeerSelector string `mapstructure:"peer_selector"`
	// DataDir holds the local ends of the pods' DevTools (unix sockets,
	// open to Glovebox's user only).
	DataDir string `mapstructure:"data_dir"`
}

// The pods' fixed numbers.
const (
	// kubeBrowserUID is the browser's user, kubeRelayUID the relay's.
	kubeBrowserUID = 1000
	kubeRelayUID   = 1001
	// kubeRelayPort is the relay's TLS port on the pod network,
	// kubeProxyPort its loopback port for Chromium's proxy.
	kubeRelayPort = 9443
	kubeProxyPort = 3128
)

// DefaultKubernetesConfig returns the Kubernetes runtime's defaults.
func DefaultKubernetesConfig() KubernetesConfig {
	return KubernetesConfig{
		Namespace:       "glovebox",
		ImagePullPolicy: "IfNotPresent",
		Chromium:        "/usr/lib/chromium/chromium",
		Glovebox:        "/usr/local/bin/glovebox",
		SeccompProfile:  "glovebox/chromium.json",
		CPURequest:      "100m",
		CPULimit:        "1",
		MemoryRequest:   "256Mi",
		MemoryLimit:     "1Gi",
		TmpMB:           256,
		ShmMB:           256,
		HomeMB:          512,
		StartTimeout:    60 * time.Second,
		DataDir:         "/var/lib/glovebox/kubernetes",
		PeerPort:        9444,
		PeerSelector:    "app.kubernetes.io/name=glovebox",
	}
}

// withOwner is c with the replica's pod, podName and podUID (POD_NAME and
// POD_UID), as its owner when it names none. It refuses another owner name
// than the pod's: the configuration is the same for every replica, so each
// would take the others' browsers for its own leftovers.
func (c KubernetesConfig) withOwner(podName, podUID string) (KubernetesConfig, error) {
	if podName != "" && c.OwnerName != "" && c.OwnerName != podName {
		return c, fmt.Errorf("isolate kubernetes config: owner_name: %q is not this replica's pod %q (POD_NAME): "+
			"every replica would reap the others' browsers; leave owner_name and owner_uid unset in a cluster", c.OwnerName, podName)
	}
	if c.OwnerName == "" && c.OwnerUID == "" {
		c.OwnerName, c.OwnerUID = podName, podUID
	}
	return c, nil
}

// hostOwner is the owner name of a runtime outside a cluster on the host
// named host: "host-" and the name, made a valid label value (letters,
// digits, "-", "_" and "." only, 63 at most, a letter or digit last).
func hostOwner(host string) string {
	b := []byte("host-" + host)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '-'
		}
	}
	return strings.TrimRight(string(b[:min(len(b), 63)]), "-_.")
}

// dnsLabel is a Kubernetes name such as a namespace's.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Validate reports every setting that is wrong, naming its key.
func (c KubernetesConfig) Validate() error {
	var errs []error
	if !dnsLabel.MatchString(c.Namespace) {
		errs = append(errs, fmt.Errorf("namespace: %q is not a Kubernetes namespace name", c.Namespace))
	}
	if c.Image == "" {
		errs = append(errs, errors.New("image: must name the browser image (deploy/Containerfile)"))
	}
	switch c.ImagePullPolicy {
	case "Always", "IfNotPresent", "Never":
	default:
		errs = append(errs, fmt.Errorf("image_pull_policy: %q: want Always, IfNotPresent or Never", c.ImagePullPolicy))
	}
	for _, p := range []struct{ key, v string }{{"chromium", c.Chromium}, {"glovebox", c.Glovebox}} {
		if !filepath.IsAbs(p.v) {
			errs = append(errs, fmt.Errorf("%s: %q must be an absolute path in the image", p.key, p.v))
		}
	}
	errs = append(errs, flagErrors(c.Flags, proxyFlags)...)
	if c.SeccompProfile == "" || filepath.IsAbs(c.SeccompProfile) || filepath.Clean(c.SeccompProfile) != c.SeccompProfile || c.SeccompProfile[0] == '.' {
		errs = append(errs, fmt.Errorf("seccomp_profile: %q: want a path relative to the kubelet's seccomp directory, such as glovebox/chromium.json", c.SeccompProfile))
	}
	for _, q := range []struct{ key, v string }{
		{"cpu_request", c.CPURequest}, {"cpu_limit", c.CPULimit},
		{"memory_request", c.MemoryRequest}, {"memory_limit", c.MemoryLimit},
	} {
		if _, err := resource.ParseQuantity(q.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a Kubernetes quantity", q.key, q.v))
		}
	}
	for _, s := range []struct {
		key string
		v   int
	}{{"tmp_mb", c.TmpMB}, {"shm_mb", c.ShmMB}, {"home_mb", c.HomeMB}} {
		if s.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %d must be positive", s.key, s.v))
		}
	}
	if c.StartTimeout <= 0 {
		errs = append(errs, fmt.Errorf("start_timeout: %v must be positive", c.StartTimeout))
	}
	if (c.OwnerName == "") != (c.OwnerUID == "") {
		errs = append(errs, errors.New("owner_name, owner_uid: give both or neither"))
	}
	if c.PeerPort < 0 || c.PeerPort > 65535 {
		errs = append(errs, fmt.Errorf("peer_port: %d is not a port (0 turns forwarding off)", c.PeerPort))
	}
	if sel, err := labels.Parse(c.PeerSelector); err != nil || sel.Empty() {
		errs = append(errs, fmt.Errorf("peer_selector: %q: want the label selector of the replicas' pods, such as app.kubernetes.io/name=glovebox", c.PeerSelector))
	}
	if !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("data_dir: %q must be an absolute path", c.DataDir))
	}
	if len(errs) > 0 {
		return fmt.Errorf("isolate kubernetes config: %w", errors.Join(errs...))
	}
	return nil
}
