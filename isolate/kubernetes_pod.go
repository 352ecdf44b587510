package isolate

import (
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/glovebox/glovebox/isolate/podrelay"
)

// Labels of the Kubernetes runtime's pods and Secrets, besides LabelManaged
// and LabelTab.
const (
	// LabelOwner is the replica (its pod's name) that made the pod.
	LabelOwner = "glovebox.owner"
	// LabelApp marks the browser pods for NetworkPolicies.
	LabelApp = "app.kubernetes.io/name"
	// appBrowser is LabelApp's value on a browser pod.
	appBrowser = "glovebox-browser"
)

// kubePolicyConfigMap is the ConfigMap with the browsers' managed policy
// file, mounted read-only in every browser pod.
const kubePolicyConfigMap = "glovebox-browser-policy"

// Secret keys of a pod's relay identity.
const (
	secretCert  = "tls.crt"
	secretKey   = "tls.key"
	secretToken = "token"
)

// Environment of the relay container, from the pod's Secret.
const (
	EnvRelayCert  = "GLOVEBOX_RELAY_CERT"
	EnvRelayKey   = "GLOVEBOX_RELAY_KEY"
	EnvRelayToken = "GLOVEBOX_RELAY_TOKEN"
)

// kubePod is what one pod and its Secret are made from.
type kubePod struct {
	name string // the pod's and the Secret's
	cfg  KubernetesConfig
	spec Spec // normalized
	id   podrelay.Identity
	// egressPort is the port the pod's lock lets the relay connect to.
	egressPort int
	// idle makes a pod of the shared warm pool (KubePool): labelled idle,
	// with no tab yet, at the pool's priority.
	idle bool
}

// owner is the ownerReference of the replica's pod, or none outside a
// cluster (a host's owner name, no UID).
func (p kubePod) owner() []metav1.OwnerReference {
	if p.cfg.OwnerName == "" || p.cfg.OwnerUID == "" {
		return nil
	}
	return []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: p.cfg.OwnerName, UID: types.UID(p.cfg.OwnerUID)}}
}

func (p kubePod) labels() map[string]string {
	l := containerLabels(p.spec.TabID)
	l[LabelApp] = appBrowser
	if p.cfg.OwnerName != "" {
		l[LabelOwner] = p.cfg.OwnerName
	}
	if p.idle {
		l[LabelPool] = PoolIdle
	}
	return l
}

// secret is the pod's relay identity.
func (p kubePod) secret() *corev1.Secret {
	l := p.labels()
	delete(l, LabelApp) // NetworkPolicies select pods by it; keep it off other kinds
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: p.cfg.Namespace, Labels: l, OwnerReferences: p.owner()},
		Type:       corev1.SecretTypeOpaque,
		Immutable:  new(true),
		Data: map[string][]byte{
			secretCert:  p.id.CertPEM,
			secretKey:   p.id.KeyPEM,
			secretToken: []byte(p.id.Token),
		},
	}
}

// browserArgs is Chromium's command line in the pod: DevTools on the
// pod's loopback, every request through the relay's loopback port (which
// refuses everything until the pod's owner has set its egress), loopback
// itself included.
func (p kubePod) browserArgs() []string {
	args := chromiumArgs(kubeProfile, p.spec, p.cfg.Flags)
	args = slices.Insert(args, 0, p.cfg.Chromium)
	for i, a := range args {
		if a == "--remote-debugging-port=0" {
			args[i] = "--remote-debugging-port=" + strconv.Itoa(devtoolsPort)
		}
	}
	return slices.Insert(args, len(args)-1,
		"--proxy-server=http://127.0.0.1:"+strconv.Itoa(kubeProxyPort), "--proxy-bypass-list=<-loopback>")
}

// The browser container's paths.
const (
	kubeHome    = "/home/glovebox"
	kubeProfile = kubeHome + "/profile"
)

// locked is a container security context with nothing: no capabilities,
// no privilege escalation, a read-only root, as uid.
func locked(uid int64, profile *corev1.SeccompProfile) *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsUser:                new(uid),
		RunAsGroup:               new(uid),
		RunAsNonRoot:             new(true),
		AllowPrivilegeEscalation: new(false),
		ReadOnlyRootFilesystem:   new(true),
		Privileged:               new(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           profile,
	}
}

// memDir is a memory-backed emptyDir of mb MiB.
func memDir(name string, mb int) corev1.Volume {
	size := resource.MustParse(strconv.Itoa(mb) + "Mi")
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &size}}}
}

// priorityClass is the pod's PriorityClass: the pool's for an idle pod
// (a pod's priority cannot change: a claimed pod keeps it).
func (p kubePod) priorityClass() string {
	if p.idle && p.cfg.PoolPriorityClass != "" {
		return p.cfg.PoolPriorityClass
	}
	return p.cfg.PriorityClass
}

// pod is the browser pod: an init container that locks the pod's network
// (podnet), Chromium, and its relay (podrelay).
func (p kubePod) pod() *corev1.Pod {
	runtimeDefault := &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	chromiumProfile := &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: new(p.cfg.SeccompProfile)}
	pull := corev1.PullPolicy(p.cfg.ImagePullPolicy)
	small := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
	secretEnv := func(name, key string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: p.name}, Key: key}}}
	}
	// The lock runs as root with CAP_NET_ADMIN and nothing else, before
	// the others start, as service meshes' init containers do.
	lockCtx := &corev1.SecurityContext{
		RunAsUser:                new(int64(0)),
		RunAsNonRoot:             new(false),
		AllowPrivilegeEscalation: new(false),
		ReadOnlyRootFilesystem:   new(true),
		Privileged:               new(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_ADMIN"}},
		SeccompProfile:           runtimeDefault,
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: p.cfg.Namespace, Labels: p.labels(), OwnerReferences: p.owner()},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: new(int64(1)),
			AutomountServiceAccountToken:  new(false),
			EnableServiceLinks:            new(false),
			// No cluster DNS: Chromium resolves nothing itself (the
			// egress proxy does), and the lock lets no DNS out.
			DNSPolicy:         corev1.DNSNone,
			DNSConfig:         &corev1.PodDNSConfig{Nameservers: []string{"127.0.0.1"}},
			HostNetwork:       false,
			HostPID:           false,
			HostIPC:           false,
			Hostname:          containerHostname,
			PriorityClassName: p.priorityClass(),
			SecurityContext:   &corev1.PodSecurityContext{SeccompProfile: runtimeDefault},
			InitContainers: []corev1.Container{{
				Name: "netlock", Image: p.cfg.Image, ImagePullPolicy: pull,
				Command: []string{p.cfg.Glovebox, "pod-netlock",
					"--relay-port", strconv.Itoa(kubeRelayPort), "--relay-uid", strconv.Itoa(kubeRelayUID),
					"--egress-port", strconv.Itoa(p.egressPort)},
				SecurityContext: lockCtx,
				Resources:       small,
			}},
			Containers: []corev1.Container{
				{
					Name: "browser", Image: p.cfg.Image, ImagePullPolicy: pull,
					Command:         p.browserArgs(),
					Env:             []corev1.EnvVar{{Name: "HOME", Value: kubeHome}, {Name: "LANG", Value: "C.UTF-8"}},
					SecurityContext: locked(kubeBrowserUID, chromiumProfile),
					Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(p.cfg.CPURequest), corev1.ResourceMemory: resource.MustParse(p.cfg.MemoryRequest)},
						Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(p.cfg.CPULimit), corev1.ResourceMemory: resource.MustParse(p.cfg.MemoryLimit)},
					},
					VolumeMounts: []corev1.VolumeMount{
						{Name: "tmp", MountPath: "/tmp"},
						{Name: "shm", MountPath: "/dev/shm"},
						{Name: "home", MountPath: kubeHome},
						{Name: "policy", MountPath: "/etc/chromium/policies/managed", ReadOnly: true},
					},
				},
				{
					Name: "relay", Image: p.cfg.Image, ImagePullPolicy: pull,
					Command: []string{p.cfg.Glovebox, "pod-relay",
						"--listen", ":" + strconv.Itoa(kubeRelayPort),
						"--proxy", "127.0.0.1:" + strconv.Itoa(kubeProxyPort),
						"--devtools", "127.0.0.1:" + strconv.Itoa(devtoolsPort)},
					Env:             []corev1.EnvVar{secretEnv(EnvRelayCert, secretCert), secretEnv(EnvRelayKey, secretKey), secretEnv(EnvRelayToken, secretToken)},
					SecurityContext: locked(kubeRelayUID, runtimeDefault),
					Resources:       small,
					Ports:           []corev1.ContainerPort{{Name: "relay", ContainerPort: kubeRelayPort, Protocol: corev1.ProtocolTCP}},
				},
			},
			Volumes: []corev1.Volume{
				memDir("tmp", p.cfg.TmpMB),
				memDir("shm", p.cfg.ShmMB),
				memDir("home", p.cfg.HomeMB),
				{Name: "policy", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: kubePolicyConfigMap},
					Items:                []corev1.KeyToPath{{Key: "glovebox.json", Path: "glovebox.json"}},
				}}},
			},
		},
	}
}
