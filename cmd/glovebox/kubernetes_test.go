package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/glovebox/glovebox/internal/kubetest"
	"github.com/glovebox/glovebox/internal/testenv"
)

// TestKubernetesManifests: every object of deploy/kubernetes is one the
// real API server takes (a server-side dry run, validation and admission
// included), and the Deployment's config.yaml is a valid configuration.
func TestKubernetesManifests(t *testing.T) {
	if err := kubetest.Missing(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	dir := filepath.Join("..", "..", "deploy", "kubernetes")
	if _, err := loadConfig(filepath.Join(dir, "config.yaml"), nil); err != nil {
		t.Errorf("deploy/kubernetes/config.yaml: %v", err)
	}
	kc := kubetest.Start(t)
	dc, err := dynamic.NewForConfig(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	resources := map[string]string{
		"Namespace": "namespaces", "ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings",
		"Deployment": "deployments", "Service": "services", "NetworkPolicy": "networkpolicies", "PodDisruptionBudget": "poddisruptionbudgets",
		"PriorityClass": "priorityclasses",
	}
	kinds := map[string]int{}
	for _, obj := range manifestObjects(t, dir) {
		gv, err := schema.ParseGroupVersion(obj.GetAPIVersion())
		if err != nil {
			t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
		res, ok := resources[obj.GetKind()]
		if !ok {
			t.Fatalf("kind %s: add it to the test", obj.GetKind())
		}
		kinds[obj.GetKind()]++
		var ri dynamic.ResourceInterface = dc.Resource(gv.WithResource(res))
		if obj.GetKind() != "Namespace" && obj.GetKind() != "PriorityClass" { // cluster-wide
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
	for _, want := range []string{"Namespace", "ServiceAccount", "Role", "RoleBinding", "Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget", "PriorityClass"} {
		if kinds[want] == 0 {
			t.Errorf("no %s in deploy/kubernetes", want)
		}
	}
	if kust, _ := os.ReadFile(filepath.Join(dir, "kustomization.yaml")); !strings.Contains(string(kust), "config.yaml") {
		t.Error("the kustomization does not make the config ConfigMap")
	}
}
