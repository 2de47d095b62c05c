package controllers

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
)

// Policy holds the timings the decisions depend on.
type Policy struct {
	// BackoffBase is the delay before the first retry; it doubles for each
	// further failure up to BackoffMax.
	BackoffBase time.Duration
	BackoffMax  time.Duration
}

// DefaultPolicy mirrors the batch/v1 Job controller: 10s doubling, at most
// 10m.
var DefaultPolicy = Policy{BackoffBase: 10 * time.Second, BackoffMax: 10 * time.Minute}

// Action is what the reconciler must do to the workload.
type Action string

const (
	// ActionNone leaves the workload alone.
	ActionNone Action = ""
	// ActionStart starts (or adopts) the workload of Decision.Attempt.
	ActionStart Action = "Start"
	// ActionStop stops the current attempt's workload.
	ActionStop Action = "Stop"
	// ActionDelete deletes the FLJob itself (its TTL passed).
	ActionDelete Action = "Delete"
)

// Event is an event to emit once the status is written.
type Event struct {
	Type    string // corev1.EventTypeNormal or corev1.EventTypeWarning
	Reason  string
	Message string
}

// Decision is what Decide concluded from an FLJob and an observation.
type Decision struct {
	Action Action
	// Attempt is the attempt to start, with ActionStart.
	Attempt int32
	// Status is the FLJob's new status; compare it with the old one to
	// know whether to write it.
	Status fljobv1.FLJobStatus
	Events []Event
	// RequeueAfter asks for another look after this long; zero for none.
	RequeueAfter time.Duration
}

// Event types, as Kubernetes spells them.
const (
	eventNormal  = "Normal"
	eventWarning = "Warning"
)

// Decide is the whole decision logic of the controller, free of any API
// server or backend: from the FLJob, the observation of its current
// attempt (nil when it has none) and the time, it returns the new status,
// the one action to take, and when to look again.
func Decide(job *fljobv1.FLJob, obs *backends.Observation, now time.Time, p Policy) Decision {
	d := &decider{job: job, obs: obs, now: now, policy: p,
		out: Decision{Status: *job.Status.DeepCopy()}}
	d.decide()
	d.out.Status.ObservedGeneration = job.Generation
	return d.out
}

// Fail returns the decision that fails the FLJob for good, for causes found
// outside an observation, such as a workload the backend cannot create.
func Fail(job *fljobv1.FLJob, now time.Time, reason, msg string) Decision {
	d := &decider{job: job, now: now, out: Decision{Status: *job.Status.DeepCopy()}}
	d.fail(reason, msg)
	d.out.Status.ObservedGeneration = job.Generation
	return d.out
}

type decider struct {
	job    *fljobv1.FLJob
	obs    *backends.Observation
	now    time.Time
	policy Policy
	out    Decision
}

func (d *decider) st() *fljobv1.FLJobStatus { return &d.out.Status }

func (d *decider) decide() {
	st := d.st()
	if st.Phase.Finished() {
		d.finished()
		return
	}
	if d.deadlinePassed() {
		return
	}
	if d.obs != nil {
		d.record(d.obs)
	}

	switch {
	case st.Attempts == 0:
		d.start(1)
	case st.Failed == st.Attempts:
		d.retryAfterBackoff()
	case d.obs == nil || d.obs.State == backends.StateAbsent:
		d.attemptFailed(fljobv1.ReasonWorkloadLost,
			fmt.Sprintf("Attempt %d: its workload vanished without an exit code", st.Attempts))
	case d.obs.State == backends.StateWaiting:
		d.waiting()
	case d.obs.State == backends.StateRunning:
		d.running()
	case d.obs.State == backends.StateExited:
		d.exited()
	}
}

// finished keeps a terminal FLJob terminal: it never starts anything,
// stops an attempt that still runs, and applies the TTL.
func (d *decider) finished() {
	if d.obs != nil && (d.obs.State == backends.StateRunning || d.obs.State == backends.StateWaiting) {
		d.out.Action = ActionStop
		return
	}
	ttl := d.job.Spec.TTLSecondsAfterFinished
	if ttl == nil {
		return
	}
	finished := d.now
	if ct := d.st().CompletionTime; ct != nil {
		finished = ct.Time
	}
	due := finished.Add(time.Duration(*ttl) * time.Second)
	if !d.now.Before(due) {
		d.out.Action = ActionDelete
		return
	}
	d.out.RequeueAfter = due.Sub(d.now)
}

// deadlinePassed fails the FLJob once activeDeadlineSeconds has passed
// since its start, stopping the running attempt.
func (d *decider) deadlinePassed() bool {
	ads, start := d.job.Spec.ActiveDeadlineSeconds, d.st().StartTime
	if ads == nil || start == nil {
		return false
	}
	due := start.Add(time.Duration(*ads) * time.Second)
	if d.now.Before(due) {
		d.requeueBy(due.Sub(d.now))
		return false
	}
	if d.obs != nil {
		d.record(d.obs)
	}
	d.fail(fljobv1.ReasonDeadlineExceeded,
		fmt.Sprintf("FLJob ran longer than activeDeadlineSeconds (%ds)", *ads))
	d.out.Action = ActionStop
	return true
}

func (d *decider) start(attempt int32) {
	st := d.st()
	st.Attempts = attempt
	if st.StartTime == nil {
		st.StartTime = &metav1.Time{Time: d.now}
	}
	d.out.Action = ActionStart
	d.out.Attempt = attempt
	d.setPending(fljobv1.ReasonCreating, fmt.Sprintf("Creating attempt %d", attempt))
}

func (d *decider) retryAfterBackoff() {
	st := d.st()
	failedAt := d.now
	if c := meta.FindStatusCondition(st.Conditions, fljobv1.ConditionRunning); c != nil {
		failedAt = c.LastTransitionTime.Time
	}
	due := failedAt.Add(d.backoff(st.Failed))
	if d.now.Before(due) {
		d.requeueBy(due.Sub(d.now))
		return
	}
	d.start(st.Attempts + 1)
}

// backoff is the delay before the retry that follows the n-th failure.
func (d *decider) backoff(n int32) time.Duration {
	delay := d.policy.BackoffBase
	for i := int32(1); i < n && delay < d.policy.BackoffMax; i++ {
		delay *= 2
	}
	return min(delay, d.policy.BackoffMax)
}

func (d *decider) waiting() {
	st, obs := d.st(), d.obs
	msg := fmt.Sprintf("Attempt %d waits to start", st.Attempts)
	reason := fljobv1.ReasonWaiting
	if obs.Reason != "" {
		reason = obs.Reason
		msg = fmt.Sprintf("Attempt %d waits to start: %s", st.Attempts, causeOf(obs))
	}
	d.setPending(reason, msg)

	pd := d.job.Spec.PendingDeadlineSeconds
	if pd == nil || obs.CreatedAt.IsZero() {
		return
	}
	due := obs.CreatedAt.Add(time.Duration(*pd) * time.Second)
	if d.now.Before(due) {
		d.requeueBy(due.Sub(d.now))
		return
	}
	d.fail(fljobv1.ReasonPendingDeadlineExceeded, fmt.Sprintf(
		"Attempt %d did not start within pendingDeadlineSeconds (%ds): %s", st.Attempts, *pd, causeOf(obs)))
	d.out.Action = ActionStop
}

func (d *decider) running() {
	st := d.st()
	st.Phase = fljobv1.PhaseRunning
	st.Reason = fljobv1.ReasonStarted
	st.Message = fmt.Sprintf("Attempt %d is running", st.Attempts)
	d.setCondition(fljobv1.ConditionRunning, metav1.ConditionTrue, fljobv1.ReasonStarted, st.Message)
}

func (d *decider) exited() {
	st, obs := d.st(), d.obs
	code := int32(-1)
	if obs.ExitCode != nil {
		code = *obs.ExitCode
	}
	if code != 0 {
		d.attemptFailed(fljobv1.ReasonExited, fmt.Sprintf("Attempt %d %s", st.Attempts, exitText(obs)))
		return
	}
	st.Phase = fljobv1.PhaseSucceeded
	st.Reason = fljobv1.ReasonSucceeded
	st.Message = fmt.Sprintf("Attempt %d %s", st.Attempts, exitText(obs))
	st.CompletionTime = &metav1.Time{Time: finishTime(obs, d.now)}
	d.setCondition(fljobv1.ConditionRunning, metav1.ConditionFalse, fljobv1.ReasonSucceeded, st.Message)
	d.setCondition(fljobv1.ConditionComplete, metav1.ConditionTrue, fljobv1.ReasonSucceeded, st.Message)
	d.event(eventNormal, "Completed", st.Message)
	d.finished()
}

// attemptFailed counts the current attempt as failed, then either waits
// to retry or fails the FLJob when backoffLimit is spent.
func (d *decider) attemptFailed(reason, msg string) {
	st := d.st()
	st.Failed = st.Attempts
	limit := int32(0)
	if d.job.Spec.BackoffLimit != nil {
		limit = *d.job.Spec.BackoffLimit
	}
	if st.Failed > limit {
		d.fail(fljobv1.ReasonBackoffLimitExceeded,
			fmt.Sprintf("%s; backoffLimit %d reached (last cause: %s)", msg, limit, reason))
		return
	}
	delay := d.backoff(st.Failed)
	st.Phase = fljobv1.PhasePending
	st.Reason = fljobv1.ReasonBackoff
	st.Message = fmt.Sprintf("%s; retrying in %s", msg, delay)
	// The Running condition's transition time marks the failure: the
	// backoff counts from it, also after a restart.
	meta.RemoveStatusCondition(&st.Conditions, fljobv1.ConditionRunning)
	d.setCondition(fljobv1.ConditionRunning, metav1.ConditionFalse, fljobv1.ReasonBackoff, st.Message)
	d.event(eventWarning, fljobv1.ReasonBackoff, st.Message)
	d.requeueBy(delay)
}

// fail makes the FLJob Failed for good.
func (d *decider) fail(reason, msg string) {
	st := d.st()
	st.Phase = fljobv1.PhaseFailed
	st.Reason = reason
	st.Message = msg
	finished := d.now
	if d.obs != nil && d.obs.State == backends.StateExited {
		finished = finishTime(d.obs, d.now)
	}
	st.CompletionTime = &metav1.Time{Time: finished}
	d.setCondition(fljobv1.ConditionRunning, metav1.ConditionFalse, reason, msg)
	d.setCondition(fljobv1.ConditionFailed, metav1.ConditionTrue, reason, msg)
	d.event(eventWarning, reason, msg)
	d.out.RequeueAfter = 0
	d.finished()
}

// record copies what the observation tells of the current attempt into
// status: its workload and, once it exited, its codes.
func (d *decider) record(obs *backends.Observation) {
	st := d.st()
	if obs.State == backends.StateAbsent {
		return
	}
	if st.Workload == nil {
		st.Workload = &fljobv1.WorkloadRef{}
	}
	st.Workload.Name, st.Workload.ID, st.Workload.Attempt = obs.Name, obs.ID, st.Attempts
	if obs.State == backends.StateExited {
		st.ExitCode = obs.ExitCode
		st.ReturnCode = obs.ReturnCode
	}
}

func (d *decider) setPending(reason, msg string) {
	st := d.st()
	st.Phase = fljobv1.PhasePending
	st.Reason = reason
	st.Message = msg
	d.setCondition(fljobv1.ConditionRunning, metav1.ConditionFalse, reason, msg)
}

func (d *decider) setCondition(typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&d.st().Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: d.job.Generation, LastTransitionTime: metav1.Time{Time: d.now},
	})
}

func (d *decider) event(typ, reason, msg string) {
	d.out.Events = append(d.out.Events, Event{Type: typ, Reason: reason, Message: msg})
}

// requeueBy asks for another look no later than after delay.
func (d *decider) requeueBy(delay time.Duration) {
	if d.out.RequeueAfter == 0 || delay < d.out.RequeueAfter {
		d.out.RequeueAfter = delay
	}
}

func finishTime(obs *backends.Observation, now time.Time) time.Time {
	if obs.FinishedAt.IsZero() {
		return now
	}
	return obs.FinishedAt
}

func causeOf(obs *backends.Observation) string {
	if obs.Reason == "" {
		return "no cause reported"
	}
	if obs.Message == "" {
		return obs.Reason
	}
	return obs.Reason + ": " + obs.Message
}

// exitText says how an attempt's process ended, with NVFlare's return code
// where the job wrote one.
func exitText(obs *backends.Observation) string {
	s := "exited without an exit code"
	if obs.ExitCode != nil {
		s = fmt.Sprintf("exited with code %d", *obs.ExitCode)
	}
	if obs.Reason != "" && obs.Reason != "Completed" && obs.Reason != "Error" {
		s += " (" + obs.Reason + ")"
	}
	if rc := obs.ReturnCode; rc != nil {
		s += fmt.Sprintf(", NVFlare return code %d (%s)", *rc, ReturnCodeText(*rc))
	}
	return s
}

// ReturnCodeText names an NVFlare return code.
func ReturnCodeText(rc int32) string {
	switch rc {
	case fljobv1.ReturnCodeSuccess:
		return "success"
	case fljobv1.ReturnCodeExecutionError:
		return "execution error"
	case fljobv1.ReturnCodeAborted:
		return "aborted"
	case fljobv1.ReturnCodeException:
		return "exception"
	case fljobv1.ReturnCodeUnsafe:
		return "unsafe component"
	case fljobv1.ReturnCodeConfigError:
		return "configuration error"
	case fljobv1.ReturnCodeInfraError:
		return "infrastructure error"
	}
	return "unknown"
}
