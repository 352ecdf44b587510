package kubetest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Controllers are the cluster's kube-scheduler and kube-controller-manager.
type Controllers struct {
	// SchedulerURL and ControllerManagerURL are their secure ports
	// (/metrics takes the admin's token).
	SchedulerURL, ControllerManagerURL string
}

// controllerQPS is the scheduler's and controller-manager's client rate
// limit. Their defaults (50 QPS, burst 100) would cap binding at 50 pods
// a second, so a benchmark would measure the limiter rather than the
// scheduler; large clusters raise them the same way.
const controllerQPS, controllerBurst = 1000, 2000

// StartControllers starts kube-scheduler and kube-controller-manager with
// the admin's kubeconfig and no node of their own: StartNode calls it
// before its kubelet, and a benchmark whose nodes are simulated (kwok)
// calls it alone.
func (c *Cluster) StartControllers(t testing.TB) *Controllers {
	t.Helper()
	bin := filepath.Join(Dir(), "bin")
	sched, cm := freePort(t), freePort(t)
	cfg := filepath.Join(c.dir, "kube-scheduler.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {kubeconfig: %q, qps: %d, burst: %d}
leaderElection: {leaderElect: false}
`, c.Kubeconfig, controllerQPS, controllerBurst), 0o600); err != nil {
		t.Fatal(err)
	}
	c.start(t, "kube-scheduler", filepath.Join(bin, "kube-scheduler"), "--config", cfg,
		"--authentication-kubeconfig", c.Kubeconfig, "--authorization-kubeconfig", c.Kubeconfig,
		"--bind-address", "127.0.0.1", "--secure-port", sched)
	c.start(t, "kube-controller-manager", filepath.Join(bin, "kube-controller-manager"), "--kubeconfig", c.Kubeconfig,
		"--authentication-kubeconfig", c.Kubeconfig, "--authorization-kubeconfig", c.Kubeconfig,
		"--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", cm,
		"--kube-api-qps", fmt.Sprint(controllerQPS), "--kube-api-burst", fmt.Sprint(controllerBurst),
		"--service-account-private-key-file", filepath.Join(c.dir, "sa.key"), "--root-ca-file", filepath.Join(c.dir, "ca.crt"),
		"--use-service-account-credentials=false", "--controllers", "*,-node-ipam-controller")
	return &Controllers{SchedulerURL: "https://127.0.0.1:" + sched, ControllerManagerURL: "https://127.0.0.1:" + cm}
}
