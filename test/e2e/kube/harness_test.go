package kube

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/backends/k8s"
	"github.com/fljob-dev/fljob/controllers"
	"github.com/fljob-dev/fljob/test/builder"
	"github.com/fljob-dev/fljob/test/envtest"
	"github.com/fljob-dev/fljob/test/kwok"
)

// Timings of the suite. The waits are generous: the machines are small and
// shared, and a wait that ends early costs nothing.
const (
	poll        = 100 * time.Millisecond
	waitTimeout = 60 * time.Second
)

// testPolicy keeps retries short: a first retry after 2s, at most 8s.
var testPolicy = controllers.Policy{BackoffBase: 2 * time.Second, BackoffMax: 8 * time.Second}

// rcFile is the return code file of the builder's FLJobs inside their
// container: the job directory of job-1 under the default mount path.
var rcFile = path.Join(fljobv1.DefaultMountPath, "job-1", backends.ReturnCodeFile)

// run returns probe arguments that run for sleep, write rc into the return
// code file, and exit with exit.
func run(sleep time.Duration, exit, rc int32) []string {
	return kwok.Run{Sleep: sleep, Exit: exit, ReturnCode: ptr.To(rc), RCFile: rcFile}.Args()
}

// suite is one control plane with kwok, shared by every test of the
// package; each test works in a namespace of its own, with a manager of
// its own that watches only that namespace.
type suite struct {
	env *envtest.Env
	c   client.Client
	cs  kubernetes.Interface
}

func newSuite(t *testing.T) *suite {
	// controller-runtime's own packages log through its global logger.
	ctrl.SetLogger(testr.NewWithOptions(t, testr.Options{LogTimestamp: true}))
	kwok.RequireBinary(t, "kwok") // before spending seconds on the control plane
	env := envtest.StartEnv(t)
	kwok.Start(t, env)
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}
	return &suite{env: env, c: env.Client, cs: cs}
}

// ns is one test's namespace.
type ns struct {
	*suite
	t    *testing.T
	name string
	ctx  context.Context
}

// namespace creates the namespace name for t.
func (s *suite) namespace(t *testing.T, name string) *ns {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := s.c.Create(ctx, n); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return &ns{suite: s, t: t, name: name, ctx: ctx}
}

// managerOptions configure a manager of one namespace.
type managerOptions struct {
	workers int
	// quiet logs errors only.
	quiet bool
}

// manager is a running controller-runtime manager with the FLJob
// controller on the Kubernetes backend.
type manager struct {
	// metrics holds the controller's own metrics, of this manager only.
	metrics *prometheus.Registry
	// stop stops the manager and waits until it stopped.
	stop func()
}

// startManager runs the FLJob controller for the namespace until the test
// ends, wired as the operator wires it: the backend writes through the
// manager's client and reads through its API reader, the pod cache holds
// only fljob's pods, and Pod changes wake their FLJob. The metrics and
// probe servers are off; the controller's metrics go to a registry of its
// own.
func (n *ns) startManager(o managerOptions) *manager {
	t := n.t
	t.Helper()
	owned := labels.SelectorFromSet(labels.Set{backends.LabelManagedBy: backends.ManagedBy})
	verbosity := 2
	if o.quiet {
		verbosity = 0
	}
	mgr, err := ctrl.NewManager(n.env.Config, ctrl.Options{
		Scheme: envtest.Scheme(),
		Logger: testr.NewWithOptions(t, testr.Options{LogTimestamp: true, Verbosity: verbosity}),
		Cache: cache.Options{
			DefaultNamespaces: map[string]cache.Config{n.name: {}},
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Pod{}:     {Label: owned},
				&corev1.Service{}: {Label: owned},
			},
		},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Every test runs a controller named fljob in this one process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	backend := k8s.New(mgr.GetClient(), k8s.Options{Reader: mgr.GetAPIReader(), Clientset: n.cs})
	reg := prometheus.NewRegistry()
	r := &controllers.Reconciler{
		Store:    controllers.KubeStore{Client: mgr.GetClient()},
		Backend:  backend,
		Recorder: mgr.GetEventRecorder("fljob-controller"),
		Policy:   testPolicy,
		Clock:    clock.RealClock{},
		Metrics:  controllers.NewMetrics(reg),
		Resync:   controllers.DefaultResync,
	}
	err = controllers.KubeController{Reconciler: r}.SetupWithManager(mgr, controllers.SetupOptions{
		MaxConcurrentReconciles: max(o.workers, 1),
		Owns:                    []client.Object{&corev1.Pod{}},
	})
	if err != nil {
		t.Fatalf("set up controller: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	t.Cleanup(stop)
	return &manager{metrics: reg, stop: stop}
}

// create stores the FLJob made by b in the namespace.
func (n *ns) create(b *builder.Builder) *fljobv1.FLJob {
	n.t.Helper()
	job := b.Namespace(n.name).UID("").Obj()
	if err := n.c.Create(n.ctx, job); err != nil {
		n.t.Fatalf("create FLJob %s: %v", job.Name, err)
	}
	return job
}

// waitJob polls the FLJob until done accepts it and returns it.
func (n *ns) waitJob(name, what string, done func(*fljobv1.FLJob) bool) *fljobv1.FLJob {
	n.t.Helper()
	job := &fljobv1.FLJob{}
	n.poll(waitTimeout, what, func(ctx context.Context) (bool, error) {
		if err := n.c.Get(ctx, client.ObjectKey{Namespace: n.name, Name: name}, job); err != nil {
			return false, err
		}
		return done(job), nil
	}, func() string { return fmt.Sprintf("status %+v", job.Status) })
	return job
}

// waitPhase waits until the FLJob reaches phase.
func (n *ns) waitPhase(name string, phase fljobv1.Phase) *fljobv1.FLJob {
	n.t.Helper()
	return n.waitJob(name, "FLJob "+name+" "+string(phase), func(j *fljobv1.FLJob) bool {
		return j.Status.Phase == phase
	})
}

// waitGone waits until the object no longer exists.
func (n *ns) waitGone(obj client.Object) {
	n.t.Helper()
	key := client.ObjectKeyFromObject(obj)
	n.poll(waitTimeout, fmt.Sprintf("%T %s gone", obj, key), func(ctx context.Context) (bool, error) {
		err := n.c.Get(ctx, key, obj)
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	}, func() string { return "" })
}

// poll runs cond until it is true, failing the test with what and the
// state describe returns when it is not within timeout.
func (n *ns) poll(timeout time.Duration, what string, cond wait.ConditionWithContextFunc,
	describe func() string) {
	n.t.Helper()
	err := wait.PollUntilContextTimeout(n.ctx, poll, timeout, true, cond)
	if err != nil {
		n.t.Fatalf("waiting for %s: %v; %s", what, err, describe())
	}
}

// pod returns the pod of the FLJob's attempt.
func (n *ns) pod(job string, attempt int32) *corev1.Pod {
	n.t.Helper()
	pod := &corev1.Pod{}
	key := client.ObjectKey{Namespace: n.name, Name: backends.WorkloadName(backends.Ref{
		Key: backends.Key{Namespace: n.name, Name: job}, Attempt: attempt})}
	if err := n.c.Get(n.ctx, key, pod); err != nil {
		n.t.Fatalf("get pod %s: %v", key, err)
	}
	return pod
}

// pods lists every pod of the FLJob, of every attempt, by name.
func (n *ns) pods(job string) []corev1.Pod {
	n.t.Helper()
	var list corev1.PodList
	err := n.c.List(n.ctx, &list, client.InNamespace(n.name),
		client.MatchingLabels(backends.SelectorLabels(backends.Key{Namespace: n.name, Name: job})))
	if err != nil {
		n.t.Fatalf("list pods of %s: %v", job, err)
	}
	slices.SortFunc(list.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return list.Items
}

// event is what the suite checks of an event.
type event struct {
	Type   string
	Reason string
}

// events returns the events about the object with uid, oldest first.
func (n *ns) events(uid string) []corev1.Event {
	n.t.Helper()
	list, err := n.cs.CoreV1().Events(n.name).List(n.ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", uid).String(),
	})
	if err != nil {
		n.t.Fatalf("list events: %v", err)
	}
	items := list.Items
	slices.SortStableFunc(items, func(a, b corev1.Event) int {
		return eventTime(&a).Compare(eventTime(&b))
	})
	return items
}

func eventTime(e *corev1.Event) time.Time {
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.FirstTimestamp.Time
}

// waitEvents waits until the events about job include want, in any order
// and among others, and returns them all. Events are written
// asynchronously after the status.
func (n *ns) waitEvents(job *fljobv1.FLJob, want ...event) []corev1.Event {
	n.t.Helper()
	var got []corev1.Event
	what := fmt.Sprintf("events %v of %s", want, job.Name)
	n.poll(waitTimeout, what, func(context.Context) (bool, error) {
		got = n.events(string(job.UID))
		for _, w := range want {
			if !slices.ContainsFunc(got, func(e corev1.Event) bool {
				return e.Type == w.Type && e.Reason == w.Reason
			}) {
				return false, nil
			}
		}
		return true, nil
	}, func() string { return "got " + describeEvents(got) })
	return got
}

// countReason counts the occurrences of the events with reason.
func countReason(events []corev1.Event, reason string) int {
	var n int
	for _, e := range events {
		if e.Reason != reason {
			continue
		}
		switch {
		case e.Series != nil:
			n += int(e.Series.Count)
		case e.Count > 0:
			n += int(e.Count)
		default:
			n++
		}
	}
	return n
}

func describeEvents(events []corev1.Event) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "\n  %s %s: %s", e.Type, e.Reason, e.Message)
	}
	return b.String()
}

// counter sums the values of the counter name whose labels include want;
// for a histogram it sums the numbers of observations.
func counter(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue metrics
				}
			}
			if h := m.GetHistogram(); h != nil {
				sum += float64(h.GetSampleCount())
				continue
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// condition returns the FLJob's condition of type typ, or a zero one.
func condition(job *fljobv1.FLJob, typ string) metav1.Condition {
	for _, c := range job.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}
