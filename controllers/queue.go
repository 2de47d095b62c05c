package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/fljob-dev/fljob/backends"
)

// Defaults of a QueueRunner.
const (
	// DefaultWorkers is how many FLJobs a QueueRunner reconciles at once.
	DefaultWorkers = 4
	// DefaultListResync is how often a QueueRunner lists every FLJob
	// even when nothing reports a change.
	DefaultListResync = 30 * time.Second
)

// Source reports FLJobs that may have changed by calling notify, until ctx
// ends. A store's change notifications and a backend's watch are sources.
type Source func(ctx context.Context, notify func(backends.Key)) error

// QueueRunner drives a Reconciler without controller-runtime, for stores
// other than the Kubernetes API: a rate-limited work queue of FLJob keys
// from client-go, fed by change sources, the backend's watch and a periodic
// list of every FLJob, and drained by a fixed number of workers. It
// handles results as controller-runtime does: RequeueAfter adds the key
// again after that delay, an error adds it again after the rate limiter's
// backoff, success forgets its failures. A key is never reconciled by two
// workers at once.
//
// The runner keeps no state of its own either: after a crash, a new runner
// lists every FLJob and the Reconciler adopts the workloads that run.
type QueueRunner struct {
	Reconciler *Reconciler
	// List returns the key of every FLJob, for the first look at all of
	// them and the periodic resync.
	List func(ctx context.Context) ([]backends.Key, error)
	// Sources report changes. The Reconciler's backend is added as one
	// when it is a backends.Watcher.
	Sources []Source
	// Workers defaults to DefaultWorkers.
	Workers int
	// ListResync defaults to DefaultListResync.
	ListResync time.Duration
	// RateLimiter defaults to client-go's controller rate limiter: per-key
	// exponential backoff from 5ms to 1000s, and 10 qps overall.
	RateLimiter workqueue.TypedRateLimiter[backends.Key]
}

// Run lists every FLJob, then reconciles until ctx ends. It returns an
// error only when the first list fails; later failures are logged and
// retried.
func (r *QueueRunner) Run(ctx context.Context) error {
	log := ctrllog.FromContext(ctx).WithName("queue")
	keys, err := r.List(ctx)
	if err != nil {
		return fmt.Errorf("list FLJobs: %w", err)
	}
	rl := r.RateLimiter
	if rl == nil {
		rl = workqueue.DefaultTypedControllerRateLimiter[backends.Key]()
	}
	q := workqueue.NewTypedRateLimitingQueueWithConfig(rl,
		workqueue.TypedRateLimitingQueueConfig[backends.Key]{Name: "fljob"})
	for _, k := range keys {
		q.Add(k)
	}

	var wg sync.WaitGroup
	for _, src := range r.sources() {
		wg.Go(func() {
			if err := src(ctx, q.Add); err != nil && ctx.Err() == nil {
				log.Error(err, "Change source stopped; relying on the periodic resync")
			}
		})
	}
	wg.Go(func() { r.resync(ctx, q) })
	workers := r.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	log.V(1).Info("Starting workers", "workers", workers, "fljobs", len(keys))
	for range workers {
		wg.Go(func() {
			for r.next(ctx, q) {
			}
		})
	}
	<-ctx.Done()
	q.ShutDown()
	wg.Wait()
	return nil
}

// sources returns the configured sources and the backend's watch.
func (r *QueueRunner) sources() []Source {
	srcs := append([]Source(nil), r.Sources...)
	if w, ok := r.Reconciler.Backend.(backends.Watcher); ok {
		srcs = append(srcs, w.Watch)
	}
	return srcs
}

// resync adds every FLJob to the queue every ListResync until ctx ends.
func (r *QueueRunner) resync(ctx context.Context, q workqueue.TypedRateLimitingInterface[backends.Key]) {
	period := r.ListResync
	if period <= 0 {
		period = DefaultListResync
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		keys, err := r.List(ctx)
		if err != nil {
			ctrllog.FromContext(ctx).Error(err, "Cannot list FLJobs for the resync")
			continue
		}
		for _, k := range keys {
			q.Add(k)
		}
	}
}

// next reconciles one key from the queue; it returns false once the queue
// shut down.
func (r *QueueRunner) next(ctx context.Context, q workqueue.TypedRateLimitingInterface[backends.Key]) bool {
	key, shutdown := q.Get()
	if shutdown {
		return false
	}
	defer q.Done(key)
	log := ctrllog.FromContext(ctx).WithValues("fljob", key.String())
	res, err := r.reconcile(ctrllog.IntoContext(ctx, log), key)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			log.Error(err, "Reconcile failed; retrying with backoff")
		}
		q.AddRateLimited(key)
	case res.RequeueAfter > 0:
		q.Forget(key)
		q.AddAfter(key, res.RequeueAfter)
	default:
		q.Forget(key)
	}
	return true
}

// reconcile calls the Reconciler, turning a panic into an error as
// controller-runtime does, so that one bad FLJob cannot stop the others.
func (r *QueueRunner) reconcile(ctx context.Context, key backends.Key) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in reconcile: %v", p)
		}
	}()
	return r.Reconciler.Reconcile(ctx, key)
}
