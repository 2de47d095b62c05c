package kube

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/backends/k8s"
	"github.com/fljob-dev/fljob/controllers"
	"github.com/fljob-dev/fljob/test/builder"
	"github.com/fljob-dev/fljob/test/kwok"
)

// TestKube runs the whole suite on one control plane. The tests of the
// first group run in parallel, each in its own namespace with its own
// manager; the 200-FLJob run comes alone afterwards, so that its time
// measures the controller rather than its neighbours.
func TestKube(t *testing.T) {
	s := newSuite(t)
	t.Run("controller", func(t *testing.T) {
		t.Run("a server job runs its lifecycle to Succeeded", s.serverLifecycle)
		t.Run("a client job fails with exit code 1 and return code 101", s.clientFailure)
		t.Run("exit and return codes reach status", s.exitCodes)
		t.Run("the pending deadline fails a pod that never starts", s.pendingDeadline)
		t.Run("activeDeadlineSeconds stops the job", s.activeDeadline)
		t.Run("backoffLimit retries as a second attempt after the backoff", s.backoff)
		t.Run("ttlSecondsAfterFinished deletes the FLJob on time", s.ttl)
		t.Run("deleting a running FLJob deletes its pod and service", s.deleteRunning)
		t.Run("a restarted manager makes no second pod", s.restart)
		t.Run("a pod created before a crash is adopted", s.adoptAfterCrash)
		t.Run("kubectl shows the columns and the events", s.kubectl)
	})
	t.Run("200 FLJobs at once reach their terminal phase", s.bulk)
}

// outcome is what the suite compares of a finished FLJob's status.
type outcome struct {
	Phase              fljobv1.Phase
	Reason             string
	ExitCode           *int32
	ReturnCode         *int32
	Attempts, Failed   int32
	ObservedGeneration int64
}

func outcomeOf(job *fljobv1.FLJob) outcome {
	st := job.Status
	return outcome{st.Phase, st.Reason, st.ExitCode, st.ReturnCode, st.Attempts, st.Failed,
		st.ObservedGeneration}
}

// checkCondition checks the status, reason and observedGeneration of one
// condition.
func checkCondition(t *testing.T, job *fljobv1.FLJob, typ string, status metav1.ConditionStatus,
	reason string) {
	t.Helper()
	c := condition(job, typ)
	type cond struct {
		Status             metav1.ConditionStatus
		Reason             string
		ObservedGeneration int64
	}
	want := cond{status, reason, job.Generation}
	if diff := cmp.Diff(want, cond{c.Status, c.Reason, c.ObservedGeneration}); diff != "" {
		t.Errorf("condition %s (-want +got):\n%s", typ, diff)
	}
}

// checkMessage checks that the status message holds every part.
func checkMessage(t *testing.T, job *fljobv1.FLJob, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(job.Status.Message, p) {
			t.Errorf("status message %q does not contain %q", job.Status.Message, p)
		}
	}
}

// terminatedOf returns the job container's terminated state.
func terminatedOf(t *testing.T, pod *corev1.Pod) *corev1.ContainerStateTerminated {
	t.Helper()
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == k8s.ContainerName && cs.State.Terminated != nil {
			return cs.State.Terminated
		}
	}
	t.Fatalf("pod %s has no terminated container %s: %+v", pod.Name, k8s.ContainerName, pod.Status)
	return nil
}

func (s *suite) serverLifecycle(t *testing.T) {
	t.Parallel()
	n := s.namespace(t, "server")
	m := n.startManager(managerOptions{})
	job := n.create(builder.FLJob("fl-server").Server().Args(run(5*time.Second, 0, 0)...))

	// Running: its pod runs on the fake node, behind the FLJob's Service.
	running := n.waitPhase(job.Name, fljobv1.PhaseRunning)
	pod := n.pod(job.Name, 1)
	if pod.Status.Phase != corev1.PodRunning || pod.Spec.NodeName != kwok.NodeName {
		t.Errorf("pod phase %s on node %q, want Running on %s",
			pod.Status.Phase, pod.Spec.NodeName, kwok.NodeName)
	}
	if got := pod.Spec.Containers[0].TerminationMessagePath; got != rcFile {
		t.Errorf("termination message path %q, want the return code file %q", got, rcFile)
	}
	wantRef := &fljobv1.WorkloadRef{
		Backend: k8s.Name, Name: "fl-server-1", ID: string(pod.UID), Attempt: 1,
	}
	if diff := cmp.Diff(wantRef, running.Status.Workload); diff != "" {
		t.Errorf("status.workload (-want +got):\n%s", diff)
	}
	checkCondition(t, running, fljobv1.ConditionRunning, metav1.ConditionTrue, fljobv1.ReasonStarted)
	if running.Status.StartTime == nil {
		t.Error("status.startTime is not set while running")
	}
	svc := &corev1.Service{}
	if err := s.c.Get(n.ctx, client.ObjectKey{Namespace: n.name, Name: job.Name}, svc); err != nil {
		t.Fatalf("get service: %v", err)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8002 ||
		svc.Spec.Selector[backends.LabelUID] != string(job.UID) {
		t.Errorf("service ports %+v selector %v, want port 8002 selecting the FLJob's uid",
			svc.Spec.Ports, svc.Spec.Selector)
	}
	if owner := metav1.GetControllerOf(svc); owner == nil || owner.UID != job.UID {
		t.Errorf("service controller = %+v, want the FLJob", owner)
	}

	// Succeeded once the probe exits 0 having written return code 0.
	done := n.waitPhase(job.Name, fljobv1.PhaseSucceeded)
	want := outcome{fljobv1.PhaseSucceeded, fljobv1.ReasonSucceeded, ptr.To[int32](0), ptr.To[int32](0),
		1, 0, done.Generation}
	if diff := cmp.Diff(want, outcomeOf(done)); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	checkMessage(t, done, "exited with code 0", "NVFlare return code 0 (success)")
	checkCondition(t, done, fljobv1.ConditionComplete, metav1.ConditionTrue, fljobv1.ReasonSucceeded)
	checkCondition(t, done, fljobv1.ConditionRunning, metav1.ConditionFalse, fljobv1.ReasonSucceeded)
	pod = n.pod(job.Name, 1)
	term := terminatedOf(t, pod)
	st := done.Status
	switch {
	case st.StartTime == nil || st.CompletionTime == nil:
		t.Errorf("start %v, completion %v: want both", st.StartTime, st.CompletionTime)
	case !st.CompletionTime.Equal(&term.FinishedAt):
		t.Errorf("completionTime %v, want the container's finish %v",
			st.CompletionTime, term.FinishedAt)
	case st.StartTime.After(pod.CreationTimestamp.Time) || st.CompletionTime.Before(st.StartTime):
		t.Errorf("start %v, pod created %v, completion %v: out of order",
			st.StartTime, pod.CreationTimestamp, st.CompletionTime)
	}

	events := n.waitEvents(done, event{"Normal", "SuccessfulCreate"}, event{"Normal", "Completed"})
	if got := countReason(events, "SuccessfulCreate"); got != 1 {
		t.Errorf("%d SuccessfulCreate events, want 1:%s", got, describeEvents(events))
	}
	backend := map[string]string{"backend": k8s.Name}
	if got := counter(t, m.metrics, "fljob_attempts_started_total", backend); got != 1 {
		t.Errorf("fljob_attempts_started_total = %v, want 1", got)
	}
	finished := map[string]string{"result": "Succeeded", "reason": fljobv1.ReasonSucceeded}
	if got := counter(t, m.metrics, "fljob_jobs_finished_total", finished); got != 1 {
		t.Errorf("fljob_jobs_finished_total%v = %v, want 1", finished, got)
	}
	role := map[string]string{"role": "Server"}
	if got := counter(t, m.metrics, "fljob_launch_latency_seconds", role); got != 1 {
		t.Errorf("fljob_launch_latency_seconds observations = %v, want 1", got)
	}
}

func (s *suite) clientFailure(t *testing.T) {
	t.Parallel()
	n := s.namespace(t, "client")
	n.startManager(managerOptions{})
	rc := fljobv1.ReturnCodeException
	job := n.create(builder.FLJob("site-1-job").Args(run(time.Second, 1, rc)...))

	done := n.waitPhase(job.Name, fljobv1.PhaseFailed)
	want := outcome{fljobv1.PhaseFailed, fljobv1.ReasonBackoffLimitExceeded, ptr.To[int32](1), ptr.To(rc),
		1, 1, done.Generation}
	if diff := cmp.Diff(want, outcomeOf(done)); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	checkMessage(t, done, "exited with code 1", "NVFlare return code 101 (exception)", "backoffLimit 0")
	checkCondition(t, done, fljobv1.ConditionFailed, metav1.ConditionTrue,
		fljobv1.ReasonBackoffLimitExceeded)
	if c := condition(done, fljobv1.ConditionComplete); c.Type != "" {
		t.Errorf("a failed FLJob has a Complete condition: %+v", c)
	}

	// The failed pod stays for its logs; a client job has no Service.
	pod := n.pod(job.Name, 1)
	if term := terminatedOf(t, pod); pod.Status.Phase != corev1.PodFailed || term.ExitCode != 1 {
		t.Errorf("pod phase %s exit %d, want Failed with 1", pod.Status.Phase, term.ExitCode)
	}
	var svcs corev1.ServiceList
	if err := s.c.List(n.ctx, &svcs, client.InNamespace(n.name)); err != nil {
		t.Fatalf("list services: %v", err)
	}
	if len(svcs.Items) != 0 {
		t.Errorf("a client job has %d services, want none", len(svcs.Items))
	}
	n.waitEvents(done, event{"Normal", "SuccessfulCreate"},
		event{"Warning", fljobv1.ReasonBackoffLimitExceeded})
}

// exitCodes runs one FLJob per exit code NVFlare's return codes use, each
// writing the same return code, and one that writes no return code file.
func (s *suite) exitCodes(t *testing.T) {
	t.Parallel()
	n := s.namespace(t, "codes")
	n.startManager(managerOptions{workers: 4})
	codes := []int32{0, 1, 9, 101, 102, 103, 104}
	names := map[string]int32{}
	for _, code := range codes {
		name := "code-" + itoa(code)
		names[name] = code
		n.create(builder.FLJob(name).Args(run(0, code, code)...))
	}
	n.create(builder.FLJob("no-rc").Args(kwok.Run{Exit: 2}.Args()...))

	for name, code := range names {
		job := n.waitJob(name, name+" finished", finished)
		want := outcome{fljobv1.PhaseFailed, fljobv1.ReasonBackoffLimitExceeded, ptr.To(code),
			ptr.To(code), 1, 1, job.Generation}
		if code == 0 {
			want.Phase, want.Reason, want.Failed = fljobv1.PhaseSucceeded, fljobv1.ReasonSucceeded, 0
		}
		if diff := cmp.Diff(want, outcomeOf(job)); diff != "" {
			t.Errorf("%s: status (-want +got):\n%s", name, diff)
		}
		checkMessage(t, job, "exited with code "+itoa(code),
			"NVFlare return code "+itoa(code)+" ("+controllers.ReturnCodeText(code)+")")
	}
	job := n.waitJob("no-rc", "no-rc finished", finished)
	want := outcome{fljobv1.PhaseFailed, fljobv1.ReasonBackoffLimitExceeded, ptr.To[int32](2), nil,
		1, 1, job.Generation}
	if diff := cmp.Diff(want, outcomeOf(job)); diff != "" {
		t.Errorf("no-rc: status (-want +got):\n%s", diff)
	}
	if strings.Contains(job.Status.Message, "return code") {
		t.Errorf("no-rc: message %q mentions a return code it never wrote", job.Status.Message)
	}
}

func itoa(v int32) string { return strconv.Itoa(int(v)) }

func finished(j *fljobv1.FLJob) bool { return j.Status.Phase.Finished() }

func (s *suite) pendingDeadline(t *testing.T) {
	t.Parallel()
	n := s.namespace(t, "pending")
	n.startManager(managerOptions{})
	image := kwok.ImageNeverStarts + ":v1"
	job := n.create(builder.FLJob("never").Image(image).PendingDeadline(5).Args(kwok.Forever()...))

	// While it waits, status says why.
	waiting := n.waitJob(job.Name, "waiting on the image", func(j *fljobv1.FLJob) bool {
		return j.Status.Reason == "ErrImageNeverPull"
	})
	if waiting.Status.Phase != fljobv1.PhasePending {
		t.Errorf("phase while waiting = %s, want Pending", waiting.Status.Phase)
	}
	checkMessage(t, waiting, "waits to start", image)
	pod := n.pod(job.Name, 1)

	done := n.waitPhase(job.Name, fljobv1.PhaseFailed)
	want := outcome{fljobv1.PhaseFailed, fljobv1.ReasonPendingDeadlineExceeded, nil, nil,
		1, 0, done.Generation}
	if diff := cmp.Diff(want, outcomeOf(done)); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	checkMessage(t, done, "pendingDeadlineSeconds (5s)", "ErrImageNeverPull", image)
	checkCondition(t, done, fljobv1.ConditionFailed, metav1.ConditionTrue,
		fljobv1.ReasonPendingDeadlineExceeded)
	if d := done.Status.CompletionTime.Sub(pod.CreationTimestamp.Time); d < 5*time.Second {
		t.Errorf("failed %v after the pod's creation, before the 5s pending deadline", d)
	}
	n.waitGone(pod)
	n.waitEvents(done, event{"Warning", fljobv1.ReasonPendingDeadlineExceeded})
}

func (s *suite) activeDeadline(t *testing.T) {
	t.Parallel()
	n := s.namespace(t, "deadline")
	n.startManager(managerOptions{})
	job := n.create(builder.FLJob("deadline").ActiveDeadline(5).Args(kwok.Forever()...))

	n.waitPhase(job.Name, fljobv1.PhaseRunning)
	pod := n.pod(job.Name, 1)
	done := n.waitPhase(job.Name, fljobv1.PhaseFailed)
	want := outcome{fljobv1.PhaseFailed, fljobv1.ReasonDeadlineExceeded, nil, nil,
		1, 0, done.Generation}
	if diff := cmp.Diff(want, outcomeOf(done)); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	checkMessage(t, done, "activeDeadlineSeconds (5s)")
	checkCondition(t, done, fljobv1.ConditionFailed, metav1.ConditionTrue,
		fljobv1.ReasonDeadlineExceeded)
	// Both times are whole seconds, rounded down: the difference keeps the
	// bound.
	if d := done.Status.CompletionTime.Sub(done.Status.StartTime.Time); d < 5*time.Second {
		t.Errorf("failed %v after its start, before activeDeadlineSeconds", d)
	}
	n.waitGone(pod)
	n.waitEvents(done, event{"Warning", fljobv1.ReasonDeadlineExceeded})
}

func (s *suite) backoff(t *testing.T) {
	t.Parallel()
	n := s.namespace(t, "backoff")
	n.startManager(managerOptions{})
	rc := fljobv1.ReturnCodeExecutionError
	job := n.create(builder.FLJob("retry").BackoffLimit(1).Args(run(time.Second, 1, rc)...))

	backingOff := n.waitJob(job.Name, "backing off", func(j *fljobv1.FLJob) bool {
		return j.Status.Reason == fljobv1.ReasonBackoff
	})
	if st := backingOff.Status; st.Phase != fljobv1.PhasePending || st.Attempts != 1 || st.Failed != 1 {
		t.Errorf("while backing off: phase %s, attempts %d, failed %d; want Pending, 1, 1",
			st.Phase, st.Attempts, st.Failed)
	}
	checkMessage(t, backingOff, "Attempt 1 exited with code 1", "retrying in 2s")

	done := n.waitPhase(job.Name, fljobv1.PhaseFailed)
	want := outcome{fljobv1.PhaseFailed, fljobv1.ReasonBackoffLimitExceeded, ptr.To[int32](1), ptr.To(rc),
		2, 2, done.Generation}
	if diff := cmp.Diff(want, outcomeOf(done)); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	checkMessage(t, done, "Attempt 2 exited with code 1", "backoffLimit 1")

	pods := n.pods(job.Name)
	var names []string
	for _, p := range pods {
		names = append(names, p.Name+" attempt="+p.Labels[backends.LabelAttempt]+" "+string(p.Status.Phase))
	}
	wantPods := []string{"retry-1 attempt=1 Failed", "retry-2 attempt=2 Failed"}
	if diff := cmp.Diff(wantPods, names); diff != "" {
		t.Fatalf("pods (-want +got):\n%s", diff)
	}
	ref := done.Status.Workload
	if ref == nil || ref.Name != "retry-2" || ref.ID != string(pods[1].UID) {
		t.Errorf("status.workload = %+v, want the second pod", ref)
	}
	// Whole seconds rounded down on both sides keep the bound.
	gap := pods[1].CreationTimestamp.Sub(terminatedOf(t, &pods[0]).FinishedAt.Time)
	if gap < testPolicy.BackoffBase {
		t.Errorf("second attempt created %v after the first failed, before the %v backoff",
			gap, testPolicy.BackoffBase)
	}
	events := n.waitEvents(done, event{"Warning", fljobv1.ReasonBackoff},
		event{"Warning", fljobv1.ReasonBackoffLimitExceeded})
	if got := countReason(events, "SuccessfulCreate"); got != 2 {
		t.Errorf("%d SuccessfulCreate events, want 2:%s", got, describeEvents(events))
	}
}

func (s *suite) ttl(t *testing.T) {
	t.Parallel()
	n := s.namespace(t, "ttl")
	n.startManager(managerOptions{})
	const ttl = 3 * time.Second
	job := n.create(builder.FLJob("ttl").TTL(int32(ttl.Seconds())).Args(run(0, 0, 0)...))

	done := n.waitPhase(job.Name, fljobv1.PhaseSucceeded)
	completed := done.Status.CompletionTime.Time
	n.waitGone(done)
	gone := time.Now()

	// Nothing changes when the TTL passes: only the requeue of the finished
	// FLJob can delete it then. The resync is a minute away.
	if d := gone.Sub(completed); d < ttl || d > ttl+15*time.Second {
		t.Errorf("deleted %v after completion, want %v (generously bounded)", d, ttl)
	}
	n.waitGone(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: n.name, Name: "ttl-1"}})
	n.waitEvents(done, event{"Normal", "Completed"}, event{"Normal", "SuccessfulDelete"})
}

func (s *suite) deleteRunning(t *testing.T) {
	t.Parallel()
	n := s.namespace(t, "delete")
	n.startManager(managerOptions{})
	job := n.create(builder.FLJob("doomed").Server().Grace(7).Args(kwok.Forever()...))
	running := n.waitPhase(job.Name, fljobv1.PhaseRunning)
	pod := n.pod(job.Name, 1)

	// Watch the pod from before the deletion, to see the grace it gets.
	w, err := s.cs.CoreV1().Pods(n.name).Watch(n.ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", pod.Name).String(),
		ResourceVersion: pod.ResourceVersion,
	})
	if err != nil {
		t.Fatalf("watch pod: %v", err)
	}
	defer w.Stop()

	if err := s.c.Delete(n.ctx, running); err != nil {
		t.Fatalf("delete FLJob: %v", err)
	}
	grace := podGrace(n.ctx, t, w)
	if grace == nil || *grace != 7 {
		t.Errorf("pod deleted with grace %v, want the FLJob's 7s", ptrString(grace))
	}
	n.waitGone(pod)
	n.waitGone(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: n.name, Name: job.Name}})
	n.waitGone(running)
	n.waitEvents(running, event{"Normal", "SuccessfulDelete"})
}

// podGrace follows the pod's watch until it is deleted and returns the
// grace period of its first deletion.
func podGrace(ctx context.Context, t *testing.T, w watch.Interface) *int64 {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case e, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("pod watch ended before the pod was deleted")
			}
			pod, isPod := e.Object.(*corev1.Pod)
			if isPod && pod.DeletionTimestamp != nil {
				return pod.DeletionGracePeriodSeconds
			}
		case <-timeout:
			t.Fatal("the pod was not deleted")
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}

func ptrString(p *int64) string {
	if p == nil {
		return "<nil>"
	}
	return strconv.FormatInt(*p, 10) + "s"
}

func (s *suite) restart(t *testing.T) {
	t.Parallel()
	n := s.namespace(t, "restart")
	first := n.startManager(managerOptions{})
	job := n.create(builder.FLJob("restart").Args(run(6*time.Second, 0, 0)...))
	n.waitPhase(job.Name, fljobv1.PhaseRunning)
	pod := n.pod(job.Name, 1)

	// The first manager stops while the job runs; a second one, with
	// nothing in memory, takes over and sees it to its end.
	first.stop()
	second := n.startManager(managerOptions{})
	done := n.waitPhase(job.Name, fljobv1.PhaseSucceeded)

	pods := n.pods(job.Name)
	if len(pods) != 1 || pods[0].UID != pod.UID {
		t.Fatalf("%d pods after the restart, want only the first one (uid %s)", len(pods), pod.UID)
	}
	if st := done.Status; st.Attempts != 1 || st.Workload == nil || st.Workload.ID != string(pod.UID) {
		t.Errorf("attempts %d, workload %+v; want 1 and the first pod", st.Attempts, st.Workload)
	}
	started := func(m *manager) float64 {
		return counter(t, m.metrics, "fljob_attempts_started_total", nil)
	}
	if a, b := started(first), started(second); a != 1 || b != 0 {
		t.Errorf("attempts started by the first and second manager: %v and %v, want 1 and 0", a, b)
	}
	events := n.waitEvents(done, event{"Normal", "Completed"})
	if got := countReason(events, "SuccessfulCreate"); got != 1 {
		t.Errorf("%d SuccessfulCreate events, want 1:%s", got, describeEvents(events))
	}
}

// adoptAfterCrash leaves what a controller that crashed between creating
// an attempt's pod and writing the FLJob's status leaves: the pod, and a
// status that does not know it. The manager started next adopts the pod.
func (s *suite) adoptAfterCrash(t *testing.T) {
	t.Parallel()
	n := s.namespace(t, "adopt")
	job := n.create(builder.FLJob("adopt").Args(run(2*time.Second, 0, 0)...))
	w, err := backends.FromFLJob(job, 1)
	if err != nil {
		t.Fatalf("FromFLJob: %v", err)
	}
	obs, err := k8s.New(s.c, k8s.Options{}).Start(n.ctx, w)
	if err != nil {
		t.Fatalf("start the pod before the crash: %v", err)
	}

	n.startManager(managerOptions{})
	done := n.waitPhase(job.Name, fljobv1.PhaseSucceeded)
	pods := n.pods(job.Name)
	if len(pods) != 1 || string(pods[0].UID) != obs.ID {
		t.Fatalf("%d pods, want only the one made before the crash (uid %s)", len(pods), obs.ID)
	}
	if ref := done.Status.Workload; done.Status.Attempts != 1 || ref == nil || ref.ID != obs.ID {
		t.Errorf("attempts %d, workload %+v; want 1 and the adopted pod", done.Status.Attempts, ref)
	}
}
