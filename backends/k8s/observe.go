package k8s

import (
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/fljob-dev/fljob/backends"
)

// Reasons this backend reports when the Pod's status names none.
const (
	// ReasonNotScheduled means no scheduler has placed the Pod yet and none
	// has said why.
	ReasonNotScheduled = "NotScheduled"
	// ReasonPodFailed means the Pod failed without its container reporting
	// an exit, and without a reason of its own.
	ReasonPodFailed = "PodFailed"
)

// ExitCodeKilled is the exit code reported for a Pod that failed before its
// container reported one (evicted, past its deadline, lost with its node):
// 128 + SIGKILL, what a runtime reports for a killed container.
const ExitCodeKilled int32 = 137

// ObservationFrom reads a Pod back into the model's observation.
//
//   - The container terminated: Exited with its exit code, reason
//     (Completed, Error, OOMKilled, ...) and times, and NVFlare's return
//     code from the termination message, which is the job's return code
//     file. A message that is not an integer yields no return code.
//   - The Pod failed or succeeded without a terminated container: Exited
//     with ExitCodeKilled (0 for a Pod that succeeded) and the Pod's reason
//     (Evicted, DeadlineExceeded).
//   - The container runs: Running since its start.
//   - Otherwise Waiting, with the container's waiting reason and message
//     (ErrImagePull, ErrImageNeverPull, CreateContainerConfigError, ...),
//     or the PodScheduled condition's (Unschedulable) while unscheduled.
//
// A Pod being deleted is observed like any other.
func ObservationFrom(pod *corev1.Pod) backends.Observation {
	obs := backends.Observation{
		Name:      pod.Name,
		ID:        string(pod.UID),
		CreatedAt: pod.CreationTimestamp.Time,
	}
	cs := containerStatus(pod)
	var state corev1.ContainerState
	if cs != nil {
		state = cs.State
	}
	switch phase := pod.Status.Phase; {
	case state.Terminated != nil:
		exited(&obs, state.Terminated)
	case phase == corev1.PodFailed || phase == corev1.PodSucceeded:
		podEnded(&obs, pod)
	case state.Running != nil:
		obs.State = backends.StateRunning
		obs.StartedAt = state.Running.StartedAt.Time
	default:
		waiting(&obs, pod, state.Waiting)
	}
	return obs
}

func containerStatus(pod *corev1.Pod) *corev1.ContainerStatus {
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == ContainerName {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	return nil
}

func exited(obs *backends.Observation, t *corev1.ContainerStateTerminated) {
	obs.State = backends.StateExited
	obs.ExitCode = ptr.To(t.ExitCode)
	obs.Reason = t.Reason
	obs.StartedAt = t.StartedAt.Time
	obs.FinishedAt = t.FinishedAt.Time
	obs.ReturnCode, obs.Message = splitMessage(t.Message)
}

// podEnded observes a Pod that ended without its container reporting how.
// FinishedAt stays zero: the Pod's status does not say when.
func podEnded(obs *backends.Observation, pod *corev1.Pod) {
	obs.State = backends.StateExited
	obs.ExitCode = ptr.To(ExitCodeKilled)
	obs.Reason = pod.Status.Reason
	if obs.Reason == "" {
		obs.Reason = ReasonPodFailed
	}
	if pod.Status.Phase == corev1.PodSucceeded {
		obs.ExitCode = ptr.To[int32](0)
		obs.Reason = "Completed"
	}
	obs.Message = pod.Status.Message
}

func waiting(obs *backends.Observation, pod *corev1.Pod, w *corev1.ContainerStateWaiting) {
	obs.State = backends.StateWaiting
	if w != nil {
		obs.Reason, obs.Message = w.Reason, w.Message
		return
	}
	if pod.Spec.NodeName != "" {
		return
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			obs.Reason, obs.Message = c.Reason, c.Message
			return
		}
	}
	obs.Reason = ReasonNotScheduled
}

// splitMessage splits a terminated container's message into NVFlare's
// return code and the rest. The kubelet appends the termination message
// file's content to the runtime's own message, after ": ", so the return
// code is either the whole message or its last part.
func splitMessage(msg string) (*int32, string) {
	if rc, ok := parseReturnCode(msg); ok {
		return &rc, ""
	}
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		if rc, ok := parseReturnCode(msg[i+2:]); ok {
			return &rc, msg[:i]
		}
	}
	return nil, msg
}

func parseReturnCode(s string) (int32, bool) {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return 0, false
	}
	return int32(v), true
}

// withEvent explains a wait whose cause the Pod's status does not carry
// (ContainerCreating, an unscheduled Pod) with the latest Warning event of
// the Pod: a failed mount, volume attach or sandbox shows only there.
func withEvent(obs backends.Observation, events []corev1.Event) backends.Observation {
	if obs.State != backends.StateWaiting || obs.Message != "" {
		return obs
	}
	var latest *corev1.Event
	for i := range events {
		e := &events[i]
		if e.Type != corev1.EventTypeWarning {
			continue
		}
		if latest == nil || eventTime(e).After(eventTime(latest)) {
			latest = e
		}
	}
	if latest != nil {
		obs.Reason, obs.Message = latest.Reason, latest.Message
	}
	return obs
}

// eventTime is when an event last happened, whichever API wrote it.
func eventTime(e *corev1.Event) time.Time {
	t := e.LastTimestamp.Time
	if e.Series != nil && e.Series.LastObservedTime.After(t) {
		t = e.Series.LastObservedTime.Time
	}
	if e.EventTime.After(t) {
		t = e.EventTime.Time
	}
	if t.IsZero() {
		t = e.FirstTimestamp.Time
	}
	return t
}
