package operator

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/test/envtest"
)

func pod(name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}},
	}
}

// TestCacheHoldsOnlyOwnedPods proves that the manager's cache, and so its
// memory, does not grow with the cluster's unrelated Pods.
func TestCacheHoldsOnlyOwnedPods(t *testing.T) {
	env := envtest.StartEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	const unrelated = 50
	for i := range unrelated {
		if err := env.Client.Create(ctx, pod(fmt.Sprintf("other-%d", i), map[string]string{"app": "x"})); err != nil {
			t.Fatal(err)
		}
	}
	owned := pod("owned-1", backends.SelectorLabels(backends.Key{Namespace: "default", Name: "owned"}))
	if err := env.Client.Create(ctx, owned); err != nil {
		t.Fatal(err)
	}

	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  Scheme(),
		Cache:   cacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}

	var pods corev1.PodList
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := mgr.GetClient().List(ctx, &pods, client.InNamespace("default")); err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var names []string
	for _, p := range pods.Items {
		names = append(names, p.Name)
	}
	if len(names) != 1 || names[0] != "owned-1" {
		t.Errorf("cached pods = %v, want only owned-1 of %d pods in the cluster", names, unrelated+1)
	}
}
