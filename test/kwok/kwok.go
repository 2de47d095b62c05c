package kwok

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/fljob-dev/fljob/test/envtest"
)

// NodeName is the name of the fake node every pod is bound to.
const NodeName = "kwok-node"

// ImageNeverStarts is the repository of images the fake node never has:
// a pod of never-starts:<tag> stays Pending, its container waiting.
const ImageNeverStarts = "never-starts"

// Timings of the helper, generous for small shared machines.
const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
)

//go:embed stages/*.yaml
var stages embed.FS

// configuration is kwok's own: more pod stages played at once than kwok's
// default of 4, for runs of hundreds of pods. A configuration file takes
// none of kwok's defaults, so every parallelism is set.
const configuration = `apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  podPlayStageParallelism: 16
  nodePlayStageParallelism: 2
  nodeLeaseParallelism: 2
  podsOnNodeSyncParallelism: 2
`

// Cluster is a running kwok process with its fake node and binder.
type Cluster struct {
	// Node is the name of the fake node.
	Node string
	// Dir holds kwok's kubeconfig, stages and logs.
	Dir string
}

// Start runs kwok against env's API server until the test ends, creates the
// fake node and waits until kwok reports it Ready.
func Start(t testing.TB, env *envtest.Env) *Cluster {
	t.Helper()
	bin := RequireBinary(t, "kwok")
	c := &Cluster{Node: NodeName, Dir: t.TempDir()}
	args, err := c.prepare(env)
	if err != nil {
		t.Fatalf("kwok: %v", err)
	}

	logFile, err := os.Create(filepath.Join(c.Dir, "kwok.log"))
	if err != nil {
		t.Fatalf("kwok: %v", err)
	}
	cmd := exec.Command(bin, args...)
	// kwok also reads ~/.kwok/kwok.yaml: a home of its own keeps it out.
	cmd.Env = append(os.Environ(), "HOME="+c.Dir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("kwok: start %s: %v", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			c.dumpLogs(t)
		}
	})

	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatalf("kwok: clientset: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stopBinder, err := startBinder(ctx, cs, c.Node, filepath.Join(c.Dir, "binder.log"))
	if err != nil {
		t.Fatalf("kwok: %v", err)
	}
	t.Cleanup(stopBinder)

	start := time.Now()
	if err := c.createNode(ctx, cs, p); err != nil {
		c.dumpLogs(t)
		t.Fatalf("kwok: %v", err)
	}
	t.Logf("kwok: node %s Ready in %v", c.Node, time.Since(start).Round(time.Millisecond))
	return c
}

// prepare writes kwok's kubeconfig, for a member of system:masters, and its
// configuration with the stages, and returns kwok's arguments.
func (c *Cluster) prepare(env *envtest.Env) ([]string, error) {
	user, err := env.Environment.AddUser(crenvtest.User{
		Name: "kwok", Groups: []string{"system:masters"},
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("add user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	kubeconfigPath := filepath.Join(c.Dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	stages, err := Stages()
	if err != nil {
		return nil, err
	}
	configPath := filepath.Join(c.Dir, "kwok.yaml")
	config := append([]byte(configuration), stages...)
	if err := os.WriteFile(configPath, config, 0o600); err != nil {
		return nil, fmt.Errorf("write configuration: %w", err)
	}
	return []string{
		"--kubeconfig=" + kubeconfigPath,
		"--config=" + configPath,
		"--manage-all-nodes=true",
		// Room for a few hundred pods at once: the default is a /24.
		"--cidr=10.128.0.0/16",
		"--node-ip=10.127.0.1",
	}, nil
}

// Stages returns this package's stages as one multi-document YAML file.
func Stages() ([]byte, error) {
	names, err := fs.Glob(stages, "stages/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("list stages: %w", err)
	}
	var out bytes.Buffer
	for _, name := range names {
		data, err := stages.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read stage: %w", err)
		}
		out.WriteString("---\n")
		out.Write(data)
	}
	return out.Bytes(), nil
}

// createNode creates the fake node and waits until kwok made it Ready.
func (c *Cluster) createNode(ctx context.Context, cs kubernetes.Interface, p *process) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   c.Node,
		Labels: map[string]string{corev1.LabelHostname: c.Node, "type": "kwok"},
	}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create node %s: %w", c.Node, err)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, readyTimeout, true,
		func(ctx context.Context) (bool, error) {
			select {
			case <-p.done:
				return false, fmt.Errorf("kwok exited: %w", p.err)
			default:
			}
			n, err := cs.CoreV1().Nodes().Get(ctx, c.Node, metav1.GetOptions{})
			if err != nil {
				return false, fmt.Errorf("get node %s: %w", c.Node, err)
			}
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
	if err != nil {
		return fmt.Errorf("wait for node %s to become Ready: %w", c.Node, err)
	}
	return nil
}

// process is the running kwok.
type process struct {
	cmd *exec.Cmd
	// done is closed once kwok exited; err is then how.
	done chan struct{}
	err  error
}

// stop ends kwok with SIGTERM, then SIGKILL.
func (p *process) stop(t testing.TB) {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Logf("kwok: SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Logf("kwok: killed after %v", stopTimeout)
	}
}

// dumpLogs logs the tails of kwok's and the binder's logs.
func (c *Cluster) dumpLogs(t testing.TB) {
	for _, name := range []string{"kwok.log", "binder.log"} {
		data, err := os.ReadFile(filepath.Join(c.Dir, name))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		t.Logf("kwok: last lines of %s:\n%s", name, strings.Join(lines, "\n"))
	}
}

// RequireBinary returns the path of a control-plane binary from
// KUBEBUILDER_ASSETS, or else bin/k8s at the module root. A missing binary
// skips the test, or fails it when CI=true. Under go test -short the test
// is always skipped, as package envtest does.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("Skipping a test that needs %s in -short mode", name)
	}
	p, err := binary(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%v (CI=true: a missing binary is a failure)", err)
	}
	t.Skipf("%v; build it with hack/install-testbin.sh (make testbin)", err)
	return ""
}

func binary(name string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		root, err := envtest.RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin", "k8s")
	}
	p := filepath.Join(dir, name)
	fi, err := os.Stat(p)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("no executable %s in %s", name, dir)
	}
	return p, nil
}
