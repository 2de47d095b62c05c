package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/backends/docker"
	"github.com/fljob-dev/fljob/controllers"
	"github.com/fljob-dev/fljob/test/envtest"
)

// dockerNetwork is the network of the docker column's jobs, apart from the
// default one that other tests use at the same time.
const dockerNetwork = "fljob-conformance"

// dockerCluster sets up the docker column: FLJobs and the Secret in a real
// API server (envtest), reconciled by the controller onto this machine's
// Docker Engine.
func dockerCluster(t *testing.T) *cluster {
	cli := dockerEngine(t)
	env := envtest.StartEnv(t)
	ctx := withTimeout(t, time.Minute)

	b := docker.New(cli, docker.Options{
		Network: dockerNetwork,
		Secrets: envtestSecrets(env.Client),
		Log:     ctrl.Log.WithName("docker"),
	})
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 envtest.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Logger:                 ctrl.Log.WithName("docker-column"),
	})
	if err != nil {
		t.Fatalf("create manager: %v", err)
	}
	startController(t, mgr, b, nil)

	feat, err := b.Features(ctx)
	if err != nil {
		t.Fatalf("docker engine features: %v", err)
	}
	return &cluster{
		column: columnDocker,
		c:      env.Client,
		shell:  localShell,
		logs: func(ctx context.Context, job *fljobv1.FLJob) string {
			return backendLogs(ctx, b, job)
		},
		recursiveRO: func(context.Context) (bool, string) { return true, readOnlyHow(feat) },
		facts:       append(dockerFacts(ctx, t, cli, feat), nodeUpFact()...),
	}
}

// dockerEngine returns a client of the engine after building the probe
// image, or skips the column (fails it when CI=true) without an engine.
func dockerEngine(t *testing.T) *client.Client {
	t.Helper()
	missing := func(err error) {
		msg := fmt.Sprintf("no usable Docker Engine: %v", err)
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI=true: a missing Docker Engine is a failure)", msg)
		}
		results.skip(columnDocker, msg)
		t.Skip(msg)
	}
	cli, err := docker.NewClientFromEnv()
	if err != nil {
		missing(err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx := withTimeout(t, 5*time.Minute)
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		missing(err)
	}
	out, err := exec.CommandContext(ctx, filepath.Join(repoRoot, "hack", "build-images.sh"),
		"probe").CombinedOutput()
	if err != nil {
		t.Fatalf("build %s: %v\n%s", probeImage, err, out)
	}
	return cli
}

// envtestSecrets reads Secrets from the API server that holds the FLJobs,
// as the operator's docker mode does.
func envtestSecrets(c ctrlclient.Client) docker.SecretResolver {
	return func(ctx context.Context, namespace, name, key string) (string, error) {
		var s corev1.Secret
		err := c.Get(ctx, ctrlclient.ObjectKey{Namespace: namespace, Name: name}, &s)
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("%w: %s/%s", docker.ErrSecretNotFound, namespace, name)
		}
		if err != nil {
			return "", fmt.Errorf("get secret %s/%s: %w", namespace, name, err)
		}
		v, ok := s.Data[key]
		if !ok {
			return "", fmt.Errorf("%w: %s/%s has no key %q", docker.ErrSecretNotFound, namespace,
				name, key)
		}
		return string(v), nil
	}
}

// startController wires the FLJob controller as cmd/internal/operator's
// Setup does (controllers.Reconciler on a KubeStore, run by
// controllers.KubeController), on backend b, and runs the manager until the
// test ends. Both columns use it, so that they differ only in the backend.
// It is not operator.Setup itself only because Go's internal rule keeps
// cmd/internal/operator out of test/'s reach; Setup also registers its
// metrics in the global registry, which the two columns of one process
// cannot both do.
func startController(t *testing.T, mgr ctrl.Manager, b backends.Backend, owns []ctrlclient.Object) {
	t.Helper()
	r := &controllers.Reconciler{
		Store:    controllers.KubeStore{Client: mgr.GetClient()},
		Backend:  b,
		Recorder: mgr.GetEventRecorder("fljob-controller"),
		Policy:   controllers.DefaultPolicy,
		Clock:    clock.RealClock{},
		Metrics:  controllers.NewMetrics(prometheus.NewRegistry()),
		Resync:   10 * time.Second,
	}
	err := controllers.KubeController{Reconciler: r}.SetupWithManager(mgr,
		controllers.SetupOptions{MaxConcurrentReconciles: 4, Owns: owns})
	if err != nil {
		t.Fatalf("set up controller: %v", err)
	}
	startManager(t, mgr)
}

// startManager runs the manager until the test ends.
func startManager(t *testing.T, mgr ctrl.Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("manager: %v", err)
		}
	})
}

// backendLogs returns the output of an FLJob's latest attempt.
func backendLogs(ctx context.Context, lr backends.LogReader, job *fljobv1.FLJob) string {
	if job.Status.Attempts == 0 {
		return "(no attempt)"
	}
	ref := backends.Ref{Key: backends.Key{Namespace: job.Namespace, Name: job.Name},
		Attempt: job.Status.Attempts}
	var buf bytes.Buffer
	if err := lr.Logs(ctx, ref, backends.LogOptions{Tail: 50}, &buf); err != nil {
		return fmt.Sprintf("(no logs: %v)", err)
	}
	return buf.String()
}

// nodeUpFact says, when it is so, that the column ran while the real node
// was up: its kubelet, kube-proxy and iptables rules did not disturb Docker.
func nodeUpFact() []string {
	if node.kubeconfig == "" || node.err != nil || node.skip != "" ||
		os.Getenv(envKubeconfig) != "" {
		return nil
	}
	return []string{"ran while the node of hack/node.sh was up on the same machine " +
		"(its kubelet, containerd, kube-proxy and their iptables chains)"}
}

// readOnlyHow says how the backend makes file systems mounted below a
// read-only bind read-only on this engine.
func readOnlyHow(f docker.Features) string {
	if f.RecursiveReadOnly {
		return "recursive (Docker API " + f.APIVersion + ", BindOptions.ReadOnlyForceRecursive)"
	}
	return "Docker API " + f.APIVersion + " has no recursive read-only binds (API 1.44, " +
		"Docker 25); the backend binds each file system mounted below startup/ and local/ " +
		"read-only on its own"
}

// dockerFacts describes the engine in docs/parity.md.
func dockerFacts(ctx context.Context, t *testing.T, cli *client.Client, feat docker.Features) []string {
	info, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		t.Fatalf("docker info: %v", err)
	}
	i := info.Info
	return []string{
		fmt.Sprintf("Docker Engine %s (API %s negotiated), runc %s, storage driver %s",
			i.ServerVersion, feat.APIVersion, i.RuncCommit.ID, i.Driver),
		fmt.Sprintf("cgroup driver %s, cgroup v%s, kernel %s", i.CgroupDriver, i.CgroupVersion,
			i.KernelVersion),
		"read-only binds: " + readOnlyHow(feat),
		"FLJobs in a kube-apiserver and etcd (envtest); controllers.Reconciler with " +
			"backends/docker; network " + dockerNetwork,
	}
}
