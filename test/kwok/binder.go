package kwok

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// bindRetry is how often a pod whose binding failed is tried again: the
// informer's resync period.
const bindRetry = time.Second

// startBinder binds every unscheduled pod, in every namespace, to node: the
// part of a scheduler's work a single fake node needs. kwok only plays the
// stages of pods bound to a node it manages. Failures other than a pod
// that is gone or already bound go to logPath and are retried. The returned
// function stops the binder and waits for it.
func startBinder(ctx context.Context, cs kubernetes.Interface, node, logPath string) (func(), error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("binder log: %w", err)
	}
	var mu sync.Mutex
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(logFile, time.Now().Format(time.RFC3339Nano)+" "+format+"\n", args...)
	}

	ctx, cancel := context.WithCancel(ctx)
	unbound := fields.OneTermEqualSelector("spec.nodeName", "").String()
	factory := informers.NewSharedInformerFactoryWithOptions(cs, bindRetry,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = unbound }))
	bind := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil {
			return
		}
		binding := &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: node},
		}
		err := cs.CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{})
		switch {
		case err == nil:
			logf("bound pod %s/%s to %s", pod.Namespace, pod.Name, node)
		case apierrors.IsNotFound(err), apierrors.IsConflict(err), ctx.Err() != nil:
		default:
			logf("bind pod %s/%s: %v", pod.Namespace, pod.Name, err)
		}
	}
	_, err = factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    bind,
		UpdateFunc: func(_, obj any) { bind(obj) },
	})
	if err != nil {
		cancel()
		_ = logFile.Close()
		return nil, fmt.Errorf("binder: add handler: %w", err)
	}
	factory.Start(ctx.Done())
	return func() {
		cancel()
		factory.Shutdown()
		_ = logFile.Close()
	}, nil
}
