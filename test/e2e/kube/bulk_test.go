package kube

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/test/builder"
)

// Sizes of the bulk run.
const (
	bulkJobs     = 200
	bulkCreators = 10
	// bulkTimeout is generous on purpose: this is a correctness test; the
	// time it takes is measured and reported, not asserted.
	bulkTimeout = 4 * time.Minute
)

// bulk creates 200 FLJobs at once, each running for a second and exiting
// with one of NVFlare's return codes, and checks that every one reaches
// its terminal phase with its codes, on one attempt and one pod each. It
// logs how long that took.
func (s *suite) bulk(t *testing.T) {
	n := s.namespace(t, "bulk")
	m := n.startManager(managerOptions{workers: 8, quiet: true})
	codes := []int32{0, 1, 9, 101, 102, 103, 104}
	codeOf := func(i int) int32 { return codes[i%len(codes)] }
	name := func(i int) string { return fmt.Sprintf("bulk-%03d", i) }

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, bulkJobs)
	for w := range bulkCreators {
		wg.Go(func() {
			for i := w; i < bulkJobs; i += bulkCreators {
				job := builder.FLJob(name(i)).Namespace(n.name).UID("").
					Args(run(time.Second, codeOf(i), codeOf(i))...).Obj()
				if err := s.c.Create(n.ctx, job); err != nil {
					errs <- fmt.Errorf("create %s: %w", job.Name, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	created := time.Since(start)

	// Polled twice a second: listing 200 FLJobs more often would load the
	// machine being measured.
	var list fljobv1.FLJobList
	var started, finished int
	var allStarted time.Duration
	err := wait.PollUntilContextTimeout(n.ctx, 500*time.Millisecond, bulkTimeout, true,
		func(ctx context.Context) (bool, error) {
			if err := s.c.List(ctx, &list, client.InNamespace(n.name)); err != nil {
				return false, err
			}
			started, finished = 0, 0
			for i := range list.Items {
				if list.Items[i].Status.Attempts > 0 {
					started++
				}
				if list.Items[i].Status.Phase.Finished() {
					finished++
				}
			}
			if started == bulkJobs && allStarted == 0 {
				allStarted = time.Since(start)
			}
			return finished == bulkJobs, nil
		})
	if err != nil {
		t.Fatalf("waiting for every FLJob to finish: %v; %d of %d started, %d finished",
			err, started, len(list.Items), finished)
	}
	elapsed := time.Since(start)
	t.Logf("bulk: %d FLJobs created in %v; all with their pod created after %v "+
		"and all terminal after %v (%.1f FLJobs/s); creation to completion per FLJob: %s",
		bulkJobs, created.Round(time.Millisecond), allStarted.Round(100*time.Millisecond),
		elapsed.Round(100*time.Millisecond), bulkJobs/elapsed.Seconds(), spread(list.Items))

	// Every FLJob ended as its probe did, on its first and only attempt.
	got := map[string]outcome{}
	for i := range list.Items {
		j := &list.Items[i]
		got[j.Name] = outcomeOf(j)
	}
	want := map[string]outcome{}
	for i := range bulkJobs {
		code := codeOf(i)
		o := outcome{fljobv1.PhaseFailed, fljobv1.ReasonBackoffLimitExceeded, ptr.To(code), ptr.To(code),
			1, 1, 1}
		if code == 0 {
			o.Phase, o.Reason, o.Failed = fljobv1.PhaseSucceeded, fljobv1.ReasonSucceeded, 0
		}
		want[name(i)] = o
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}

	var pods corev1.PodList
	if err := s.c.List(n.ctx, &pods, client.InNamespace(n.name)); err != nil {
		t.Fatalf("list pods: %v", err)
	}
	if len(pods.Items) != bulkJobs {
		t.Errorf("%d pods for %d FLJobs, want one each", len(pods.Items), bulkJobs)
	}
	if got := counter(t, m.metrics, "fljob_attempts_started_total", nil); got != bulkJobs {
		t.Errorf("fljob_attempts_started_total = %v, want %d", got, bulkJobs)
	}
	if got := counter(t, m.metrics, "fljob_jobs_finished_total", nil); got != bulkJobs {
		t.Errorf("fljob_jobs_finished_total = %v, want %d", got, bulkJobs)
	}
}

// spread summarizes how long the FLJobs took from creation to completion,
// in whole seconds as the API stores both times. A maximum near the
// controller's resync period (a minute) would mean an FLJob waited for the
// resync instead of an event.
func spread(jobs []fljobv1.FLJob) string {
	var d []time.Duration
	for i := range jobs {
		if ct := jobs[i].Status.CompletionTime; ct != nil {
			d = append(d, ct.Sub(jobs[i].CreationTimestamp.Time))
		}
	}
	if len(d) == 0 {
		return "none completed"
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[int(q*float64(len(d)-1))] }
	return fmt.Sprintf("p50 %v, p90 %v, max %v", at(0.5), at(0.9), d[len(d)-1])
}
