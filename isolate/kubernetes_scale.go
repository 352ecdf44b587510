package isolate

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/glovebox/glovebox/isolate/podrelay"
)

// KubeTabObjects returns the pod and the Secret the Kubernetes runtime
// makes for a tab, named name, with the default window size, so that a
// load generator (internal/kubetest's scale benchmark) sends the API
// server objects of the real shape and size without starting browsers.
func KubeTabObjects(cfg KubernetesConfig, name, tabID string, id podrelay.Identity, egressPort int) (*corev1.Pod, *corev1.Secret) {
	spec, _ := Spec{TabID: tabID}.normalize() // the zero size and scale are always valid
	p := kubePod{name: name, cfg: cfg, spec: spec, id: id, egressPort: egressPort}
	return p.pod(), p.secret()
}
