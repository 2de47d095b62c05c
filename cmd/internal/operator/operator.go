// Package operator runs the FLJob controller against a Kubernetes API
// server: a controller-runtime manager with leader election, health and
// readiness probes, secure metrics, and a workload cache restricted to the
// objects fljob owns. It is the one place where the API-server store and a
// concrete backend are wired together.
package operator

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/backends/docker"
	"github.com/fljob-dev/fljob/backends/k8s"
	"github.com/fljob-dev/fljob/controllers"
)

// Backend names accepted by Run.
const (
	BackendKubernetes = "kubernetes"
	BackendDocker     = "docker"
)

// Options configure the operator.
type Options struct {
	Kubeconfig              string
	MetricsAddr             string
	SecureMetrics           bool
	ProbeAddr               string
	LeaderElect             bool
	LeaderElectionNamespace string
	Workers                 int
	Resync                  time.Duration
	// DockerNetwork and GPUs configure the docker backend.
	DockerNetwork string
	GPUs          []string
	Zap           zap.Options
}

// BindFlags registers the operator's flags, zap's logging flags among them.
func BindFlags(fs *pflag.FlagSet) *Options {
	o := &Options{}
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "Kubeconfig of the cluster; in-cluster config or $KUBECONFIG when empty.")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8443", "Address of the metrics endpoint; 0 disables it.")
	fs.BoolVar(&o.SecureMetrics, "metrics-secure", true, "Serve metrics over HTTPS with authentication and authorization.")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "Elect a leader, so that only one replica reconciles.")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election lease.")
	fs.IntVar(&o.Workers, "workers", 8, "FLJobs reconciled at once.")
	fs.DurationVar(&o.Resync, "resync", controllers.DefaultResync, "Longest wait between two looks at an unfinished FLJob.")
	fs.StringVar(&o.DockerNetwork, "docker-network", docker.DefaultNetwork, "Docker network the jobs join (docker backend).")
	fs.StringSliceVar(&o.GPUs, "gpus", nil, "Ids of the host's GPUs that jobs may use (docker backend).")
	zfs := flag.NewFlagSet("zap", flag.ContinueOnError)
	o.Zap.BindFlags(zfs)
	fs.AddGoFlagSet(zfs)
	return o
}

// Scheme holds the types the operator reads and writes.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime(clientgoscheme.AddToScheme(s))
	utilruntime(fljobv1.AddToScheme(s))
	return s
}

func utilruntime(err error) {
	if err != nil {
		panic(err)
	}
}

// Run runs the operator with the named backend until ctx ends.
func Run(ctx context.Context, o *Options, backend string) error {
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.Zap)))
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if o.Kubeconfig == "" {
		cfg, err = ctrl.GetConfig()
	}
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  Scheme(),
		Cache:                   cacheOptions(),
		Metrics:                 metricsOptions(o),
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        "fljob-operator.fljob.dev",
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		// Stop reconciling at once when leadership is lost.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add readiness check: %w", err)
	}
	b, owns, err := newBackend(mgr, o, backend)
	if err != nil {
		return err
	}
	if err := Setup(mgr, b, owns, o); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// Setup registers the FLJob controller with the manager, on backend b.
func Setup(mgr ctrl.Manager, b backends.Backend, owns []client.Object, o *Options) error {
	r := &controllers.Reconciler{
		Store:    controllers.KubeStore{Client: mgr.GetClient()},
		Backend:  b,
		Recorder: mgr.GetEventRecorder("fljob-controller"),
		Policy:   controllers.DefaultPolicy,
		Clock:    clock.RealClock{},
		Metrics:  controllers.NewMetrics(metrics.Registry),
		Resync:   o.Resync,
	}
	err := controllers.KubeController{Reconciler: r}.SetupWithManager(mgr, controllers.SetupOptions{
		MaxConcurrentReconciles: o.Workers,
		Owns:                    owns,
	})
	if err != nil {
		return fmt.Errorf("set up controller: %w", err)
	}
	return nil
}

func newBackend(mgr ctrl.Manager, o *Options, name string) (backends.Backend, []client.Object, error) {
	switch name {
	case BackendKubernetes:
		cs, err := kubernetes.NewForConfig(mgr.GetConfig())
		if err != nil {
			return nil, nil, fmt.Errorf("create clientset: %w", err)
		}
		b := k8s.New(mgr.GetClient(), k8s.Options{Reader: mgr.GetAPIReader(), Clientset: cs})
		return b, []client.Object{&corev1.Pod{}}, nil
	case BackendDocker:
		cli, err := docker.NewClientFromEnv()
		if err != nil {
			return nil, nil, err
		}
		b := docker.New(cli, docker.Options{
			Network: o.DockerNetwork,
			GPUs:    o.GPUs,
			Secrets: kubeSecrets(mgr.GetAPIReader()),
			Log:     ctrl.Log.WithName("docker"),
		})
		return b, nil, nil
	}
	return nil, nil, fmt.Errorf("unknown backend %q: want %s or %s", name, BackendKubernetes, BackendDocker)
}

// kubeSecrets resolves secretKeyRef env values from the cluster's Secrets
// for the docker backend.
func kubeSecrets(r client.Reader) docker.SecretResolver {
	return func(ctx context.Context, namespace, name, key string) (string, error) {
		var s corev1.Secret
		if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s); err != nil {
			return "", fmt.Errorf("get secret %s/%s: %w", namespace, name, err)
		}
		v, ok := s.Data[key]
		if !ok {
			return "", fmt.Errorf("secret %s/%s has no key %q", namespace, name, key)
		}
		return string(v), nil
	}
}

// cacheOptions keep only fljob's own workloads in the cache, so that its
// memory does not grow with the cluster's other Pods and Services.
func cacheOptions() cache.Options {
	owned := labels.SelectorFromSet(labels.Set{backends.LabelManagedBy: backends.ManagedBy})
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}:     {Label: owned},
		&corev1.Service{}: {Label: owned},
	}}
}

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

func metricsOptions(o *Options) metricsserver.Options {
	m := metricsserver.Options{BindAddress: o.MetricsAddr, SecureServing: o.SecureMetrics}
	if o.SecureMetrics {
		m.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return m
}

// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
