package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/backends/fake"
	"github.com/fljob-dev/fljob/test/builder"
)

// memStore is a Store in memory that counts status writes and can be told
// to fail them.
type memStore struct {
	mu           sync.Mutex
	jobs         map[backends.Key]*fljobv1.FLJob
	statusWrites int
	failStatus   error
}

func newMemStore(jobs ...*fljobv1.FLJob) *memStore {
	s := &memStore{jobs: map[backends.Key]*fljobv1.FLJob{}}
	for _, j := range jobs {
		s.jobs[keyOf(j)] = j.DeepCopy()
	}
	return s
}

func (s *memStore) Get(_ context.Context, key backends.Key) (*fljobv1.FLJob, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[key]
	if !ok {
		return nil, fmt.Errorf("FLJob %s: %w", key, ErrNotFound)
	}
	return j.DeepCopy(), nil
}

func (s *memStore) UpdateStatus(_ context.Context, job *fljobv1.FLJob) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failStatus; err != nil {
		s.failStatus = nil
		return err
	}
	s.statusWrites++
	s.jobs[keyOf(job)].Status = *job.Status.DeepCopy()
	return nil
}

func (s *memStore) Delete(_ context.Context, job *fljobv1.FLJob) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[keyOf(job)]
	switch {
	case !ok:
	case len(j.Finalizers) > 0:
		j.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	default:
		delete(s.jobs, keyOf(job))
	}
	return nil
}

func (s *memStore) SetFinalizer(_ context.Context, job *fljobv1.FLJob, present bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[keyOf(job)]
	if !ok {
		return fmt.Errorf("FLJob %s: %w", keyOf(job), ErrNotFound)
	}
	j.Finalizers = nil
	if present {
		j.Finalizers = []string{Finalizer}
	} else if j.DeletionTimestamp != nil {
		delete(s.jobs, keyOf(job))
	}
	job.Finalizers = j.Finalizers
	return nil
}

func (s *memStore) job(t *testing.T, name string) *fljobv1.FLJob {
	t.Helper()
	j, err := s.Get(context.Background(), backends.Key{Namespace: "default", Name: name})
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return j
}

// events records the reasons of emitted events.
type events struct {
	mu      sync.Mutex
	reasons []string
}

func (e *events) Eventf(_, _ runtime.Object, _, reason, _, _ string, _ ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reasons = append(e.reasons, reason)
}

type harness struct {
	store   *memStore
	backend *fake.Backend
	events  *events
	clock   *clocktesting.FakeClock
	r       *Reconciler
}

func newHarness(jobs ...*fljobv1.FLJob) *harness {
	h := &harness{store: newMemStore(jobs...), backend: fake.New(), events: &events{},
		clock: clocktesting.NewFakeClock(t0)}
	h.backend.Clock = h.clock
	h.r = h.restart()
	return h
}

// restart returns a new Reconciler over the same store and backend, as a
// restarted controller would have: it keeps nothing in memory.
func (h *harness) restart() *Reconciler {
	return &Reconciler{Store: h.store, Backend: h.backend, Recorder: h.events,
		Policy: Policy{BackoffBase: time.Second, BackoffMax: time.Minute}, Clock: h.clock}
}

func (h *harness) reconcile(t *testing.T, name string) Result {
	t.Helper()
	res, err := h.r.Reconcile(context.Background(), backends.Key{Namespace: "default", Name: name})
	if err != nil {
		t.Fatalf("reconcile %s: %v", name, err)
	}
	return res
}

func ref(name string, attempt int32) backends.Ref {
	return backends.Ref{Key: backends.Key{Namespace: "default", Name: name}, Attempt: attempt}
}

func TestReconcileLifecycle(t *testing.T) {
	h := newHarness(builder.FLJob("a").Obj())

	h.reconcile(t, "a")
	job := h.store.job(t, "a")
	if job.Status.Phase != fljobv1.PhaseRunning || job.Status.Attempts != 1 {
		t.Fatalf("after the first reconcile: phase %s, attempts %d", job.Status.Phase, job.Status.Attempts)
	}
	if diff := cmp.Diff([]string{Finalizer}, job.Finalizers); diff != "" {
		t.Errorf("finalizers (-want +got):\n%s", diff)
	}
	if w := job.Status.Workload; w == nil || w.Backend != fake.Name || w.Attempt != 1 {
		t.Errorf("workload = %+v", w)
	}

	h.clock.Step(30 * time.Second)
	h.backend.Exit(ref("a", 1), 0, code(0))
	h.reconcile(t, "a")
	job = h.store.job(t, "a")
	if job.Status.Phase != fljobv1.PhaseSucceeded || *job.Status.ReturnCode != 0 {
		t.Errorf("after exit 0: %+v", job.Status)
	}
	if !meta.IsStatusConditionTrue(job.Status.Conditions, fljobv1.ConditionComplete) {
		t.Errorf("Complete condition not True: %+v", job.Status.Conditions)
	}
	if diff := cmp.Diff([]string{"SuccessfulCreate", "Completed"}, h.events.reasons); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestStatusIsWrittenOnlyWhenChanged(t *testing.T) {
	h := newHarness(builder.FLJob("a").Obj())
	h.reconcile(t, "a")
	writes := h.store.statusWrites
	for range 3 {
		h.reconcile(t, "a")
	}
	if h.store.statusWrites != writes {
		t.Errorf("status written %d more times while nothing changed", h.store.statusWrites-writes)
	}
}

func TestCrashBeforeStatusWriteAdopts(t *testing.T) {
	h := newHarness(builder.FLJob("a").Obj())
	h.reconcile(t, "a") // adds the finalizer and starts attempt 1
	h.backend.Exit(ref("a", 1), 1, nil)
	job := h.store.job(t, "a")
	job.Spec.BackoffLimit = ptr.To[int32](1)
	h.store.jobs[keyOf(job)].Spec = job.Spec

	// Attempt 1 failed; after the backoff attempt 2 starts, but the status
	// write that would record it is lost, as in a crash.
	h.reconcile(t, "a")
	h.clock.Step(2 * time.Second)
	h.store.failStatus = errors.New("connection refused")
	if _, err := h.r.Reconcile(context.Background(), keyOf(job)); err == nil {
		t.Fatal("the lost status write was not reported")
	}
	if h.backend.Creates(ref("a", 2)) != 1 {
		t.Fatalf("attempt 2 was not started")
	}

	h.r = h.restart()
	h.reconcile(t, "a")
	if n := h.backend.Creates(ref("a", 2)); n != 1 {
		t.Errorf("attempt 2 created %d times, want 1: a restart must adopt", n)
	}
	if got := len(h.backend.Refs()); got != 2 {
		t.Errorf("%d workloads, want 2 (one per attempt)", got)
	}
	if st := h.store.job(t, "a").Status; st.Attempts != 2 || st.Phase != fljobv1.PhaseRunning {
		t.Errorf("after the restart: attempts %d, phase %s", st.Attempts, st.Phase)
	}
}

func TestPermanentStartErrorFailsTheFLJob(t *testing.T) {
	h := newHarness(builder.FLJob("a").Obj())
	h.backend.OnStart = func(*backends.Workload) (backends.Observation, error) {
		return backends.Observation{}, backends.Permanent(fljobv1.ReasonInvalidWorkload,
			"job directory /srv/site-1/job-1: not a directory")
	}
	h.reconcile(t, "a")
	st := h.store.job(t, "a").Status
	if st.Phase != fljobv1.PhaseFailed || st.Reason != fljobv1.ReasonInvalidWorkload {
		t.Fatalf("phase %s reason %s", st.Phase, st.Reason)
	}
	if want := "Attempt 1: job directory /srv/site-1/job-1: not a directory"; st.Message != want {
		t.Errorf("message %q, want %q", st.Message, want)
	}
}

func TestTransientStartErrorIsRetried(t *testing.T) {
	h := newHarness(builder.FLJob("a").Obj())
	h.backend.OnStart = func(*backends.Workload) (backends.Observation, error) {
		return backends.Observation{}, errors.New("daemon unreachable")
	}
	if _, err := h.r.Reconcile(context.Background(), keyOf(builder.FLJob("a").Obj())); err == nil {
		t.Fatal("a failed start was not returned for a retry")
	}
	if st := h.store.job(t, "a").Status; st.Phase.Finished() {
		t.Errorf("a transient error finished the FLJob: %+v", st)
	}
	if diff := cmp.Diff([]string{"FailedCreate"}, h.events.reasons); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	h.backend.OnStart = nil
	h.reconcile(t, "a")
	if st := h.store.job(t, "a").Status; st.Phase != fljobv1.PhaseRunning {
		t.Errorf("the retry did not start the job: %+v", st)
	}
}

func TestFinishedFLJobNeverStartsAgain(t *testing.T) {
	h := newHarness(builder.FLJob("a").Obj())
	h.reconcile(t, "a")
	h.backend.Exit(ref("a", 1), 1, nil)
	h.reconcile(t, "a")
	if err := h.backend.Remove(context.Background(), keyOf(builder.FLJob("a").Obj())); err != nil {
		t.Fatal(err)
	}
	h.clock.Step(time.Hour)
	h.r = h.restart()
	h.reconcile(t, "a")
	if refs := h.backend.Refs(); len(refs) != 0 {
		t.Errorf("a failed FLJob started %v", refs)
	}
}

func TestDeletionStopsAndRemovesWorkloads(t *testing.T) {
	h := newHarness(builder.FLJob("a").Obj())
	h.reconcile(t, "a")
	if err := h.store.Delete(context.Background(), h.store.job(t, "a")); err != nil {
		t.Fatal(err)
	}
	h.reconcile(t, "a")
	if refs := h.backend.Refs(); len(refs) != 0 {
		t.Errorf("workloads left after deletion: %v", refs)
	}
	if _, err := h.store.Get(context.Background(), keyOf(builder.FLJob("a").Obj())); !errors.Is(err, ErrNotFound) {
		t.Errorf("the FLJob is still there: %v", err)
	}
}

func TestTTLDeletesOnTime(t *testing.T) {
	h := newHarness(builder.FLJob("a").TTL(30).Obj())
	h.reconcile(t, "a")
	h.backend.Exit(ref("a", 1), 0, nil)
	res := h.reconcile(t, "a")
	if res.RequeueAfter != 30*time.Second {
		t.Fatalf("requeue after %v, want the TTL of 30s", res.RequeueAfter)
	}
	h.clock.Step(30 * time.Second)
	h.reconcile(t, "a") // deletes: the FLJob lingers for its finalizer
	h.reconcile(t, "a") // finalizes
	if _, err := h.store.Get(context.Background(), keyOf(builder.FLJob("a").Obj())); !errors.Is(err, ErrNotFound) {
		t.Errorf("the FLJob outlived its TTL: %v", err)
	}
}

func TestConflictIsRetriedQuietly(t *testing.T) {
	h := newHarness(builder.FLJob("a").Obj())
	h.reconcile(t, "a")
	h.backend.Exit(ref("a", 1), 0, nil)
	h.store.failStatus = fmt.Errorf("stale: %w", ErrConflict)
	res, err := h.r.Reconcile(context.Background(), keyOf(builder.FLJob("a").Obj()))
	if err != nil || res.RequeueAfter != conflictRetry {
		t.Errorf("got (%+v, %v), want a quiet requeue after %v", res, err, conflictRetry)
	}
}

func TestUnfinishedFLJobIsResynced(t *testing.T) {
	h := newHarness(builder.FLJob("a").Obj())
	h.r.Resync = time.Minute
	if res := h.reconcile(t, "a"); res.RequeueAfter != time.Minute {
		t.Errorf("requeue after %v, want the resync period", res.RequeueAfter)
	}
}
