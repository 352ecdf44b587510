package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

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
	}
	kust, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(kust, &k); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, file := range k.Resources {
		raw, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
			var obj unstructured.Unstructured
			if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			gv, err := schema.ParseGroupVersion(obj.GetAPIVersion())
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			res, ok := resources[obj.GetKind()]
			if !ok {
				t.Fatalf("%s: kind %s: add it to the test", file, obj.GetKind())
			}
			kinds[obj.GetKind()]++
			var ri dynamic.ResourceInterface = dc.Resource(gv.WithResource(res))
			if obj.GetKind() != "Namespace" {
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
				t.Errorf("%s: %s %s: %v", file, obj.GetKind(), obj.GetName(), err)
			}
		}
	}
	for _, want := range []string{"Namespace", "ServiceAccount", "Role", "RoleBinding", "Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget"} {
		if kinds[want] == 0 {
			t.Errorf("no %s in deploy/kubernetes", want)
		}
	}
	if !strings.Contains(string(kust), "config.yaml") {
		t.Error("the kustomization does not make the config ConfigMap")
	}
}
