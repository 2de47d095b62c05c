package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
)

// KubeStore is the Store of FLJobs in a Kubernetes API server.
type KubeStore struct {
	Client client.Client
}

var _ Store = KubeStore{}

// +kubebuilder:rbac:groups=fljob.dev,resources=fljobs,verbs=get;list;watch;update;patch;delete

// Get returns the FLJob.
func (s KubeStore) Get(ctx context.Context, key backends.Key) (*fljobv1.FLJob, error) {
	job := &fljobv1.FLJob{}
	err := s.Client.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: key.Name}, job)
	return job, mapError(err)
}

// +kubebuilder:rbac:groups=fljob.dev,resources=fljobs/status,verbs=get;update;patch

// UpdateStatus writes the status subresource.
func (s KubeStore) UpdateStatus(ctx context.Context, job *fljobv1.FLJob) error {
	return mapError(s.Client.Status().Update(ctx, job))
}

// Delete deletes the FLJob in the background.
func (s KubeStore) Delete(ctx context.Context, job *fljobv1.FLJob) error {
	err := s.Client.Delete(ctx, job, client.PropagationPolicy("Background"))
	return mapError(client.IgnoreNotFound(err))
}

// +kubebuilder:rbac:groups=fljob.dev,resources=fljobs/finalizers,verbs=update

// SetFinalizer adds or removes the controller's finalizer with a patch.
func (s KubeStore) SetFinalizer(ctx context.Context, job *fljobv1.FLJob, present bool) error {
	base := job.DeepCopy()
	var changed bool
	if present {
		changed = controllerutil.AddFinalizer(job, Finalizer)
	} else {
		changed = controllerutil.RemoveFinalizer(job, Finalizer)
	}
	if !changed {
		return nil
	}
	patch := client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
	return mapError(s.Client.Patch(ctx, job, patch))
}

func mapError(err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case apierrors.IsConflict(err):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

// KubeController runs a Reconciler under a controller-runtime manager.
type KubeController struct {
	Reconciler *Reconciler
}

// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile adapts Reconciler.Reconcile to controller-runtime.
func (c KubeController) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := c.Reconciler.Reconcile(ctx, backends.Key{Namespace: req.Namespace, Name: req.Name})
	return ctrl.Result{RequeueAfter: res.RequeueAfter}, err
}

// SetupOptions tune the controller.
type SetupOptions struct {
	// MaxConcurrentReconciles is how many FLJobs are reconciled at once.
	MaxConcurrentReconciles int
	// Owns are the workload types of the backend whose changes wake their
	// owning FLJob (Pods for the Kubernetes backend).
	Owns []client.Object
}

// SetupWithManager registers the controller. A backend that is a
// backends.Watcher reports its workloads' changes through a channel source.
func (c KubeController) SetupWithManager(mgr ctrl.Manager, opts SetupOptions) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("fljob").
		For(&fljobv1.FLJob{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles})
	for _, o := range opts.Owns {
		b = b.Owns(o)
	}
	if w, ok := c.Reconciler.Backend.(backends.Watcher); ok {
		changes := make(chan event.TypedGenericEvent[*fljobv1.FLJob], 1024)
		b = b.WatchesRawSource(source.Channel(changes, &handler.TypedEnqueueRequestForObject[*fljobv1.FLJob]{}))
		if err := mgr.Add(watchRunnable(w, changes)); err != nil {
			return fmt.Errorf("add backend watch: %w", err)
		}
	}
	return b.Complete(c)
}

// watchRunnable feeds a backend's change reports into a channel source.
func watchRunnable(w backends.Watcher, out chan<- event.TypedGenericEvent[*fljobv1.FLJob]) ctrlRunnable {
	return func(ctx context.Context) error {
		return w.Watch(ctx, func(k backends.Key) {
			job := &fljobv1.FLJob{}
			job.Namespace, job.Name = k.Namespace, k.Name
			select {
			case out <- event.TypedGenericEvent[*fljobv1.FLJob]{Object: job}:
			case <-ctx.Done():
			}
		})
	}
}

// ctrlRunnable is a function the manager runs while it is the leader.
type ctrlRunnable func(ctx context.Context) error

// Start runs the function.
func (f ctrlRunnable) Start(ctx context.Context) error { return f(ctx) }
