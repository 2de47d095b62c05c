package k8s_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/backends/k8s"
	"github.com/fljob-dev/fljob/test/builder"
	"github.com/fljob-dev/fljob/test/envtest"
)

// TestBackend runs the backend against a real kube-apiserver and etcd. The
// API server validates every Pod and Service the translation makes. There is
// no kubelet or scheduler: Pods stay unscheduled unless a case binds them,
// and the kubelet's part of a Pod's status is written by the test.
func TestBackend(t *testing.T) {
	env := envtest.StartEnv(t)
	clientset, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}
	h := &harness{c: env.Client, cs: clientset}

	// The cases share one control plane; each uses FLJobs of its own names.
	t.Run("Start creates one pod and one service; a restarted backend adopts them", h.startAndAdopt)
	t.Run("the pod in the API server keeps every isolation setting", h.podAsStored)
	t.Run("a pod of another owner is never adopted", h.foreignPod)
	t.Run("a service of another owner is never taken over", h.foreignService)
	t.Run("the service follows changed ports", h.servicePorts)
	t.Run("a pod the API server refuses is a permanent error", h.invalidPod)
	t.Run("Observe maps status and events", h.observe)
	t.Run("Stop deletes with grace and is idempotent", h.stop)
	t.Run("Remove deletes every attempt and the service, idempotently", h.remove)
	t.Run("Logs needs a clientset", h.logsWithoutClientset)
}

type harness struct {
	c  client.Client
	cs kubernetes.Interface
}

func (h *harness) backend() *k8s.Backend {
	return k8s.New(h.c, k8s.Options{Clientset: h.cs})
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return log.IntoContext(ctx, testr.New(t))
}

// createJob stores the FLJob in the API server, so that it gets a real uid
// and passes the CRD's validation, and returns its attempt's workload.
func (h *harness) createJob(ctx context.Context, t *testing.T, b *builder.Builder, attempt int32) (
	*fljobv1.FLJob, *backends.Workload) {
	t.Helper()
	job := b.UID("").Obj()
	if err := h.c.Create(ctx, job); err != nil {
		t.Fatalf("create FLJob: %v", err)
	}
	w, err := backends.FromFLJob(job, attempt)
	if err != nil {
		t.Fatalf("FromFLJob: %v", err)
	}
	return job, w
}

func (h *harness) pods(ctx context.Context, t *testing.T, key backends.Key) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := h.c.List(ctx, &list, client.InNamespace(key.Namespace),
		client.MatchingLabels(backends.SelectorLabels(key))); err != nil {
		t.Fatalf("list pods: %v", err)
	}
	return list.Items
}

func (h *harness) services(ctx context.Context, t *testing.T, ns string) []string {
	t.Helper()
	var list corev1.ServiceList
	if err := h.c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatalf("list services: %v", err)
	}
	var names []string
	for _, s := range list.Items {
		if s.Name != "kubernetes" {
			names = append(names, s.Name)
		}
	}
	return names
}

func mustStart(ctx context.Context, t *testing.T, b backends.Backend, w *backends.Workload) backends.Observation {
	t.Helper()
	obs, err := b.Start(ctx, w)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return obs
}

func (h *harness) startAndAdopt(t *testing.T) {
	ctx := ctxFor(t)
	job, w := h.createJob(ctx, t, builder.FLJob("adopt").Server(), 1)

	first := mustStart(ctx, t, h.backend(), w)
	if first.State != backends.StateWaiting || first.Name != "adopt-1" || first.ID == "" {
		t.Fatalf("first Start = %+v, want Waiting pod adopt-1 with an id", first)
	}
	// A restarted controller has a new backend and nothing in memory.
	second := mustStart(ctx, t, h.backend(), w)
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("second Start adopted another pod (-first +second):\n%s", diff)
	}

	pods := h.pods(ctx, t, w.Ref.Key)
	if len(pods) != 1 || string(pods[0].UID) != first.ID {
		t.Fatalf("pods after two Starts = %d, want exactly the first one", len(pods))
	}
	if diff := cmp.Diff([]string{"adopt"}, h.services(ctx, t, "default")); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	svc := &corev1.Service{}
	if err := h.c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "adopt"}, svc); err != nil {
		t.Fatalf("get service: %v", err)
	}
	wantSelector := backends.SelectorLabels(w.Ref.Key)
	wantSelector[backends.LabelUID] = string(job.UID)
	if diff := cmp.Diff(wantSelector, svc.Spec.Selector); diff != "" {
		t.Errorf("service selector (-want +got):\n%s", diff)
	}
	if svc.Spec.ClusterIP == "" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8002 {
		t.Errorf("service = clusterIP %q ports %+v, want a cluster IP and port 8002",
			svc.Spec.ClusterIP, svc.Spec.Ports)
	}
	if !metav1.IsControlledBy(svc, job) || !metav1.IsControlledBy(&pods[0], job) {
		t.Errorf("service and pod must be controlled by the FLJob")
	}
}

func (h *harness) podAsStored(t *testing.T) {
	ctx := ctxFor(t)
	_, w := h.createJob(ctx, t, builder.FLJob("stored").Volume("site-ws").CPU("500m").Memory("1Gi").
		GPUs(1).SecretEnv("TOKEN", "job-secret", "token"), 1)
	mustStart(ctx, t, h.backend(), w)

	got := &corev1.Pod{}
	if err := h.c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "stored-1"}, got); err != nil {
		t.Fatalf("get pod: %v", err)
	}
	want := k8s.PodFor(w)
	// Compare what the translation set against what the API server
	// stored, so that a field it dropped (say, behind a disabled feature
	// gate) or rewrote shows here.
	gc, wc := got.Spec.Containers[0], want.Spec.Containers[0]
	checks := []struct {
		name      string
		want, got any
	}{
		{"labels", want.Labels, got.Labels},
		{"owner references", want.OwnerReferences, got.OwnerReferences},
		{"pod security context", want.Spec.SecurityContext, got.Spec.SecurityContext},
		{"container security context", wc.SecurityContext, gc.SecurityContext},
		{"volumes", want.Spec.Volumes, got.Spec.Volumes},
		{"volume mounts", wc.VolumeMounts, gc.VolumeMounts},
		{"env", wc.Env, gc.Env},
		{"limits", wc.Resources.Limits, gc.Resources.Limits},
		{"requests default to limits", wc.Resources.Limits, gc.Resources.Requests},
		{"termination message", []any{wc.TerminationMessagePath, wc.TerminationMessagePolicy},
			[]any{gc.TerminationMessagePath, gc.TerminationMessagePolicy}},
		{"working dir", wc.WorkingDir, gc.WorkingDir},
		{"restart policy", corev1.RestartPolicyNever, got.Spec.RestartPolicy},
		{"no service account token", ptr.To(false), got.Spec.AutomountServiceAccountToken},
		{"no service links", ptr.To(false), got.Spec.EnableServiceLinks},
		{"grace", want.Spec.TerminationGracePeriodSeconds, got.Spec.TerminationGracePeriodSeconds},
		{"hostname", "stored", got.Spec.Hostname},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
	// Spot-check the statements themselves, not only their round trip.
	if gc.SecurityContext.Capabilities == nil || len(gc.SecurityContext.Capabilities.Drop) != 1 ||
		gc.SecurityContext.Capabilities.Drop[0] != "ALL" || *gc.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("container security context = %+v", gc.SecurityContext)
	}
	if got.Spec.Volumes[0].EmptyDir == nil || got.Spec.Volumes[0].EmptyDir.Medium != corev1.StorageMediumMemory {
		t.Errorf("workspace root = %+v, want a memory-backed emptyDir", got.Spec.Volumes[0])
	}
}

func (h *harness) foreignPod(t *testing.T) {
	ctx := ctxFor(t)
	_, w := h.createJob(ctx, t, builder.FLJob("foreign"), 1)
	mustStart(ctx, t, h.backend(), w)

	// Another FLJob of the same name (the first one deleted and made
	// again) finds a pod it does not own.
	other := *w
	other.Ref.UID = "another-uid"
	if obs, err := h.backend().Observe(ctx, other.Ref); err != nil || obs.State != backends.StateAbsent {
		t.Errorf("Observe for another owner = %+v, %v; want Absent", obs, err)
	}
	_, err := h.backend().Start(ctx, &other)
	p, ok := backends.AsPermanent(err)
	if !ok || p.Reason != fljobv1.ReasonInvalidWorkload || !strings.Contains(p.Message, "belongs to another owner") {
		t.Fatalf("Start over a foreign pod = %v, want a PermanentError", err)
	}

	// While that pod is being deleted, the wait is not permanent.
	pod := &corev1.Pod{}
	key := client.ObjectKey{Namespace: "default", Name: "foreign-1"}
	if err := h.c.Get(ctx, key, pod); err != nil {
		t.Fatalf("get pod: %v", err)
	}
	pod.Finalizers = []string{"test.fljob.dev/hold"}
	if err := h.c.Update(ctx, pod); err != nil {
		t.Fatalf("add finalizer: %v", err)
	}
	if err := h.c.Delete(ctx, pod); err != nil {
		t.Fatalf("delete pod: %v", err)
	}
	_, err = h.backend().Start(ctx, &other)
	if _, perm := backends.AsPermanent(err); err == nil || perm {
		t.Errorf("Start over a terminating foreign pod = %v, want a retryable error", err)
	}
	if err := h.c.Get(ctx, key, pod); err != nil {
		t.Fatalf("get pod: %v", err)
	}
	pod.Finalizers = nil
	if err := h.c.Update(ctx, pod); err != nil {
		t.Fatalf("drop finalizer: %v", err)
	}
}

func (h *harness) foreignService(t *testing.T) {
	ctx := ctxFor(t)
	user := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "taken"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if err := h.c.Create(ctx, user); err != nil {
		t.Fatalf("create user service: %v", err)
	}
	_, w := h.createJob(ctx, t, builder.FLJob("taken").Server(), 1)
	_, err := h.backend().Start(ctx, w)
	if _, ok := backends.AsPermanent(err); !ok {
		t.Fatalf("Start with a user's service of the same name = %v, want a PermanentError", err)
	}
	if n := len(h.pods(ctx, t, w.Ref.Key)); n != 0 {
		t.Errorf("pods = %d, want none made when the service is refused", n)
	}
	// Remove leaves a Service it did not make.
	if err := h.backend().Remove(ctx, w.Ref.Key); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if err := h.c.Get(ctx, client.ObjectKeyFromObject(user), &corev1.Service{}); err != nil {
		t.Errorf("the user's service after Remove: %v", err)
	}
}

func (h *harness) servicePorts(t *testing.T) {
	ctx := ctxFor(t)
	_, w := h.createJob(ctx, t, builder.FLJob("ports").Server(), 1)
	mustStart(ctx, t, h.backend(), w)

	w2 := *w
	w2.Ref.Attempt = 2
	w2.Ports = []backends.Port{{Name: "fl", Port: 8002, Protocol: "TCP"}, {Name: "admin", Port: 8003, Protocol: "TCP"}}
	mustStart(ctx, t, h.backend(), &w2)
	svc := &corev1.Service{}
	if err := h.c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "ports"}, svc); err != nil {
		t.Fatalf("get service: %v", err)
	}
	var got []int32
	for _, p := range svc.Spec.Ports {
		got = append(got, p.Port)
	}
	if diff := cmp.Diff([]int32{8002, 8003}, got); diff != "" {
		t.Errorf("service ports (-want +got):\n%s", diff)
	}
}

func (h *harness) invalidPod(t *testing.T) {
	ctx := ctxFor(t)
	// Two mounts at one path: the CRD keeps FLJobs from asking for it, so
	// the model is bent here to reach the API server's own check.
	_, w := h.createJob(ctx, t, builder.FLJob("invalid"), 1)
	w.Mount(backends.MountJob).Target = w.Mount(backends.MountStartup).Target
	_, err := h.backend().Start(ctx, w)
	p, ok := backends.AsPermanent(err)
	if !ok || !strings.Contains(p.Message, "must be unique") {
		t.Fatalf("Start = %v, want a PermanentError carrying the API server's reason", err)
	}
}

func (h *harness) observe(t *testing.T) {
	ctx := ctxFor(t)
	_, w := h.createJob(ctx, t, builder.FLJob("observe"), 1)
	b := h.backend()

	obs, err := b.Observe(ctx, w.Ref)
	if err != nil || obs.State != backends.StateAbsent {
		t.Fatalf("Observe before Start = %+v, %v; want Absent", obs, err)
	}
	started := mustStart(ctx, t, b, w)
	missing := w.Ref
	missing.Attempt = 2
	if obs, err := b.Observe(ctx, missing); err != nil || obs.State != backends.StateAbsent {
		t.Errorf("Observe of an attempt never started = %+v, %v; want Absent", obs, err)
	}

	// The kubelet's part: the container waits while its mount fails.
	pod := &corev1.Pod{}
	key := client.ObjectKey{Namespace: "default", Name: "observe-1"}
	setStatus := func(s corev1.ContainerState, phase corev1.PodPhase) {
		t.Helper()
		if err := h.c.Get(ctx, key, pod); err != nil {
			t.Fatalf("get pod: %v", err)
		}
		pod.Status.Phase = phase
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: k8s.ContainerName, Image: w.Image, State: s}}
		if err := h.c.Status().Update(ctx, pod); err != nil {
			t.Fatalf("update pod status: %v", err)
		}
	}
	setStatus(corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
		corev1.PodPending)
	const mountMsg = `MountVolume.SetUp failed for volume "job" : hostPath type check failed, ` +
		`/srv/fljob/site-1/job-1 is not a directory, unable to determine its type: ` +
		`stat /srv/fljob/site-1/job-1: no such file or directory`
	now := metav1.Now()
	for _, e := range []corev1.Event{
		{Type: corev1.EventTypeNormal, Reason: "Scheduled", Message: "assigned"},
		{Type: corev1.EventTypeWarning, Reason: "FailedMount", Message: mountMsg},
	} {
		e.GenerateName = "observe-1."
		e.Namespace = "default"
		e.InvolvedObject = corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "observe-1",
			UID: pod.UID, APIVersion: "v1"}
		e.FirstTimestamp, e.LastTimestamp = now, now
		e.Source = corev1.EventSource{Component: "kubelet"}
		if err := h.c.Create(ctx, &e); err != nil {
			t.Fatalf("create event: %v", err)
		}
	}
	obs, err = b.Observe(ctx, w.Ref)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	want := backends.Observation{State: backends.StateWaiting, Name: "observe-1", ID: started.ID,
		CreatedAt: started.CreatedAt, Reason: "FailedMount", Message: mountMsg}
	if diff := cmp.Diff(want, obs); diff != "" {
		t.Errorf("Observe of a failing mount (-want +got):\n%s", diff)
	}

	// The job wrote return code 103 and exited with 1.
	start, end := metav1.NewTime(now.Add(-time.Minute).Truncate(time.Second)), metav1.NewTime(now.Truncate(time.Second))
	setStatus(corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: 1, Reason: "Error", Message: "103\n", StartedAt: start, FinishedAt: end,
	}}, corev1.PodFailed)
	obs, err = b.Observe(ctx, w.Ref)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	want = backends.Observation{State: backends.StateExited, Name: "observe-1", ID: started.ID,
		CreatedAt: started.CreatedAt, StartedAt: start.Time, FinishedAt: end.Time,
		ExitCode: ptr.To[int32](1), ReturnCode: ptr.To[int32](103), Reason: "Error"}
	if diff := cmp.Diff(want, obs); diff != "" {
		t.Errorf("Observe of an exited job (-want +got):\n%s", diff)
	}
}

func (h *harness) stop(t *testing.T) {
	ctx := ctxFor(t)
	_, w := h.createJob(ctx, t, builder.FLJob("stop").Grace(30), 1)
	b := h.backend()
	mustStart(ctx, t, b, w)

	// Bind the pod to a node, so that deleting it waits for a kubelet
	// (there is none) and shows the grace it was given.
	err := h.cs.CoreV1().Pods("default").Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "stop-1"},
		Target:     corev1.ObjectReference{Kind: "Node", Name: "node-1"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("bind pod: %v", err)
	}
	if err := b.Stop(ctx, w.Ref, 5*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	pod := &corev1.Pod{}
	key := client.ObjectKey{Namespace: "default", Name: "stop-1"}
	if err := h.c.Get(ctx, key, pod); err != nil {
		t.Fatalf("get stopping pod: %v", err)
	}
	if pod.DeletionTimestamp == nil || ptr.Deref(pod.DeletionGracePeriodSeconds, -1) != 5 {
		t.Errorf("stopping pod: deletionTimestamp %v, grace %v; want set and 5",
			pod.DeletionTimestamp, ptr.Deref(pod.DeletionGracePeriodSeconds, -1))
	}
	// A Pod being deleted is still observed.
	if obs, err := b.Observe(ctx, w.Ref); err != nil || obs.State != backends.StateWaiting || obs.Name != "stop-1" {
		t.Errorf("Observe of a stopping pod = %+v, %v; want it Waiting", obs, err)
	}
	if err := b.Stop(ctx, w.Ref, 5*time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	// What a kubelet would do once the process is gone.
	if err := h.c.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatalf("finish deletion: %v", err)
	}
	if err := h.c.Get(ctx, key, pod); !apierrors.IsNotFound(err) {
		t.Fatalf("pod after deletion: %v, want NotFound", err)
	}
	if err := b.Stop(ctx, w.Ref, 5*time.Second); err != nil {
		t.Errorf("Stop of a deleted pod: %v", err)
	}
	never := w.Ref
	never.Attempt = 7
	if err := b.Stop(ctx, never, 0); err != nil {
		t.Errorf("Stop of an attempt never started: %v", err)
	}
}

func (h *harness) remove(t *testing.T) {
	ctx := ctxFor(t)
	_, w1 := h.createJob(ctx, t, builder.FLJob("remove").Server(), 1)
	_, bystander := h.createJob(ctx, t, builder.FLJob("bystander").Server(), 1)
	b := h.backend()
	mustStart(ctx, t, b, w1)
	w2 := *w1
	w2.Ref.Attempt = 2
	mustStart(ctx, t, b, &w2)
	mustStart(ctx, t, b, bystander)
	if n := len(h.pods(ctx, t, w1.Ref.Key)); n != 2 {
		t.Fatalf("pods before Remove = %d, want 2", n)
	}

	for i := range 2 {
		if err := b.Remove(ctx, w1.Ref.Key); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if n := len(h.pods(ctx, t, w1.Ref.Key)); n != 0 {
		t.Errorf("pods after Remove = %d, want 0", n)
	}
	if n := len(h.pods(ctx, t, bystander.Ref.Key)); n != 1 {
		t.Errorf("pods of another FLJob after Remove = %d, want 1", n)
	}
	svcs := h.services(ctx, t, "default")
	for _, s := range svcs {
		if s == "remove" {
			t.Errorf("service remove still exists after Remove")
		}
	}
	if !strings.Contains(strings.Join(svcs, ","), "bystander") {
		t.Errorf("services after Remove = %v, want bystander kept", svcs)
	}
}

func (h *harness) logsWithoutClientset(t *testing.T) {
	b := k8s.New(h.c, k8s.Options{})
	var out bytes.Buffer
	err := b.Logs(ctxFor(t), backends.Ref{Key: backends.Key{Namespace: "default", Name: "x"}, Attempt: 1},
		backends.LogOptions{}, &out)
	if err == nil || !strings.Contains(err.Error(), "no clientset") {
		t.Errorf("Logs without a clientset = %v, want an error saying so", err)
	}
}
