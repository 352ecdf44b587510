package isolate

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/glovebox/glovebox/isolate/podrelay"
)

func testKubePod(t *testing.T) kubePod {
	t.Helper()
	cfg := DefaultKubernetesConfig()
	cfg.Image, cfg.OwnerName, cfg.OwnerUID = "glovebox:test", "glovebox-0", "0b6c0c2e-1111-2222-3333-444455556666"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	id, err := podrelay.NewIdentity(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := Spec{TabID: "0123456789abcdef"}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	return kubePod{name: "glovebox-tab-a1b2c3d4e5f6", cfg: cfg, spec: spec, id: id, egressPort: 3129}
}

// TestKubePodLocked: every property the browser pod must have, field by
// field (the API server and kubelet tests check that they hold).
func TestKubePodLocked(t *testing.T) {
	p := testKubePod(t)
	pod := p.pod()
	s := pod.Spec
	if *s.AutomountServiceAccountToken || *s.EnableServiceLinks || s.HostNetwork || s.HostPID || s.HostIPC || s.ShareProcessNamespace != nil {
		t.Error("service account token, service links or a host namespace")
	}
	if s.DNSPolicy != corev1.DNSNone || s.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("dns %s, restart %s", s.DNSPolicy, s.RestartPolicy)
	}
	if pod.Labels[LabelTab] != p.spec.TabID || pod.Labels[LabelOwner] != "glovebox-0" || pod.Labels[LabelManaged] != "true" {
		t.Errorf("labels %v", pod.Labels)
	}
	if len(pod.OwnerReferences) != 1 || pod.OwnerReferences[0].Kind != "Pod" || pod.OwnerReferences[0].Name != "glovebox-0" || string(pod.OwnerReferences[0].UID) != p.cfg.OwnerUID {
		t.Errorf("owner %v", pod.OwnerReferences)
	}
	for _, c := range s.Containers {
		sc := c.SecurityContext
		if !*sc.RunAsNonRoot || *sc.RunAsUser == 0 || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem || *sc.Privileged ||
			!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
			t.Errorf("container %s: %+v", c.Name, sc)
		}
		if c.Resources.Limits.Memory().IsZero() || c.Resources.Limits.Cpu().IsZero() {
			t.Errorf("container %s has no limits", c.Name)
		}
	}
	browser, relay := s.Containers[0], s.Containers[1]
	if *browser.SecurityContext.RunAsUser != kubeBrowserUID || *relay.SecurityContext.RunAsUser != kubeRelayUID {
		t.Error("uids")
	}
	if sp := browser.SecurityContext.SeccompProfile; sp.Type != corev1.SeccompProfileTypeLocalhost || *sp.LocalhostProfile != "glovebox/chromium.json" {
		t.Errorf("browser seccomp %+v", sp)
	}
	if browser.Resources.Limits.Memory().String() != "1Gi" || browser.Resources.Requests.Cpu().String() != "100m" {
		t.Errorf("browser resources %v", browser.Resources)
	}
	// Only the relay gets the pod's secrets, and only as its environment.
	if len(browser.Env) != 2 || slices.ContainsFunc(browser.Env, func(e corev1.EnvVar) bool { return e.ValueFrom != nil }) {
		t.Errorf("browser env %v", browser.Env)
	}
	for _, e := range relay.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef.Name != p.name {
			t.Errorf("relay env %s", e.Name)
		}
	}
	args := strings.Join(browser.Command, " ")
	for _, want := range []string{"--proxy-server=http://127.0.0.1:3128", "--proxy-bypass-list=<-loopback>", "--remote-debugging-port=9222", "--user-data-dir=/home/glovebox/profile"} {
		if !strings.Contains(args, want) {
			t.Errorf("browser args lack %s: %s", want, args)
		}
	}
	if strings.Contains(args, "no-sandbox") {
		t.Error("--no-sandbox")
	}
	// The lock: root with NET_ADMIN only, before the others.
	if len(s.InitContainers) != 1 {
		t.Fatal("no init container")
	}
	lk := s.InitContainers[0]
	if !slices.Equal(lk.SecurityContext.Capabilities.Add, []corev1.Capability{"NET_ADMIN"}) || *lk.SecurityContext.AllowPrivilegeEscalation || *lk.SecurityContext.Privileged {
		t.Errorf("netlock %+v", lk.SecurityContext)
	}
	if !slices.Contains(lk.Command, "pod-netlock") || !slices.Contains(lk.Command, "3129") || !slices.Contains(lk.Command, "1001") {
		t.Errorf("netlock command %v", lk.Command)
	}
	mounts := map[string]bool{}
	for _, m := range browser.VolumeMounts {
		mounts[m.MountPath] = true
	}
	for _, v := range s.Volumes {
		if v.EmptyDir != nil && (v.EmptyDir.Medium != corev1.StorageMediumMemory || v.EmptyDir.SizeLimit == nil) {
			t.Errorf("volume %s: %+v", v.Name, v.EmptyDir)
		}
	}
	for _, m := range []string{"/tmp", "/dev/shm", "/home/glovebox", "/etc/chromium/policies/managed"} {
		if !mounts[m] {
			t.Errorf("no mount at %s", m)
		}
	}
	sec := p.secret()
	if string(sec.Data[secretToken]) != p.id.Token || sec.Name != pod.Name || !*sec.Immutable || len(sec.OwnerReferences) != 1 {
		t.Errorf("secret %+v", sec.ObjectMeta)
	}
}

func TestKubernetesConfigValidate(t *testing.T) {
	c := DefaultKubernetesConfig()
	c.Namespace, c.ImagePullPolicy, c.Chromium, c.SeccompProfile, c.CPULimit, c.TmpMB, c.OwnerName = "Bad_NS", "Sometimes", "chromium", "/abs.json", "lots", 0, "x"
	c.Flags = []string{"--no-sandbox", "--no-proxy-server", "--proxy-pac-url=http://x/p.pac", "--proxy-bypass-list=*"}
	err := c.Validate()
	for _, want := range []string{"namespace", "image:", "image_pull_policy", "chromium:", "seccomp_profile", "cpu_limit", "tmp_mb", "owner_name", "--no-sandbox",
		"--no-proxy-server", "--proxy-pac-url", "--proxy-bypass-list"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}
