package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/test/builder"
)

// staleViewStore serves one FLJob as a cache that has not yet seen the
// controller's last status write: it either loses every status write to
// that newer version (conflict) or accepts it.
type staleViewStore struct {
	job      *fljobv1.FLJob
	conflict bool
}

func (s *staleViewStore) Get(context.Context, backends.Key) (*fljobv1.FLJob, error) {
	return s.job.DeepCopy(), nil
}

func (s *staleViewStore) UpdateStatus(_ context.Context, job *fljobv1.FLJob) error {
	if s.conflict {
		return fmt.Errorf("%w: the object has been modified", ErrConflict)
	}
	s.job = job.DeepCopy()
	return nil
}

func (s *staleViewStore) Delete(context.Context, *fljobv1.FLJob) error             { return nil }
func (s *staleViewStore) SetFinalizer(context.Context, *fljobv1.FLJob, bool) error { return nil }

// adoptingBackend finds the attempt's workload already there, as the
// kubernetes backend does when Start meets an existing pod.
type adoptingBackend struct{ starts int }

func (b *adoptingBackend) Name() string { return "adopting" }

func (b *adoptingBackend) Start(_ context.Context, w *backends.Workload) (backends.Observation, error) {
	b.starts++
	return backends.Observation{State: backends.StateWaiting, Name: backends.WorkloadName(w.Ref), ID: "pod-uid",
		CreatedAt: time.Unix(100, 0)}, nil
}

func (b *adoptingBackend) Observe(context.Context, backends.Ref) (backends.Observation, error) {
	return backends.Observation{State: backends.StateAbsent}, nil
}

func (b *adoptingBackend) Stop(context.Context, backends.Ref, time.Duration) error { return nil }
func (b *adoptingBackend) Remove(context.Context, backends.Key) error              { return nil }

type discardEvents struct{}

func (discardEvents) Eventf(runtime.Object, runtime.Object, string, string, string, string, ...any) {}

// TestAttemptCountedOnlyWithItsStatus is a regression test: a reconcile
// working from a stale view of an FLJob (its first attempt's pod created,
// the status saying so not yet seen) starts the attempt again, which adopts
// the pod, and loses its status write. That attempt was counted once more
// by fljob_attempts_started_total; the envtest suite saw 205 for 200
// FLJobs.
func TestAttemptCountedOnlyWithItsStatus(t *testing.T) {
	tests := []struct {
		name     string
		conflict bool
		want     float64
	}{
		{"status write lost to a newer version", true, 0},
		{"status written", false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := builder.FLJob("j").Generation(1).Obj()
			job.Finalizers = []string{Finalizer}
			b := &adoptingBackend{}
			reg := prometheus.NewRegistry()
			m := NewMetrics(reg)
			r := &Reconciler{
				Store:    &staleViewStore{job: job, conflict: tt.conflict},
				Backend:  b,
				Recorder: discardEvents{},
				Policy:   DefaultPolicy,
				Clock:    clocktesting.NewFakePassiveClock(time.Unix(100, 0)),
				Metrics:  m,
			}
			if _, err := r.Reconcile(context.Background(), backends.Key{Namespace: "default", Name: "j"}); err != nil {
				t.Fatalf("Reconcile: %v", err)
			}
			if b.starts != 1 {
				t.Fatalf("Start called %d times, want 1", b.starts)
			}
			if got := attemptsStarted(t, reg); got != tt.want {
				t.Errorf("fljob_attempts_started_total = %v, want %v", got, tt.want)
			}
		})
	}
}

// attemptsStarted reads fljob_attempts_started_total from reg.
func attemptsStarted(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() == "fljob_attempts_started_total" {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
