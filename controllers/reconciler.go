package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
)

// Finalizer keeps an FLJob until its workloads are stopped and removed.
const Finalizer = "fljob.dev/cleanup"

// Store errors. A Store wraps them so that errors.Is finds them.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// Store is where FLJobs live: the Kubernetes API, or the single-host store.
type Store interface {
	// Get returns the FLJob, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key backends.Key) (*fljobv1.FLJob, error)
	// UpdateStatus writes job.Status if job is still the stored version;
	// otherwise it returns an error wrapping ErrConflict.
	UpdateStatus(ctx context.Context, job *fljobv1.FLJob) error
	// Delete deletes the FLJob; it lingers, marked deleted, while it has
	// finalizers. A missing FLJob is no error.
	Delete(ctx context.Context, job *fljobv1.FLJob) error
	// SetFinalizer adds or removes the controller's finalizer.
	SetFinalizer(ctx context.Context, job *fljobv1.FLJob, present bool) error
}

// Recorder emits events about FLJobs. client-go's events.EventRecorder is
// one; the single-host store provides another.
type Recorder interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Result says when to reconcile an FLJob again.
type Result struct {
	RequeueAfter time.Duration
}

// Timings of the reconciler itself.
const (
	// DefaultResync is how often an unfinished FLJob is looked at even
	// when nothing reports a change.
	DefaultResync = time.Minute
	// conflictRetry is how soon a status write that lost a race is tried
	// again.
	conflictRetry = 200 * time.Millisecond
)

// Reconciler drives FLJobs towards their end on one backend. It holds no
// state of its own: everything it knows comes from the Store and the
// Backend, so a restart loses nothing.
type Reconciler struct {
	Store    Store
	Backend  backends.Backend
	Recorder Recorder
	Policy   Policy
	Clock    clock.PassiveClock
	Metrics  *Metrics
	// Resync bounds the wait between two looks at an unfinished FLJob.
	Resync time.Duration
}

// Reconcile brings one FLJob one step closer to its end.
func (r *Reconciler) Reconcile(ctx context.Context, key backends.Key) (Result, error) {
	job, err := r.Store.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return Result{}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("get FLJob: %w", err)
	}
	log := ctrllog.FromContext(ctx).WithValues("fljob", klog.KObj(job))
	ctx = ctrllog.IntoContext(ctx, log)

	if job.DeletionTimestamp != nil {
		return r.retryConflict(r.finalize(ctx, job))
	}
	if !hasFinalizer(job) {
		if err := r.Store.SetFinalizer(ctx, job, true); err != nil {
			return r.retryConflict(fmt.Errorf("add finalizer: %w", err))
		}
	}

	// Observe, decide, act, then write status once and emit its events.
	obs, err := r.observe(ctx, job)
	if err != nil {
		return Result{}, err
	}
	d := Decide(job, obs, r.Clock.Now(), r.Policy)
	d, err = r.act(ctx, job, d)
	if err != nil {
		return Result{}, err
	}
	return r.finish(ctx, job, d)
}

// observe looks at the FLJob's current attempt; nil when it has none.
func (r *Reconciler) observe(ctx context.Context, job *fljobv1.FLJob) (*backends.Observation, error) {
	if job.Status.Attempts == 0 {
		return nil, nil
	}
	obs, err := r.Backend.Observe(ctx, refOf(job, job.Status.Attempts))
	if err != nil {
		return nil, fmt.Errorf("observe attempt %d: %w", job.Status.Attempts, err)
	}
	return &obs, nil
}

// act carries out the decision's action. Starting happens before the
// status write (a crash in between only makes the next Start adopt);
// stopping and deleting happen after it, so the cause is on record first.
func (r *Reconciler) act(ctx context.Context, job *fljobv1.FLJob, d Decision) (Decision, error) {
	if d.Action != ActionStart {
		return d, nil
	}
	now := r.Clock.Now()
	w, err := backends.FromFLJob(job, d.Attempt)
	if err != nil {
		return Fail(job, now, fljobv1.ReasonInvalidWorkload, err.Error()), nil
	}
	ctrllog.FromContext(ctx).V(2).Info("Starting workload", "attempt", d.Attempt)
	obs, err := r.Backend.Start(ctx, w)
	if perr, ok := backends.AsPermanent(err); ok {
		return Fail(job, now, perr.Reason, fmt.Sprintf("Attempt %d: %s", d.Attempt, perr.Message)), nil
	}
	if err != nil {
		r.Recorder.Eventf(job, nil, eventWarning, "FailedCreate", "Start",
			"Error creating workload for attempt %d: %v", d.Attempt, err)
		return d, fmt.Errorf("start attempt %d: %w", d.Attempt, err)
	}
	// Shortcoming: Backend.Start does not say whether it created or adopted
	// the workload, so an adoption after a crash is also reported as
	// SuccessfulCreate.
	started := job.DeepCopy()
	started.Status = d.Status
	next := Decide(started, &obs, now, r.Policy)
	next.Events = append(append(d.Events,
		Event{eventNormal, "SuccessfulCreate", fmt.Sprintf("Created %s workload %s for attempt %d",
			r.Backend.Name(), obs.Name, d.Attempt)}), next.Events...)
	return next, nil
}

// finish writes the status when it changed, emits the events, then stops
// or deletes as decided.
func (r *Reconciler) finish(ctx context.Context, job *fljobv1.FLJob, d Decision) (Result, error) {
	if w := d.Status.Workload; w != nil {
		w.Backend = r.Backend.Name()
	}
	if !equality.Semantic.DeepEqual(job.Status, d.Status) {
		old := job.Status
		job.Status = d.Status
		if err := r.Store.UpdateStatus(ctx, job); err != nil {
			return r.retryConflict(fmt.Errorf("update status: %w", err))
		}
		r.Metrics.statusChanged(job, &old, &d.Status)
		if d.Status.Attempts > old.Attempts {
			// Counted once the status holds the attempt: a Start that only
			// adopted the pod for a stale view of the FLJob loses this write.
			r.Metrics.attemptStarted(r.Backend.Name())
		}
	}
	for _, e := range d.Events {
		r.Recorder.Eventf(job, nil, e.Type, e.Reason, "Reconcile", "%s", e.Message)
	}

	switch d.Action {
	case ActionStop:
		ctrllog.FromContext(ctx).V(2).Info("Stopping workload", "attempt", job.Status.Attempts)
		if err := r.Backend.Stop(ctx, refOf(job, job.Status.Attempts), graceOf(job)); err != nil {
			return Result{}, fmt.Errorf("stop attempt %d: %w", job.Status.Attempts, err)
		}
	case ActionDelete:
		ctrllog.FromContext(ctx).V(2).Info("Deleting FLJob after its TTL")
		if err := r.Store.Delete(ctx, job); err != nil {
			return Result{}, fmt.Errorf("delete after TTL: %w", err)
		}
		return Result{}, nil
	}
	return Result{RequeueAfter: r.requeue(job, d.RequeueAfter)}, nil
}

// finalize stops and removes the workloads of a deleted FLJob, then lets
// it go.
func (r *Reconciler) finalize(ctx context.Context, job *fljobv1.FLJob) error {
	if !hasFinalizer(job) {
		return nil
	}
	if n := job.Status.Attempts; n > 0 {
		ctrllog.FromContext(ctx).V(2).Info("Stopping workload of deleted FLJob", "attempt", n)
		if err := r.Backend.Stop(ctx, refOf(job, n), graceOf(job)); err != nil {
			return fmt.Errorf("stop attempt %d: %w", n, err)
		}
	}
	if err := r.Backend.Remove(ctx, keyOf(job)); err != nil {
		return fmt.Errorf("remove workloads: %w", err)
	}
	r.Recorder.Eventf(job, nil, eventNormal, "SuccessfulDelete", "Delete",
		"Removed the workloads of %d attempt(s)", job.Status.Attempts)
	if err := r.Store.SetFinalizer(ctx, job, false); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("remove finalizer: %w", err)
	}
	return nil
}

// requeue bounds the wait of an unfinished FLJob by the resync period.
func (r *Reconciler) requeue(job *fljobv1.FLJob, after time.Duration) time.Duration {
	if job.Status.Phase.Finished() || r.Resync <= 0 {
		return after
	}
	if after == 0 || after > r.Resync {
		return r.Resync
	}
	return after
}

// retryConflict turns a lost write race into a quiet, quick retry.
func (r *Reconciler) retryConflict(err error) (Result, error) {
	if errors.Is(err, ErrConflict) {
		return Result{RequeueAfter: conflictRetry}, nil
	}
	return Result{}, err
}

func hasFinalizer(job *fljobv1.FLJob) bool {
	for _, f := range job.Finalizers {
		if f == Finalizer {
			return true
		}
	}
	return false
}

func keyOf(job *fljobv1.FLJob) backends.Key {
	return backends.Key{Namespace: job.Namespace, Name: job.Name}
}

func refOf(job *fljobv1.FLJob, attempt int32) backends.Ref {
	return backends.Ref{Key: keyOf(job), UID: string(job.UID), Attempt: attempt}
}

func graceOf(job *fljobv1.FLJob) time.Duration {
	if g := job.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return backends.DefaultStopGrace
}
