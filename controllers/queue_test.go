package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/backends/fake"
	"github.com/fljob-dev/fljob/controllers"
	"github.com/fljob-dev/fljob/test/builder"
)

// memStore is an in-memory controllers.Store with resource versions,
// finalizer semantics and change notifications.
type memStore struct {
	mu      sync.Mutex
	rv      int
	jobs    map[backends.Key]*fljobv1.FLJob
	changed chan backends.Key
}

func newMemStore() *memStore {
	return &memStore{jobs: map[backends.Key]*fljobv1.FLJob{}, changed: make(chan backends.Key, 1024)}
}

func key(job *fljobv1.FLJob) backends.Key {
	return backends.Key{Namespace: job.Namespace, Name: job.Name}
}

// put stores job (create or replace) under a new resource version.
func (s *memStore) put(job *fljobv1.FLJob) {
	s.mu.Lock()
	s.rv++
	job = job.DeepCopy()
	job.ResourceVersion = strconv.Itoa(s.rv)
	s.jobs[key(job)] = job
	s.mu.Unlock()
	s.changed <- key(job)
}

func (s *memStore) Get(_ context.Context, k backends.Key) (*fljobv1.FLJob, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	job, ok := s.jobs[k]
	if !ok {
		return nil, fmt.Errorf("fljob %s: %w", k, controllers.ErrNotFound)
	}
	return job.DeepCopy(), nil
}

// write applies fn to the stored copy of job if job is current.
func (s *memStore) write(job *fljobv1.FLJob, fn func(stored *fljobv1.FLJob) (remove bool)) error {
	s.mu.Lock()
	stored, ok := s.jobs[key(job)]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("fljob %s: %w", key(job), controllers.ErrNotFound)
	}
	if stored.ResourceVersion != job.ResourceVersion {
		s.mu.Unlock()
		return fmt.Errorf("fljob %s: %w", key(job), controllers.ErrConflict)
	}
	if fn(stored) {
		delete(s.jobs, key(job))
	} else {
		s.rv++
		stored.ResourceVersion = strconv.Itoa(s.rv)
		job.ResourceVersion = stored.ResourceVersion
	}
	s.mu.Unlock()
	s.changed <- key(job)
	return nil
}

func (s *memStore) UpdateStatus(_ context.Context, job *fljobv1.FLJob) error {
	return s.write(job, func(stored *fljobv1.FLJob) bool {
		stored.Status = *job.Status.DeepCopy()
		return false
	})
}

func (s *memStore) Delete(_ context.Context, job *fljobv1.FLJob) error {
	s.mu.Lock()
	stored, ok := s.jobs[key(job)]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	job = job.DeepCopy()
	job.ResourceVersion = stored.ResourceVersion
	return s.write(job, func(stored *fljobv1.FLJob) bool {
		if len(stored.Finalizers) == 0 {
			return true
		}
		if stored.DeletionTimestamp == nil {
			stored.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		}
		return false
	})
}

func (s *memStore) SetFinalizer(_ context.Context, job *fljobv1.FLJob, present bool) error {
	return s.write(job, func(stored *fljobv1.FLJob) bool {
		stored.Finalizers = nil
		if present {
			stored.Finalizers = []string{controllers.Finalizer}
		}
		job.Finalizers = stored.Finalizers
		return !present && stored.DeletionTimestamp != nil
	})
}

func (s *memStore) list(context.Context) ([]backends.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]backends.Key, 0, len(s.jobs))
	for k := range s.jobs {
		keys = append(keys, k)
	}
	return keys, nil
}

// watch is a controllers.Source of the store's changes.
func (s *memStore) watch(ctx context.Context, notify func(backends.Key)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case k := <-s.changed:
			notify(k)
		}
	}
}

type nopRecorder struct{}

func (nopRecorder) Eventf(runtime.Object, runtime.Object, string, string, string, string, ...any) {}

// harness runs a QueueRunner over a memStore and a fake backend.
type harness struct {
	t       *testing.T
	store   *memStore
	backend *fake.Backend
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, store: newMemStore(), backend: fake.New()}
}

// start runs a runner until the returned stop function is called.
func (h *harness) start(configure func(*controllers.QueueRunner)) (stop func()) {
	r := &controllers.QueueRunner{
		Reconciler: &controllers.Reconciler{
			Store: h.store, Backend: h.backend, Recorder: nopRecorder{},
			Policy: controllers.Policy{BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second},
			Clock:  clock.RealClock{},
		},
		List:       h.store.list,
		Sources:    []controllers.Source{h.store.watch},
		Workers:    2,
		ListResync: time.Hour,
	}
	if configure != nil {
		configure(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run() = %v", err)
		}
	}
	h.t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds or 10s pass.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) job(name string) *fljobv1.FLJob {
	job, err := h.store.Get(context.Background(), backends.Key{Namespace: "default", Name: name})
	if err != nil {
		return nil
	}
	return job
}

func (h *harness) phase(name string) fljobv1.Phase {
	if job := h.job(name); job != nil {
		return job.Status.Phase
	}
	return "Gone"
}

func ref(name string, attempt int32) backends.Ref {
	return backends.Ref{Key: backends.Key{Namespace: "default", Name: name}, Attempt: attempt}
}

func TestQueueRunnerDrivesJobsToTheirEnd(t *testing.T) {
	h := newHarness(t)
	codes := map[string]int32{"a": 0, "b": 1, "c": 0, "d": 3}
	for name := range codes {
		h.store.put(builder.FLJob(name).Obj())
	}
	h.start(nil)
	for name := range codes {
		h.eventually(name+" runs", func() bool { return h.phase(name) == fljobv1.PhaseRunning })
	}
	for name, code := range codes {
		h.backend.Exit(ref(name, 1), code, ptr.To(code))
	}
	want := map[string]fljobv1.Phase{"a": fljobv1.PhaseSucceeded, "b": fljobv1.PhaseFailed,
		"c": fljobv1.PhaseSucceeded, "d": fljobv1.PhaseFailed}
	h.eventually("every job finished", func() bool {
		for name := range codes {
			if !h.phase(name).Finished() {
				return false
			}
		}
		return true
	})
	got := map[string]fljobv1.Phase{}
	for name := range codes {
		got[name] = h.phase(name)
		if n := h.backend.Creates(ref(name, 1)); n != 1 {
			t.Errorf("%s: attempt 1 created %d times, want once", name, n)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
}

func TestQueueRunnerHonorsRequeueAfter(t *testing.T) {
	h := newHarness(t)
	// Nothing reports the deadline: only RequeueAfter can bring the job
	// back, as the list resync is an hour away and the store source is
	// left out.
	h.store.put(builder.FLJob("slow").ActiveDeadline(1).Obj())
	h.start(func(r *controllers.QueueRunner) { r.Sources = nil })
	h.eventually("the job runs", func() bool { return h.phase("slow") == fljobv1.PhaseRunning })
	h.eventually("the deadline fails the job", func() bool { return h.phase("slow") == fljobv1.PhaseFailed })
	if r := h.job("slow").Status.Reason; r != fljobv1.ReasonDeadlineExceeded {
		t.Errorf("reason = %q, want %q", r, fljobv1.ReasonDeadlineExceeded)
	}
	if _, obs, _ := h.backend.Workload(ref("slow", 1)); obs.State != backends.StateExited {
		t.Errorf("workload state = %s, want it stopped", obs.State)
	}
}

func TestQueueRunnerRetriesErrorsWithBackoff(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	failures := 0
	h.backend.OnStart = func(*backends.Workload) (backends.Observation, error) {
		mu.Lock()
		defer mu.Unlock()
		if failures < 3 {
			failures++
			return backends.Observation{}, errors.New("engine busy")
		}
		return backends.Observation{State: backends.StateRunning}, nil
	}
	h.store.put(builder.FLJob("flaky").Obj())
	h.start(func(r *controllers.QueueRunner) { r.Sources = nil })
	h.eventually("the job runs after the errors", func() bool { return h.phase("flaky") == fljobv1.PhaseRunning })
	mu.Lock()
	defer mu.Unlock()
	if failures != 3 {
		t.Errorf("start failed %d times, want 3", failures)
	}
	if n := h.backend.Creates(ref("flaky", 1)); n != 1 {
		t.Errorf("attempt 1 created %d times, want once", n)
	}
}

func TestQueueRunnerPeriodicResyncFindsNewJobs(t *testing.T) {
	h := newHarness(t)
	h.start(func(r *controllers.QueueRunner) {
		r.Sources = nil
		r.ListResync = 50 * time.Millisecond
	})
	h.store.put(builder.FLJob("late").Obj())
	h.eventually("the resync finds the job", func() bool { return h.phase("late") == fljobv1.PhaseRunning })
}

func TestQueueRunnerRestartAdoptsWorkloads(t *testing.T) {
	h := newHarness(t)
	names := []string{"r1", "r2", "r3"}
	for _, n := range names {
		h.store.put(builder.FLJob(n).Obj())
	}
	stop := h.start(nil)
	for _, n := range names {
		h.eventually(n+" runs", func() bool { return h.phase(n) == fljobv1.PhaseRunning })
	}
	stop()
	// While no controller runs, one job exits and another's is deleted.
	h.backend.Exit(ref("r1", 1), 0, nil)
	if err := h.store.Delete(context.Background(), h.job("r2")); err != nil {
		t.Fatal(err)
	}
	h.start(nil)
	h.eventually("r1 succeeds", func() bool { return h.phase("r1") == fljobv1.PhaseSucceeded })
	h.eventually("r2 is gone", func() bool { return h.phase("r2") == "Gone" })
	h.backend.Exit(ref("r3", 1), 2, nil)
	h.eventually("r3 fails", func() bool { return h.phase("r3") == fljobv1.PhaseFailed })

	var refs []string
	for _, r := range h.backend.Refs() {
		refs = append(refs, fmt.Sprintf("%s-%d", r.Name, r.Attempt))
	}
	sort.Strings(refs)
	if diff := cmp.Diff([]string{"r1-1", "r3-1"}, refs); diff != "" {
		t.Errorf("workloads (-want +got):\n%s", diff)
	}
	for _, n := range []string{"r1", "r3"} {
		if c := h.backend.Creates(ref(n, 1)); c != 1 {
			t.Errorf("%s: attempt 1 created %d times, want once", n, c)
		}
	}
}

func TestQueueRunnerRecoversFromPanics(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	panicked := false
	h.backend.OnStart = func(*backends.Workload) (backends.Observation, error) {
		mu.Lock()
		defer mu.Unlock()
		if !panicked {
			panicked = true
			panic("backend bug")
		}
		return backends.Observation{State: backends.StateRunning}, nil
	}
	h.store.put(builder.FLJob("p").Obj())
	h.start(nil)
	h.eventually("the job runs after the panic", func() bool { return h.phase("p") == fljobv1.PhaseRunning })
}
