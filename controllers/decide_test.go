package controllers

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/test/builder"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func at(s int) time.Time    { return t0.Add(time.Duration(s) * time.Second) }
func mt(s int) *metav1.Time { return &metav1.Time{Time: at(s)} }
func code(c int32) *int32   { return ptr.To(c) }
func running(n int32) fljobv1.FLJobStatus {
	return fljobv1.FLJobStatus{Phase: fljobv1.PhaseRunning, Attempts: n, StartTime: mt(0),
		Conditions: []metav1.Condition{{Type: fljobv1.ConditionRunning, Status: metav1.ConditionTrue,
			Reason: fljobv1.ReasonStarted, LastTransitionTime: metav1.Time{Time: at(1)}}}}
}

// backingOff is the status after n failed attempts, the last at 100s.
func backingOff(n int32) fljobv1.FLJobStatus {
	return fljobv1.FLJobStatus{Phase: fljobv1.PhasePending, Reason: fljobv1.ReasonBackoff,
		Attempts: n, Failed: n, StartTime: mt(0),
		Conditions: []metav1.Condition{{Type: fljobv1.ConditionRunning, Status: metav1.ConditionFalse,
			Reason: fljobv1.ReasonBackoff, LastTransitionTime: metav1.Time{Time: at(100)}}}}
}

func finished(phase fljobv1.Phase, at int) fljobv1.FLJobStatus {
	return fljobv1.FLJobStatus{Phase: phase, Attempts: 1, StartTime: mt(0), CompletionTime: mt(at)}
}

func exited(c int32, rc *int32) *backends.Observation {
	return &backends.Observation{State: backends.StateExited, Name: "w-1", ID: "id1",
		CreatedAt: at(0), StartedAt: at(1), FinishedAt: at(50), ExitCode: code(c), ReturnCode: rc}
}

func TestDecide(t *testing.T) {
	policy := Policy{BackoffBase: 10 * time.Second, BackoffMax: 35 * time.Second}
	waiting := func(reason string) *backends.Observation {
		return &backends.Observation{State: backends.StateWaiting, Name: "w-1", CreatedAt: at(0),
			Reason: reason, Message: "details"}
	}
	runObs := &backends.Observation{State: backends.StateRunning, Name: "w-1", ID: "id1",
		CreatedAt: at(0), StartedAt: at(1)}

	type want struct {
		action    Action
		attempt   int32
		phase     fljobv1.Phase
		reason    string
		msg       string // a part of status.message
		attempts  int32
		failed    int32
		exit, rc  *int32
		requeue   time.Duration
		condition string // a condition type that must be True
		event     string // the reason of an event that must be emitted
	}
	cases := []struct {
		name string
		job  *fljobv1.FLJob
		obs  *backends.Observation
		now  int
		want want
	}{
		{"new FLJob starts attempt 1",
			builder.FLJob("a").Obj(), nil, 0,
			want{action: ActionStart, attempt: 1, phase: fljobv1.PhasePending, reason: fljobv1.ReasonCreating,
				msg: "Creating attempt 1", attempts: 1}},
		{"created workload waits: requeue at the pending deadline",
			builder.FLJob("a").PendingDeadline(120).Status(running(1)).Obj(), waiting(""), 20,
			want{phase: fljobv1.PhasePending, reason: fljobv1.ReasonWaiting, attempts: 1, requeue: 100 * time.Second}},
		{"missing image is reported before the pending deadline",
			builder.FLJob("a").PendingDeadline(120).Status(running(1)).Obj(), waiting("ImageNotFound"), 20,
			want{phase: fljobv1.PhasePending, reason: "ImageNotFound", msg: "ImageNotFound: details",
				attempts: 1, requeue: 100 * time.Second}},
		{"pending deadline fails the FLJob with the cause and stops the workload",
			builder.FLJob("a").PendingDeadline(120).Status(running(1)).Obj(), waiting("Unschedulable"), 120,
			want{action: ActionStop, phase: fljobv1.PhaseFailed, reason: fljobv1.ReasonPendingDeadlineExceeded,
				msg: "Unschedulable: details", attempts: 1, condition: fljobv1.ConditionFailed,
				event: fljobv1.ReasonPendingDeadlineExceeded}},
		{"running workload makes the FLJob Running",
			builder.FLJob("a").Status(fljobv1.FLJobStatus{Phase: fljobv1.PhasePending, Attempts: 1}).Obj(), runObs, 5,
			want{phase: fljobv1.PhaseRunning, reason: fljobv1.ReasonStarted, attempts: 1,
				condition: fljobv1.ConditionRunning}},
		{"exit 0 succeeds with the return code",
			builder.FLJob("a").Status(running(1)).Obj(), exited(0, code(0)), 60,
			want{phase: fljobv1.PhaseSucceeded, reason: fljobv1.ReasonSucceeded, attempts: 1,
				exit: code(0), rc: code(0), condition: fljobv1.ConditionComplete, event: "Completed"}},
		{"exit 1 without retries fails",
			builder.FLJob("a").Status(running(1)).Obj(), exited(1, code(1)), 60,
			want{phase: fljobv1.PhaseFailed, reason: fljobv1.ReasonBackoffLimitExceeded,
				msg: "exited with code 1, NVFlare return code 1 (execution error)", attempts: 1, failed: 1,
				exit: code(1), rc: code(1), condition: fljobv1.ConditionFailed,
				event: fljobv1.ReasonBackoffLimitExceeded}},
		{"exit 9 is an abort",
			builder.FLJob("a").Status(running(1)).Obj(), exited(9, code(9)), 60,
			want{phase: fljobv1.PhaseFailed, reason: fljobv1.ReasonBackoffLimitExceeded, msg: "(aborted)",
				attempts: 1, failed: 1, exit: code(9), rc: code(9), condition: fljobv1.ConditionFailed}},
		{"return codes 101-104 reach status",
			builder.FLJob("a").Status(running(1)).Obj(), exited(1, code(103)), 60,
			want{phase: fljobv1.PhaseFailed, reason: fljobv1.ReasonBackoffLimitExceeded,
				msg: "(configuration error)", attempts: 1, failed: 1, exit: code(1), rc: code(103),
				condition: fljobv1.ConditionFailed}},
		{"a failure with retries left backs off 10s",
			builder.FLJob("a").BackoffLimit(2).Status(running(1)).Obj(), exited(2, nil), 60,
			want{phase: fljobv1.PhasePending, reason: fljobv1.ReasonBackoff, msg: "retrying in 10s",
				attempts: 1, failed: 1, exit: code(2), requeue: 10 * time.Second, event: fljobv1.ReasonBackoff}},
		{"backoff not over: wait for the rest of it",
			builder.FLJob("a").BackoffLimit(2).Status(backingOff(1)).Obj(), exited(2, nil), 104,
			want{phase: fljobv1.PhasePending, reason: fljobv1.ReasonBackoff, attempts: 1, failed: 1,
				exit: code(2), requeue: 6 * time.Second}},
		{"backoff over: start the next attempt",
			builder.FLJob("a").BackoffLimit(2).Status(backingOff(1)).Obj(), exited(2, nil), 110,
			want{action: ActionStart, attempt: 2, phase: fljobv1.PhasePending, reason: fljobv1.ReasonCreating,
				attempts: 2, failed: 1, exit: code(2)}},
		{"the second backoff doubles",
			builder.FLJob("a").BackoffLimit(3).Status(backingOff(2)).Obj(), nil, 115,
			want{phase: fljobv1.PhasePending, reason: fljobv1.ReasonBackoff, attempts: 2, failed: 2,
				requeue: 5 * time.Second}},
		{"backoff is capped",
			builder.FLJob("a").BackoffLimit(9).Status(backingOff(5)).Obj(), nil, 134,
			want{phase: fljobv1.PhasePending, reason: fljobv1.ReasonBackoff, attempts: 5, failed: 5,
				requeue: time.Second}},
		{"the last allowed retry failing fails the FLJob",
			builder.FLJob("a").BackoffLimit(1).Status(running(2)).Obj(), exited(1, nil), 160,
			want{phase: fljobv1.PhaseFailed, reason: fljobv1.ReasonBackoffLimitExceeded, attempts: 2, failed: 2,
				exit: code(1), condition: fljobv1.ConditionFailed}},
		{"a vanished workload is a failed attempt",
			builder.FLJob("a").Status(running(1)).Obj(), &backends.Observation{State: backends.StateAbsent}, 60,
			want{phase: fljobv1.PhaseFailed, reason: fljobv1.ReasonBackoffLimitExceeded, msg: "WorkloadLost",
				attempts: 1, failed: 1, condition: fljobv1.ConditionFailed}},
		{"active deadline not reached: requeue at it",
			builder.FLJob("a").ActiveDeadline(300).Status(running(1)).Obj(), runObs, 100,
			want{phase: fljobv1.PhaseRunning, reason: fljobv1.ReasonStarted, attempts: 1,
				requeue: 200 * time.Second, condition: fljobv1.ConditionRunning}},
		{"active deadline passed: fail and stop",
			builder.FLJob("a").ActiveDeadline(300).Status(running(1)).Obj(), runObs, 300,
			want{action: ActionStop, phase: fljobv1.PhaseFailed, reason: fljobv1.ReasonDeadlineExceeded,
				attempts: 1, condition: fljobv1.ConditionFailed, event: fljobv1.ReasonDeadlineExceeded}},
		{"finished FLJob with a TTL waits for it",
			builder.FLJob("a").TTL(60).Status(finished(fljobv1.PhaseSucceeded, 100)).Obj(), exited(0, nil), 130,
			want{phase: fljobv1.PhaseSucceeded, attempts: 1, requeue: 30 * time.Second}},
		{"finished FLJob past its TTL is deleted",
			builder.FLJob("a").TTL(60).Status(finished(fljobv1.PhaseFailed, 100)).Obj(), exited(1, nil), 160,
			want{action: ActionDelete, phase: fljobv1.PhaseFailed, attempts: 1}},
		{"TTL 0 deletes at once when the job succeeds",
			builder.FLJob("a").TTL(0).Status(running(1)).Obj(), exited(0, nil), 60,
			want{action: ActionDelete, phase: fljobv1.PhaseSucceeded, reason: fljobv1.ReasonSucceeded,
				attempts: 1, exit: code(0), condition: fljobv1.ConditionComplete}},
		{"finished FLJob never starts anything, even with its workload gone",
			builder.FLJob("a").Status(finished(fljobv1.PhaseFailed, 100)).Obj(),
			&backends.Observation{State: backends.StateAbsent}, 500,
			want{phase: fljobv1.PhaseFailed, attempts: 1}},
		{"finished FLJob stops a workload that still runs",
			builder.FLJob("a").Status(finished(fljobv1.PhaseFailed, 100)).Obj(), runObs, 500,
			want{action: ActionStop, phase: fljobv1.PhaseFailed, attempts: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.job.Generation = 3
			d := Decide(tc.job, tc.obs, at(tc.now), policy)
			st := d.Status
			got := want{action: d.Action, attempt: d.Attempt, phase: st.Phase, reason: st.Reason,
				msg: tc.want.msg, attempts: st.Attempts, failed: st.Failed, exit: st.ExitCode, rc: st.ReturnCode,
				requeue: d.RequeueAfter, condition: tc.want.condition, event: tc.want.event}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
			if !strings.Contains(st.Message, tc.want.msg) {
				t.Errorf("message %q does not contain %q", st.Message, tc.want.msg)
			}
			if c := tc.want.condition; c != "" && !meta.IsStatusConditionTrue(st.Conditions, c) {
				t.Errorf("condition %s is not True: %+v", c, st.Conditions)
			}
			if e := tc.want.event; e != "" && !hasEvent(d.Events, e) {
				t.Errorf("no %s event in %+v", e, d.Events)
			}
			if st.ObservedGeneration != 3 {
				t.Errorf("observedGeneration = %d, want 3", st.ObservedGeneration)
			}
			for _, c := range st.Conditions {
				if c.ObservedGeneration != 3 && c.LastTransitionTime.Time.Equal(at(tc.now)) {
					t.Errorf("condition %s written without observedGeneration", c.Type)
				}
			}
			if meta.IsStatusConditionTrue(st.Conditions, fljobv1.ConditionComplete) &&
				meta.IsStatusConditionTrue(st.Conditions, fljobv1.ConditionFailed) {
				t.Errorf("Complete and Failed both True")
			}
		})
	}
}

func hasEvent(events []Event, reason string) bool {
	for _, e := range events {
		if e.Reason == reason {
			return true
		}
	}
	return false
}

func TestDecideRecordsWorkloadAndTimes(t *testing.T) {
	job := builder.FLJob("a").Status(running(1)).Obj()
	d := Decide(job, exited(0, code(0)), at(60), DefaultPolicy)
	want := &fljobv1.WorkloadRef{Name: "w-1", ID: "id1", Attempt: 1}
	if diff := cmp.Diff(want, d.Status.Workload); diff != "" {
		t.Errorf("workload (-want +got):\n%s", diff)
	}
	if !d.Status.CompletionTime.Time.Equal(at(50)) || !d.Status.StartTime.Time.Equal(at(0)) {
		t.Errorf("start %v, completion %v; want the FLJob's start and the process's finish",
			d.Status.StartTime, d.Status.CompletionTime)
	}
}

func TestDecideIsStableWhenNothingChanged(t *testing.T) {
	job := builder.FLJob("a").Generation(1).Status(running(1)).Obj()
	obs := &backends.Observation{State: backends.StateRunning, Name: "w-1", ID: "id1"}
	first := Decide(job, obs, at(10), DefaultPolicy)
	job.Status = first.Status
	second := Decide(job, obs, at(20), DefaultPolicy)
	if diff := cmp.Diff(first.Status, second.Status); diff != "" {
		t.Errorf("a second look changed the status (-first +second):\n%s", diff)
	}
	if len(second.Events) != 0 {
		t.Errorf("a second look emitted events: %+v", second.Events)
	}
}
