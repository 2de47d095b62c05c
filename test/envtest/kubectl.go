package envtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Kubeconfig writes a kubeconfig of a system:masters user of the control
// plane into a temporary file and returns its path.
func (e *Env) Kubeconfig(t testing.TB) string {
	t.Helper()
	user, err := e.Environment.AddUser(crenvtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("envtest: add user: %v", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("envtest: kubeconfig: %v", err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatalf("envtest: write kubeconfig: %v", err)
	}
	return path
}

// Kubectl runs the kubectl beside the control plane's binaries against it
// and returns its combined output; a failure fails the test.
func (e *Env) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	bin := filepath.Join(e.Environment.BinaryAssetsDirectory, "kubectl")
	out, err := exec.Command(bin, append([]string{"--kubeconfig", e.Kubeconfig(t)}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return string(out)
}
