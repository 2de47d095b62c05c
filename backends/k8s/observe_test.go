package k8s

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/fljob-dev/fljob/backends"
)

var (
	t0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Minute)
	t2 = t0.Add(2 * time.Minute)
)

// podB builds Pods in the states a kubelet and scheduler report.
type podB struct{ pod corev1.Pod }

func pod() *podB {
	return &podB{pod: corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: "c1-1", Namespace: "default", UID: "pod-uid", CreationTimestamp: metav1.NewTime(t0),
	}}}
}

func (b *podB) phase(p corev1.PodPhase) *podB { b.pod.Status.Phase = p; return b }

func (b *podB) node(n string) *podB { b.pod.Spec.NodeName = n; return b }

func (b *podB) reason(reason, msg string) *podB {
	b.pod.Status.Reason, b.pod.Status.Message = reason, msg
	return b
}

func (b *podB) cond(t corev1.PodConditionType, s corev1.ConditionStatus, reason, msg string) *podB {
	b.pod.Status.Conditions = append(b.pod.Status.Conditions, corev1.PodCondition{
		Type: t, Status: s, Reason: reason, Message: msg})
	return b
}

func (b *podB) container(name string, s corev1.ContainerState) *podB {
	b.pod.Status.ContainerStatuses = append(b.pod.Status.ContainerStatuses,
		corev1.ContainerStatus{Name: name, State: s})
	return b
}

func (b *podB) waiting(reason, msg string) *podB {
	return b.container(ContainerName, corev1.ContainerState{
		Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}})
}

func (b *podB) running(at time.Time) *podB {
	return b.container(ContainerName, corev1.ContainerState{
		Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(at)}})
}

func (b *podB) terminated(code int32, reason, msg string) *podB {
	return b.container(ContainerName, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: reason, Message: msg,
		StartedAt: metav1.NewTime(t1), FinishedAt: metav1.NewTime(t2),
	}})
}

func (b *podB) deleting() *podB {
	b.pod.DeletionTimestamp = ptr.To(metav1.NewTime(t2))
	return b
}

func (b *podB) obj() *corev1.Pod { return b.pod.DeepCopy() }

// obs is the observation every case starts from: the Pod's identity.
func obs(state backends.State) backends.Observation {
	return backends.Observation{State: state, Name: "c1-1", ID: "pod-uid", CreatedAt: t0}
}

func exitedObs(code int32, rc *int32, reason, msg string) backends.Observation {
	o := obs(backends.StateExited)
	o.ExitCode, o.ReturnCode, o.Reason, o.Message = ptr.To(code), rc, reason, msg
	o.StartedAt, o.FinishedAt = t1, t2
	return o
}

func TestObservationFrom(t *testing.T) {
	waitingObs := func(reason, msg string) backends.Observation {
		o := obs(backends.StateWaiting)
		o.Reason, o.Message = reason, msg
		return o
	}
	running := obs(backends.StateRunning)
	running.StartedAt = t1
	killed := func(reason, msg string) backends.Observation {
		o := obs(backends.StateExited)
		o.ExitCode, o.Reason, o.Message = ptr.To[int32](137), reason, msg
		return o
	}
	const neverPull = `Container image "fljob-probe:dev" is not present with pull policy of Never`

	tests := []struct {
		name string
		pod  *corev1.Pod
		want backends.Observation
	}{
		{"just created", pod().obj(), waitingObs("NotScheduled", "")},
		{"unschedulable",
			pod().phase(corev1.PodPending).cond(corev1.PodScheduled, corev1.ConditionFalse, "Unschedulable",
				"0/1 nodes are available: 1 Insufficient nvidia.com/gpu.").obj(),
			waitingObs("Unschedulable", "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")},
		{"scheduled, no container status yet",
			pod().phase(corev1.PodPending).node("n1").cond(corev1.PodScheduled, corev1.ConditionTrue, "", "").obj(),
			waitingObs("", "")},
		{"container creating", pod().phase(corev1.PodPending).node("n1").waiting("ContainerCreating", "").obj(),
			waitingObs("ContainerCreating", "")},
		{"image never pulled", pod().phase(corev1.PodPending).node("n1").waiting("ErrImageNeverPull", neverPull).obj(),
			waitingObs("ErrImageNeverPull", neverPull)},
		{"image pull backoff", pod().phase(corev1.PodPending).node("n1").
			waiting("ImagePullBackOff", `Back-off pulling image "x"`).obj(),
			waitingObs("ImagePullBackOff", `Back-off pulling image "x"`)},
		{"missing secret", pod().phase(corev1.PodPending).node("n1").
			waiting("CreateContainerConfigError", `secret "job-secret" not found`).obj(),
			waitingObs("CreateContainerConfigError", `secret "job-secret" not found`)},
		{"other containers are ignored", pod().phase(corev1.PodPending).node("n1").
			container("sidecar", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}).
			waiting("ContainerCreating", "").obj(),
			waitingObs("ContainerCreating", "")},
		{"running", pod().phase(corev1.PodRunning).node("n1").running(t1).obj(), running},
		{"running while being deleted", pod().phase(corev1.PodRunning).node("n1").running(t1).deleting().obj(),
			running},
		{"completed with return code", pod().phase(corev1.PodSucceeded).terminated(0, "Completed", "0\n").obj(),
			exitedObs(0, ptr.To[int32](0), "Completed", "")},
		{"failed with return code", pod().phase(corev1.PodFailed).terminated(1, "Error", " 103 ").obj(),
			exitedObs(1, ptr.To[int32](103), "Error", "")},
		{"aborted: exit 0, return code 9", pod().phase(corev1.PodSucceeded).terminated(0, "Completed", "9").obj(),
			exitedObs(0, ptr.To[int32](9), "Completed", "")},
		{"no return code written", pod().phase(corev1.PodFailed).terminated(3, "Error", "").obj(),
			exitedObs(3, nil, "Error", "")},
		{"garbage in the return code file", pod().phase(corev1.PodFailed).terminated(1, "Error", "oops").obj(),
			exitedObs(1, nil, "Error", "oops")},
		{"return code out of range", pod().phase(corev1.PodFailed).terminated(1, "Error", "99999999999").obj(),
			exitedObs(1, nil, "Error", "99999999999")},
		{"runtime message before the return code", pod().phase(corev1.PodFailed).
			terminated(2, "Error", "runtime says: 104").obj(),
			exitedObs(2, ptr.To[int32](104), "Error", "runtime says")},
		{"start error", pod().phase(corev1.PodFailed).terminated(128, "StartError",
			`exec: "/nope": no such file or directory`).obj(),
			exitedObs(128, nil, "StartError", `exec: "/nope": no such file or directory`)},
		{"OOM killed", pod().phase(corev1.PodFailed).terminated(137, "OOMKilled", "").obj(),
			exitedObs(137, nil, "OOMKilled", "")},
		{"terminated while being deleted", pod().phase(corev1.PodFailed).terminated(143, "Error", "").deleting().obj(),
			exitedObs(143, nil, "Error", "")},
		{"evicted before a container status", pod().phase(corev1.PodFailed).
			reason("Evicted", "The node was low on resource: memory.").obj(),
			killed("Evicted", "The node was low on resource: memory.")},
		{"deadline exceeded while waiting", pod().phase(corev1.PodFailed).
			reason("DeadlineExceeded", "Pod was active on the node longer than the specified deadline").
			waiting("ContainerCreating", "").obj(),
			killed("DeadlineExceeded", "Pod was active on the node longer than the specified deadline")},
		{"failed without any reason", pod().phase(corev1.PodFailed).obj(), killed("PodFailed", "")},
		{"succeeded without a container status", pod().phase(corev1.PodSucceeded).obj(), func() backends.Observation {
			o := killed("Completed", "")
			o.ExitCode = ptr.To[int32](0)
			return o
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ObservationFrom(tt.pod)); diff != "" {
				t.Errorf("ObservationFrom (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWithEvent(t *testing.T) {
	event := func(typ, reason, msg string, at time.Time) corev1.Event {
		return corev1.Event{Type: typ, Reason: reason, Message: msg, LastTimestamp: metav1.NewTime(at)}
	}
	const mountMsg = `MountVolume.SetUp failed for volume "job" : hostPath type check failed, ` +
		`/srv/fljob/site-1/job-1 is not a directory, unable to determine its type: ` +
		`stat /srv/fljob/site-1/job-1: no such file or directory`
	creating := obs(backends.StateWaiting)
	creating.Reason = "ContainerCreating"
	failedMount := obs(backends.StateWaiting)
	failedMount.Reason, failedMount.Message = "FailedMount", mountMsg
	pull := obs(backends.StateWaiting)
	pull.Reason, pull.Message = "ErrImageNeverPull", "not present"

	tests := []struct {
		name   string
		obs    backends.Observation
		events []corev1.Event
		want   backends.Observation
	}{
		{"no events", creating, nil, creating},
		{"latest warning explains the wait", creating, []corev1.Event{
			event(corev1.EventTypeWarning, "FailedAttachVolume", "old", t0),
			event(corev1.EventTypeWarning, "FailedMount", mountMsg, t2),
			event(corev1.EventTypeNormal, "Scheduled", "assigned", t2.Add(time.Second)),
			event(corev1.EventTypeWarning, "FailedMount", "older", t1),
		}, failedMount},
		{"events API time", creating, []corev1.Event{
			event(corev1.EventTypeWarning, "FailedAttachVolume", "old", t1),
			{Type: corev1.EventTypeWarning, Reason: "FailedMount", Message: mountMsg, EventTime: metav1.NewMicroTime(t2)},
		}, failedMount},
		{"only normal events", creating, []corev1.Event{event(corev1.EventTypeNormal, "Pulled", "ok", t1)}, creating},
		{"a wait that has its cause keeps it", pull, []corev1.Event{
			event(corev1.EventTypeWarning, "FailedMount", mountMsg, t2)}, pull},
		{"not waiting", obs(backends.StateRunning), []corev1.Event{
			event(corev1.EventTypeWarning, "FailedMount", mountMsg, t2)}, obs(backends.StateRunning)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, withEvent(tt.obs, tt.events)); diff != "" {
				t.Errorf("withEvent (-want +got):\n%s", diff)
			}
		})
	}
}
