// Package envtest starts a real kube-apiserver and etcd for a test, with the
// FLJob CRD installed, and returns a client whose scheme knows FLJobs and
// the built-in kinds.
//
// The binaries come from KUBEBUILDER_ASSETS, or else from bin/k8s at the
// repository root, where hack/install-testbin.sh (make testbin) builds them.
// Without them a test is skipped, except when CI=true: then it fails. Under
// go test -short it is always skipped.
package envtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
)

// startTimeout bounds each control-plane process's start; generous, as the
// machines running the suite are small and shared.
const startTimeout = 90 * time.Second

// Env is a running control plane.
type Env struct {
	// Config reaches the API server as a member of system:masters.
	Config *rest.Config
	// Client uses Scheme().
	Client client.Client
	// Environment is controller-runtime's, for AddUser and KubeConfig.
	Environment *crenvtest.Environment
	// Stop stops the control plane; it runs at the test's cleanup anyway
	// and may be called more than once.
	Stop func()
}

// Scheme returns a new scheme with the built-in kinds (corev1 among them)
// and FLJob.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(fljobv1.AddToScheme(s))
	return s
}

// Start starts a control plane with the FLJob CRD for the test and returns
// its config, a client and a stop function (also run at cleanup).
func Start(t testing.TB) (*rest.Config, client.Client, func()) {
	t.Helper()
	env := StartEnv(t)
	return env.Config, env.Client, env.Stop
}

// StartEnv is Start returning the whole Env.
func StartEnv(t testing.TB) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("Skipping a test that needs kube-apiserver and etcd in -short mode")
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("envtest: %v", err)
	}
	assets, err := assetsDir(root)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("envtest: %v (CI=true: a missing control plane is a failure)", err)
		}
		t.Skipf("envtest: %v; build them with hack/install-testbin.sh (make testbin)", err)
	}

	scheme := Scheme()
	te := &crenvtest.Environment{
		Scheme:                   scheme,
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: startTimeout,
	}
	start := time.Now()
	cfg, err := te.Start()
	if err != nil {
		_ = te.Stop() // Stops whatever part did start.
		t.Fatalf("envtest: start control plane: %v", err)
	}
	t.Logf("envtest: control plane with CRDs up in %v", time.Since(start).Round(time.Millisecond))

	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := te.Stop(); err != nil {
				t.Errorf("envtest: stop control plane: %v", err)
			}
		})
	}
	t.Cleanup(stop)

	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatalf("envtest: new client: %v", err)
	}
	return &Env{Config: cfg, Client: c, Environment: te, Stop: stop}
}

// assetsDir returns the directory holding kube-apiserver and etcd.
func assetsDir(root string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(root, "bin", "k8s")
	}
	var missing []string
	for _, name := range []string{"kube-apiserver", "etcd"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("no executable %v in %s", missing, dir)
	}
	return dir, nil
}

// RepoRoot finds the module root above the working directory, which go
// test sets to the package's directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
