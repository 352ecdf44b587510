package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/glovebox/glovebox/internal/kubetest"
	"github.com/glovebox/glovebox/internal/testenv"
	"github.com/glovebox/glovebox/isolate"
	"github.com/glovebox/glovebox/isolate/podrelay"
)

// clusterWide are the kinds of deploy/kubernetes that are in no namespace.
var clusterWide = map[string]bool{"Namespace": true, "PriorityClass": true, "ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true}

// manifestResources are the API resources of deploy/kubernetes's kinds.
var manifestResources = map[string]string{
	"Namespace": "namespaces", "ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings",
	"Deployment": "deployments", "Service": "services", "NetworkPolicy": "networkpolicies", "PodDisruptionBudget": "poddisruptionbudgets",
	"PriorityClass": "priorityclasses", "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
	"ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings", "ConfigMap": "configmaps",
}

// TestKubernetesManifests: every object of deploy/kubernetes is one the
// real API server takes (a server-side dry run, validation and admission
// included), and the Deployment's config.yaml is a valid configuration.
func TestKubernetesManifests(t *testing.T) {
	if err := kubetest.Missing(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	dir := filepath.Join("..", "..", "deploy", "kubernetes")
	// The config as a replica reads it, with the glovebox-ca Secret's files
	// where the Deployment mounts them (here a CA that glovebox ca made).
	shipped, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	caDir := filepath.Join(t.TempDir(), "ca")
	var caOut, caErr strings.Builder
	if err := run(t.Context(), []string{"ca", "--config", writeConfig(t, "tls:\n  dir: "+caDir+"\n")}, &caOut, &caErr); err != nil {
		t.Fatalf("glovebox ca: %v\n%s", err, caErr.String())
	}
	const caMount = "/etc/glovebox-ca/"
	if !bytes.Contains(shipped, []byte(caMount+"ca.crt")) || !bytes.Contains(shipped, []byte(caMount+"ca.key")) {
		t.Errorf("deploy/kubernetes/config.yaml does not take the CA from the glovebox-ca Secret at %s", caMount)
	}
	conf := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(conf, bytes.ReplaceAll(shipped, []byte(caMount), []byte(caDir+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	shippedConfig, err := loadConfig(conf, nil)
	if err != nil {
		t.Errorf("deploy/kubernetes/config.yaml: %v", err)
	}
	kc := kubetest.Start(t)
	dc, err := dynamic.NewForConfig(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	priorities := map[string]map[string]any{}
	for _, obj := range manifestObjects(t, dir) {
		gv, err := schema.ParseGroupVersion(obj.GetAPIVersion())
		if err != nil {
			t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
		res, ok := manifestResources[obj.GetKind()]
		if !ok {
			t.Fatalf("kind %s: add it to the test", obj.GetKind())
		}
		kinds[obj.GetKind()]++
		if obj.GetKind() == "PriorityClass" {
			priorities[obj.GetName()] = obj.Object
		}
		if obj.GetKind() == "ConfigMap" && obj.GetName() == "glovebox-browser-image" {
			// The admission policy's image is the runtime's.
			if img, _, _ := unstructured.NestedString(obj.Object, "data", "image"); img != shippedConfig.Isolate.Kubernetes.Image {
				t.Errorf("browser-image.yaml names %q, config.yaml's isolate.kubernetes.image %q", img, shippedConfig.Isolate.Kubernetes.Image)
			}
			kinds["browser image"]++
		}
		var ri dynamic.ResourceInterface = dc.Resource(gv.WithResource(res))
		if !clusterWide[obj.GetKind()] {
			obj.SetNamespace("glovebox") // what kustomize's namespace: does
			ri = dc.Resource(gv.WithResource(res)).Namespace("glovebox")
		}
		// The namespace itself is made for real: the dry runs of
		// what goes in it need it.
		opts := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
		if obj.GetKind() == "Namespace" {
			opts = metav1.CreateOptions{}
		}
		if _, err := ri.Create(context.Background(), &obj, opts); err != nil {
			t.Errorf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
	for _, want := range []string{"Namespace", "ServiceAccount", "Role", "RoleBinding", "Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget", "PriorityClass", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "browser image"} {
		if kinds[want] == 0 {
			t.Errorf("no %s in deploy/kubernetes", want)
		}
	}
	// A claimed pool pod keeps the pool's priority (a pod's priority is
	// immutable): so that neither a cold tab's pod nor a default-priority
	// workload preempts a live tab, neither class preempts and both are
	// above the default 0; the pool's is the lower.
	tab, idle := priorities["glovebox-tab"], priorities["glovebox-idle"]
	value := func(pc map[string]any) float64 { // sigs.k8s.io/yaml: JSON numbers
		switch v := pc["value"].(type) {
		case float64:
			return v
		case int64:
			return float64(v)
		}
		return 0
	}
	if tab == nil || idle == nil {
		t.Errorf("PriorityClasses %v, want glovebox-tab and glovebox-idle", priorities)
	} else {
		for name, pc := range priorities {
			if pc["preemptionPolicy"] != "Never" {
				t.Errorf("PriorityClass %s preemptionPolicy %v: it could preempt a live tab that began in the pool", name, pc["preemptionPolicy"])
			}
		}
		if !(0 < value(idle) && value(idle) < value(tab)) {
			t.Errorf("PriorityClass values idle %v, tab %v: want 0 < idle < tab", value(idle), value(tab))
		}
	}
	if kust, _ := os.ReadFile(filepath.Join(dir, "kustomization.yaml")); !strings.Contains(string(kust), "config.yaml") {
		t.Error("the kustomization does not make the config ConfigMap")
	}
}

// TestKubernetesPodPolicy: deploy/kubernetes's admission policy, on the
// real API server, lets the replicas' ServiceAccount make the browser pod
// the runtime makes, and claim one (a label and owner patch), and refuses
// it every wider pod: a host namespace, a privileged or capable container,
// a hostPath, a token, another init container, no seccomp, a changed
// image. Others (the ReplicaSet controller, an administrator) are not its
// business.
func TestKubernetesPodPolicy(t *testing.T) {
	if err := kubetest.Missing(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	kc := kubetest.Start(t)
	dc, err := dynamic.NewForConfig(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{"Namespace": "namespaces", "ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings",
		"ValidatingAdmissionPolicy": "validatingadmissionpolicies", "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
		"PriorityClass": "priorityclasses", "ConfigMap": "configmaps"}
	const ns = "glovebox"
	for _, obj := range manifestObjects(t, filepath.Join("..", "..", "deploy", "kubernetes")) {
		res, ok := kinds[obj.GetKind()]
		if !ok {
			continue
		}
		gv, _ := schema.ParseGroupVersion(obj.GetAPIVersion())
		var ri dynamic.ResourceInterface = dc.Resource(gv.WithResource(res))
		if !clusterWide[obj.GetKind()] {
			obj.SetNamespace(ns)
			ri = dc.Resource(gv.WithResource(res)).Namespace(ns)
		}
		if _, err := ri.Create(context.Background(), &obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
	// The default ServiceAccount pods name (the controller-manager, which
	// would make it, does not run here).
	if _, err := kc.Client.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	saConfig := rest.CopyConfig(kc.Config)
	saConfig.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:glovebox:glovebox",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:glovebox", "system:authenticated"}}
	sa, err := kubernetes.NewForConfig(saConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg := isolate.DefaultKubernetesConfig()
	cfg.Image = "registry.example.com/glovebox/glovebox:1"
	cfg.PriorityClass = "glovebox-tab" // as deploy/kubernetes/config.yaml
	id, err := podrelay.NewIdentity(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	browserPod := func() *corev1.Pod {
		p, _ := isolate.KubeTabObjects(cfg, "glovebox-tab-0123456789ab", "0123456789abcdef", id, 3129)
		return p
	}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	create := func(cs kubernetes.Interface, p *corev1.Pod) error {
		_, err := cs.CoreV1().Pods(ns).Create(context.Background(), p, dry)
		return err
	}
	hostile := map[string]func(p *corev1.Pod){
		"host network": func(p *corev1.Pod) { p.Spec.HostNetwork = true },
		"host PID":     func(p *corev1.Pod) { p.Spec.HostPID = true },
		"hostPath": func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
		},
		"privileged browser": func(p *corev1.Pod) {
			// The API server's own validation refuses privileged with
			// allowPrivilegeEscalation false; a hostile replica would leave it unset.
			p.Spec.Containers[0].SecurityContext.Privileged = new(true)
			p.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
		},
		"a capability added": func(p *corev1.Pod) {
			p.Spec.Containers[1].SecurityContext.Capabilities.Add = []corev1.Capability{"SYS_ADMIN"}
		},
		"root container": func(p *corev1.Pod) { p.Spec.Containers[1].SecurityContext.RunAsNonRoot = new(false) },
		"SYS_ADMIN in the init container": func(p *corev1.Pod) {
			p.Spec.InitContainers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"SYS_ADMIN"}
		},
		"another init container": func(p *corev1.Pod) {
			c := p.Spec.InitContainers[0]
			c.Name = "other"
			p.Spec.InitContainers = append(p.Spec.InitContainers, c)
		},
		"a ServiceAccount token": func(p *corev1.Pod) { p.Spec.AutomountServiceAccountToken = new(true) },
		"no seccomp": func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		},
		"another Localhost seccomp profile": func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext.SeccompProfile.LocalhostProfile = new("permissive.json")
		},
		"a host port":  func(p *corev1.Pod) { p.Spec.Containers[1].Ports[0].HostPort = 9443 },
		"a node named": func(p *corev1.Pod) { p.Spec.NodeName = "control-plane-1" },
		"a system priority": func(p *corev1.Pod) {
			p.Spec.PriorityClassName = "system-node-critical"
			p.Spec.Priority = nil
		},
		"netlock running something else": func(p *corev1.Pod) {
			p.Spec.InitContainers[0].Command = []string{"/bin/sh", "-c", "sleep infinity"}
		},
		"netlock as a sidecar": func(p *corev1.Pod) {
			p.Spec.InitContainers[0].RestartPolicy = new(corev1.ContainerRestartPolicyAlways)
		},
		"SELinux spc_t": func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext.SELinuxOptions = &corev1.SELinuxOptions{Type: "spc_t"}
		},
		"AppArmor unconfined": func(p *corev1.Pod) {
			p.Spec.Containers[1].SecurityContext.AppArmorProfile = &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}
		},
		"behind the replicas' Service": func(p *corev1.Pod) { p.Labels["app.kubernetes.io/name"] = "glovebox" },
		"another image in netlock":     func(p *corev1.Pod) { p.Spec.InitContainers[0].Image = "registry.example.com/evil:1" },
		"another image for the relay":  func(p *corev1.Pod) { p.Spec.Containers[1].Image = "registry.example.com/evil:1" },
		"a disk emptyDir": func(p *corev1.Pod) {
			for i := range p.Spec.Volumes {
				if p.Spec.Volumes[i].EmptyDir != nil {
					p.Spec.Volumes[i].EmptyDir.Medium = ""
				}
			}
		},
	}
	// The policy takes effect a moment after it is made: wait for the
	// first refusal.
	waitFor(t, 30*time.Second, "the admission policy to refuse a host-network pod", func() (bool, string) {
		p := browserPod()
		hostile["host network"](p)
		err := create(sa, p)
		return err != nil && strings.Contains(err.Error(), "glovebox-browser-pods"), fmt.Sprint(err)
	})
	if err := create(sa, browserPod()); err != nil {
		t.Fatalf("the runtime's own browser pod refused: %v", err)
	}
	for name, f := range hostile {
		p := browserPod()
		f(p)
		err := create(sa, p)
		if err == nil || !strings.Contains(err.Error(), "glovebox-browser-pods") {
			t.Errorf("%s: %v, want refused by the glovebox-browser-pods policy", name, err)
		}
		if name == "host network" {
			if err := create(kc.Client, p); err != nil {
				t.Errorf("an administrator's host-network pod: %v, want the policy to leave others alone", err)
			}
			p.Name = "glovebox-replica-like"
			if _, err := kc.Client.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			// A replica publishes itself on its own pod, which the
			// administrator's Deployment made in a shape no browser pod has.
			publish := `{"metadata":{"annotations":{"glovebox.io/peer-addr":"10.0.0.1:9444"}}}`
			if _, err := sa.CoreV1().Pods(ns).Patch(context.Background(), p.Name, types.MergePatchType, []byte(publish), metav1.PatchOptions{}); err != nil {
				t.Errorf("an annotation on a pod the policy would not let the replica make: %v, want allowed", err)
			}
		}
	}

	// A claim's patch passes; a changed image does not.
	made, err := sa.CoreV1().Pods(ns).Create(context.Background(), browserPod(), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	claim := fmt.Sprintf(`{"metadata":{"resourceVersion":%q,"labels":{%q:%q}}}`, made.ResourceVersion, isolate.LabelPool, isolate.PoolClaimed)
	if _, err := sa.CoreV1().Pods(ns).Patch(context.Background(), made.Name, types.MergePatchType, []byte(claim), metav1.PatchOptions{}); err != nil {
		t.Errorf("a claim's patch: %v", err)
	}
	image := `{"spec":{"containers":[{"name":"browser","image":"registry.example.com/evil:1"}]}}`
	if _, err := sa.CoreV1().Pods(ns).Patch(context.Background(), made.Name, types.StrategicMergePatchType, []byte(image), metav1.PatchOptions{}); err == nil ||
		!strings.Contains(err.Error(), "glovebox-browser-pods") {
		t.Errorf("an image patch: %v, want refused by the policy", err)
	}
	relabel := `{"metadata":{"labels":{"app.kubernetes.io/name":"glovebox"}}}`
	if _, err := sa.CoreV1().Pods(ns).Patch(context.Background(), made.Name, types.MergePatchType, []byte(relabel), metav1.PatchOptions{}); err == nil ||
		!strings.Contains(err.Error(), "glovebox-browser-pods") {
		t.Errorf("a patch putting a browser pod behind the replicas' Service: %v, want refused by the policy", err)
	}

	// The interception CA's Secret is the administrator's: the replicas
	// make and delete their tabs' Secrets, never it.
	secrets := func(cs kubernetes.Interface) typedcorev1.SecretInterface { return cs.CoreV1().Secrets(ns) }
	ca := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "glovebox-ca"}, Data: map[string][]byte{"tls.crt": []byte("x"), "tls.key": []byte("y")}}
	if _, err := secrets(sa).Create(context.Background(), ca, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "glovebox-ca-secret") {
		t.Errorf("the replicas' making glovebox-ca: %v, want refused by the glovebox-ca-secret policy", err)
	}
	if _, err := secrets(kc.Client).Create(context.Background(), ca, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := secrets(sa).Delete(context.Background(), "glovebox-ca", metav1.DeleteOptions{}); err == nil || !strings.Contains(err.Error(), "glovebox-ca-secret") {
		t.Errorf("the replicas' deleting glovebox-ca: %v, want refused by the glovebox-ca-secret policy", err)
	}
	_, tabSecret := isolate.KubeTabObjects(cfg, "glovebox-tab-0123456789ab", "0123456789abcdef", id, 3129)
	if _, err := secrets(sa).Create(context.Background(), tabSecret, dry); err != nil {
		t.Errorf("a tab's Secret: %v, want allowed", err)
	}
}
