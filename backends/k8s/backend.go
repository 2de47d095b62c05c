package k8s

import (
	"context"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
)

// Name is the backend's name as written in an FLJob's status.
const Name = "kubernetes"

// Options configure a Backend. Both fields are optional.
type Options struct {
	// Reader serves the backend's reads (Observe, and the Get that adopts an
	// existing Pod). It defaults to the client. A manager's client reads a
	// cache that may not hold a Pod created a moment ago, which Observe
	// would report as absent: pass the manager's API reader, or make the
	// caller tolerate that lag.
	Reader client.Reader
	// Clientset streams logs (Logs) and lists a waiting Pod's events, which
	// carry mount failures the Pod's status does not. Without it Logs fails
	// and Observe reports such waits without their cause.
	Clientset kubernetes.Interface
}

// Backend runs FLJob workloads as Pods, each with a Service when it has
// ports. It keeps no state: every object is found by its deterministic name
// or its labels.
type Backend struct {
	c         client.Client
	r         client.Reader
	clientset kubernetes.Interface
}

var (
	_ backends.Backend   = (*Backend)(nil)
	_ backends.LogReader = (*Backend)(nil)
)

// New returns a Backend that writes through c.
func New(c client.Client, opts Options) *Backend {
	b := &Backend{c: c, r: opts.Reader, clientset: opts.Clientset}
	if b.r == nil {
		b.r = c
	}
	return b
}

// Name returns "kubernetes".
func (b *Backend) Name() string { return Name }

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=fljob.dev,resources=fljobs/finalizers,verbs=update

// Start creates the attempt's Service (when it has ports) and Pod. A Pod
// that already exists is adopted when it belongs to the same FLJob (label
// fljob.dev/uid), so a restarted controller never makes a second Pod for
// one attempt.
func (b *Backend) Start(ctx context.Context, w *backends.Workload) (backends.Observation, error) {
	if err := Validate(w); err != nil {
		return backends.Observation{}, err
	}
	if svc := ServiceFor(w); svc != nil {
		if err := b.ensureService(ctx, svc, w); err != nil {
			return backends.Observation{}, err
		}
	}

	pod := PodFor(w)
	log.FromContext(ctx).V(2).Info("Creating pod", "pod", client.ObjectKeyFromObject(pod))
	err := b.c.Create(ctx, pod)
	switch {
	case err == nil:
		return ObservationFrom(pod), nil
	case apierrors.IsAlreadyExists(err):
		return b.adopt(ctx, w)
	case apierrors.IsInvalid(err):
		// The API server refused the Pod's spec: a retry sends the same.
		return backends.Observation{}, backends.Permanent(fljobv1.ReasonInvalidWorkload,
			"the API server refused pod %s: %v", pod.Name, err)
	default:
		return backends.Observation{}, fmt.Errorf("create pod %s: %w", pod.Name, err)
	}
}

// adopt returns the observation of an attempt's existing Pod after
// checking that it belongs to the workload's FLJob.
func (b *Backend) adopt(ctx context.Context, w *backends.Workload) (backends.Observation, error) {
	key := client.ObjectKey{Namespace: w.Ref.Namespace, Name: backends.WorkloadName(w.Ref)}
	pod := &corev1.Pod{}
	if err := b.r.Get(ctx, key, pod); err != nil {
		return backends.Observation{}, fmt.Errorf("get existing pod %s: %w", key.Name, err)
	}
	if uid := pod.Labels[backends.LabelUID]; uid != w.Ref.UID {
		if pod.DeletionTimestamp != nil {
			// Left by an earlier FLJob of the same name: it goes away.
			return backends.Observation{}, fmt.Errorf("pod %s of another FLJob (uid %q) is being deleted",
				key.Name, uid)
		}
		return backends.Observation{}, backends.Permanent(fljobv1.ReasonInvalidWorkload,
			"pod %s exists and belongs to another owner (uid label %q)", key.Name, uid)
	}
	log.FromContext(ctx).V(2).Info("Adopted existing pod", "pod", key)
	return ObservationFrom(pod), nil
}

// ensureService creates the FLJob's Service, or brings the existing one of
// the same FLJob to the wanted ports and selector.
func (b *Backend) ensureService(ctx context.Context, want *corev1.Service, w *backends.Workload) error {
	err := b.c.Create(ctx, want)
	if err == nil || !apierrors.IsAlreadyExists(err) {
		if err != nil {
			err = fmt.Errorf("create service %s: %w", want.Name, err)
		}
		return err
	}

	got := &corev1.Service{}
	if err := b.r.Get(ctx, client.ObjectKeyFromObject(want), got); err != nil {
		return fmt.Errorf("get existing service %s: %w", want.Name, err)
	}
	switch uid := got.Labels[backends.LabelUID]; {
	case uid == w.Ref.UID:
	case got.Labels[backends.LabelManagedBy] == backends.ManagedBy &&
		got.Labels[backends.LabelName] == w.Ref.Name:
		return fmt.Errorf("service %s of an earlier FLJob (uid %q) still exists", want.Name, uid)
	default:
		return backends.Permanent(fljobv1.ReasonInvalidWorkload,
			"service %s exists and does not belong to this FLJob", want.Name)
	}
	if equality.Semantic.DeepEqual(got.Spec.Selector, want.Spec.Selector) &&
		samePorts(got.Spec.Ports, want.Spec.Ports) {
		return nil
	}
	got.Spec.Selector = want.Spec.Selector
	got.Spec.Ports = want.Spec.Ports
	if err := b.c.Update(ctx, got); err != nil {
		return fmt.Errorf("update service %s: %w", want.Name, err)
	}
	return nil
}

// samePorts compares the fields ServiceFor sets, ignoring what the API
// server fills in.
func samePorts(got, want []corev1.ServicePort) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Protocol != w.Protocol || g.Port != w.Port || g.TargetPort != w.TargetPort {
			return false
		}
	}
	return true
}

// +kubebuilder:rbac:groups="",resources=events,verbs=list

// Observe returns what the attempt's Pod shows; a missing Pod is
// StateAbsent. A wait whose cause only an event carries (a failed mount)
// is explained by the Pod's latest Warning event when a clientset is
// configured.
func (b *Backend) Observe(ctx context.Context, ref backends.Ref) (backends.Observation, error) {
	pod := &corev1.Pod{}
	key := client.ObjectKey{Namespace: ref.Namespace, Name: backends.WorkloadName(ref)}
	if err := b.r.Get(ctx, key, pod); err != nil {
		if apierrors.IsNotFound(err) {
			return backends.Observation{State: backends.StateAbsent}, nil
		}
		return backends.Observation{}, fmt.Errorf("get pod %s: %w", key.Name, err)
	}
	if ref.UID != "" && pod.Labels[backends.LabelUID] != ref.UID {
		// A pod left by an earlier FLJob of the same name is not this one's.
		return backends.Observation{State: backends.StateAbsent}, nil
	}
	obs := ObservationFrom(pod)
	if obs.State != backends.StateWaiting || obs.Message != "" || b.clientset == nil {
		return obs, nil
	}
	events, err := b.clientset.CoreV1().Events(ref.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.uid": string(pod.UID), "type": corev1.EventTypeWarning}.String(),
	})
	if err != nil {
		// The wait is still observed, only without its cause.
		log.FromContext(ctx).Error(err, "Could not list the events of a waiting pod", "pod", key)
		return obs, nil
	}
	return withEvent(obs, events.Items), nil
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=delete

// Stop deletes the attempt's Pod, giving its process grace to exit after
// SIGTERM. The Pod's status vanishes with it: observe the Pod before
// stopping it. A grace under one second becomes one second, so that the
// API server keeps the Pod until the kubelet confirms the kill (zero would
// delete it at once, the process possibly still running).
func (b *Backend) Stop(ctx context.Context, ref backends.Ref, grace time.Duration) error {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: ref.Namespace, Name: backends.WorkloadName(ref),
	}}
	log.FromContext(ctx).V(2).Info("Deleting pod", "pod", client.ObjectKeyFromObject(pod))
	err := b.c.Delete(ctx, pod, client.GracePeriodSeconds(max(graceSeconds(grace), 1)))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pod %s: %w", pod.Name, err)
	}
	return nil
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=deletecollection
// +kubebuilder:rbac:groups="",resources=services,verbs=delete

// Remove deletes every Pod of the FLJob, of every attempt, and its Service
// when this backend made it. Missing objects are no error.
func (b *Backend) Remove(ctx context.Context, key backends.Key) error {
	log.FromContext(ctx).V(2).Info("Deleting pods and service", "fljob", key.String())
	err := b.c.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(key.Namespace),
		client.MatchingLabels(backends.SelectorLabels(key)))
	if err != nil {
		return fmt.Errorf("delete pods of %s: %w", key, err)
	}

	svc := &corev1.Service{}
	if err := b.r.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: key.Name}, svc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get service %s: %w", key.Name, err)
	}
	if svc.Labels[backends.LabelManagedBy] != backends.ManagedBy || svc.Labels[backends.LabelName] != key.Name {
		return nil // Not ours: a Service that only shares the name.
	}
	err = b.c.Delete(ctx, svc, client.Preconditions{UID: ptr.To(svc.UID)})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete service %s: %w", key.Name, err)
	}
	return nil
}

// +kubebuilder:rbac:groups="",resources=pods/log,verbs=get

// Logs streams the job container's log of one attempt to out.
func (b *Backend) Logs(ctx context.Context, ref backends.Ref, opts backends.LogOptions, out io.Writer) error {
	if b.clientset == nil {
		return fmt.Errorf("read logs of %s: the kubernetes backend has no clientset", ref.Key)
	}
	lo := &corev1.PodLogOptions{Container: ContainerName, Follow: opts.Follow}
	if opts.Tail > 0 {
		lo.TailLines = ptr.To(int64(opts.Tail))
	}
	name := backends.WorkloadName(ref)
	stream, err := b.clientset.CoreV1().Pods(ref.Namespace).GetLogs(name, lo).Stream(ctx)
	if err != nil {
		return fmt.Errorf("open logs of pod %s: %w", name, err)
	}
	defer stream.Close()
	if _, err := io.Copy(out, stream); err != nil {
		return fmt.Errorf("read logs of pod %s: %w", name, err)
	}
	return nil
}
