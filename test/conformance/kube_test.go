package conformance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/backends/k8s"
	"github.com/fljob-dev/fljob/test/envtest"
)

// kubeCluster sets up the kubernetes column: the real node of hack/node.sh
// (or the cluster of FLJOB_CONFORMANCE_KUBECONFIG), with the operator wired
// as the operator does on backends/k8s, unless an operator runs in the cluster.
func kubeCluster(t *testing.T) *cluster {
	switch {
	case node.err != nil:
		results.fail(columnKubernetes, "the node did not come up, a bug of hack/node.sh to fix: "+
			node.err.Error())
		t.Fatalf("the node script failed, which is a bug to fix: %v", node.err)
	case node.skip != "":
		results.skip(columnKubernetes, node.skip)
		t.Skip(node.skip)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", node.kubeconfig)
	if err != nil {
		t.Fatalf("load kubeconfig %s: %v", node.kubeconfig, err)
	}
	c, err := ctrlclient.New(cfg, ctrlclient.Options{Scheme: envtest.Scheme()})
	if err != nil {
		t.Fatalf("create client: %v", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("create clientset: %v", err)
	}
	ctx := withTimeout(t, 2*time.Minute)
	facts := []string{"cluster: " + node.where}
	if os.Getenv(envOperator) == "external" {
		facts = append(facts, "FLJobs reconciled by the operator deployed in the cluster "+
			"(config/default)")
	} else {
		startOperator(t, cfg, cs)
		facts = append(facts, "FLJobs reconciled in the test process: controllers.Reconciler "+
			"with backends/k8s, a manager against the cluster's kube-apiserver")
	}
	n := readyNode(ctx, t, cs)
	sh := shellFromEnv(os.Getenv(envNodeExec))
	facts = append(nodeFacts(ctx, n, sh), facts...)

	logReader := k8s.New(c, k8s.Options{Clientset: cs})
	return &cluster{
		column: columnKubernetes,
		c:      c,
		shell:  sh,
		waitNamespace: func(ctx context.Context, ns string) error {
			return defaultServiceAccount(ctx, cs, ns)
		},
		reachable: func(ctx context.Context, ns, name string) error {
			return readyEndpoint(ctx, cs, ns, name)
		},
		logs: func(ctx context.Context, job *fljobv1.FLJob) string {
			return backendLogs(ctx, logReader, job)
		},
		recursiveRO: func(context.Context) (bool, string) { return runtimeRecursiveRO(n) },
		facts:       facts,
	}
}

// startOperator installs the CRD and runs the controller on backends/k8s as
// the operator wires it (options as in cmd/internal/operator's Run: the
// API reader for reads, a clientset for events and logs, Pods owned),
// until the test ends.
func startOperator(t *testing.T, cfg *rest.Config, cs kubernetes.Interface) {
	_, err := crenvtest.InstallCRDs(cfg, crenvtest.CRDInstallOptions{
		Paths:              []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfPathMissing: true,
		MaxTime:            time.Minute,
	})
	if err != nil {
		t.Fatalf("install the FLJob CRD: %v", err)
	}
	owned := labels.SelectorFromSet(labels.Set{backends.LabelManagedBy: backends.ManagedBy})
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 envtest.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Logger:                 ctrl.Log.WithName("kubernetes-column"),
		// The operator's cache holds only fljob's own Pods.
		Cache: cache.Options{ByObject: map[ctrlclient.Object]cache.ByObject{
			&corev1.Pod{}: {Label: owned},
		}},
	})
	if err != nil {
		t.Fatalf("create manager: %v", err)
	}
	b := k8s.New(mgr.GetClient(), k8s.Options{Reader: mgr.GetAPIReader(), Clientset: cs})
	startController(t, mgr, b, []ctrlclient.Object{&corev1.Pod{}})
}

// readyNode returns the cluster's first Ready node: the one that holds the
// host-path workspace on a single-node cluster.
func readyNode(ctx context.Context, t *testing.T, cs kubernetes.Interface) *corev1.Node {
	t.Helper()
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	for i := range nodes.Items {
		for _, c := range nodes.Items[i].Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return &nodes.Items[i]
			}
		}
	}
	t.Fatalf("no Ready node among %d", len(nodes.Items))
	return nil
}

// nodeFacts describes the node in docs/parity.md, as it reports itself.
func nodeFacts(ctx context.Context, n *corev1.Node, sh nodeShell) []string {
	i := n.Status.NodeInfo
	runc, err := sh.run(ctx, "runc --version | head -n1")
	if err != nil {
		runc = "unknown (" + err.Error() + ")"
	}
	rro, why := runtimeRecursiveRO(n)
	return []string{
		fmt.Sprintf("node %s: kubelet %s, %s, %s", n.Name, i.KubeletVersion,
			i.ContainerRuntimeVersion, strings.TrimSpace(runc)),
		fmt.Sprintf("kernel %s, %s", i.KernelVersion, i.OSImage),
		fmt.Sprintf("recursive read-only mounts: %t (%s)", rro, why),
	}
}

// runtimeRecursiveRO reads whether the node's default runtime handler makes
// read-only mounts recursive, as the kubelet reports it.
func runtimeRecursiveRO(n *corev1.Node) (bool, string) {
	for _, h := range n.Status.RuntimeHandlers {
		if h.Name != "" && h.Name != "runc" {
			continue
		}
		if h.Features == nil || h.Features.RecursiveReadOnlyMounts == nil {
			continue
		}
		v := *h.Features.RecursiveReadOnlyMounts
		return v, fmt.Sprintf("node.status.runtimeHandlers[%q].features.recursiveReadOnlyMounts "+
			"is %t; recursiveReadOnly: IfPossible falls back to a plain read-only mount without it",
			h.Name, v)
	}
	return false, "the node reports no recursiveReadOnlyMounts feature"
}

// defaultServiceAccount waits until the namespace's default service account
// exists: the API server refuses Pods before (ServiceAccount admission).
func defaultServiceAccount(ctx context.Context, cs kubernetes.Interface, ns string) error {
	for {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no default service account: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// readyEndpoint waits until the Service named after a server FLJob has a
// ready endpoint, so that kube-proxy can route its name to the Pod.
func readyEndpoint(ctx context.Context, cs kubernetes.Interface, ns, name string) error {
	sel := discoveryv1.LabelServiceName + "=" + name
	for {
		list, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err == nil && hasReadyEndpoint(list.Items) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("service %s/%s has no ready endpoint: %w", ns, name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func hasReadyEndpoint(slices []discoveryv1.EndpointSlice) bool {
	for _, s := range slices {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				return true
			}
		}
	}
	return false
}
