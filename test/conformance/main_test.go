package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/fljob-dev/fljob/test/envtest"
)

// Column names, as in status.workload.backend.
const (
	columnDocker     = "docker"
	columnKubernetes = "kubernetes"
)

// Exit codes of hack/node.sh.
const (
	nodeExitForbidden = 3
)

// Environment variables the suite reads.
const (
	envKubeconfig = "FLJOB_CONFORMANCE_KUBECONFIG"
	envOperator   = "FLJOB_CONFORMANCE_OPERATOR"
	envNodeExec   = "FLJOB_CONFORMANCE_NODE_EXEC"
	envNode       = "FLJOB_CONFORMANCE_NODE"
	envBackends   = "FLJOB_CONFORMANCE_BACKENDS"
	envParityOut  = "FLJOB_PARITY_OUT"
)

var (
	// repoRoot is the module's root directory.
	repoRoot string
	// runID makes this run's names unique on a shared Docker Engine.
	runID string
	// logFile receives the controllers' logs of both columns.
	logFile string
	// node is what TestMain learned about the Kubernetes column's cluster.
	node nodeSetup
	// results collects each column's observations for docs/parity.md.
	results = &resultSet{columns: map[string]*columnResult{}}
)

// nodeSetup says where the Kubernetes column runs, or why it does not.
type nodeSetup struct {
	// kubeconfig reaches the cluster.
	kubeconfig string
	// where describes the cluster in docs/parity.md.
	where string
	// skip is why the column does not run, when the machine forbids it or
	// it was switched off; err is a failure of the node script (a bug).
	skip string
	err  error
	// ours is true when TestMain used hack/node.sh up and must call down
	// (which stops the node unless another process still uses it).
	ours bool
	// upTime and downTime are how long hack/node.sh up and down took.
	upTime, downTime time.Duration
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	var err error
	if repoRoot, err = envtest.RepoRoot(); err != nil {
		fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
		os.Exit(1)
	}
	runID = randomHex(3)
	logFile = filepath.Join(repoRoot, "bin", "conformance", "controllers.log")
	if err := setUpLogs(logFile); err != nil {
		fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
		os.Exit(1)
	}
	var dockerBefore []string
	if selected(columnKubernetes) && runsConformance() {
		dockerBefore = dockerRules()
		node = bringUpNode()
	}
	code := m.Run()
	if node.ours {
		if err := takeDownNode(&node, dockerBefore); err != nil {
			fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
			code = 1
		}
	}
	if results.ran() {
		if err := writeParity(); err != nil {
			fmt.Fprintf(os.Stderr, "conformance: write parity table: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// runsConformance says whether -test.run lets TestConformance run, so that
// running only the unit tests does not bring the node up.
func runsConformance() bool {
	f := flag.Lookup("test.run")
	if f == nil || f.Value.String() == "" {
		return true
	}
	re, err := regexp.Compile(strings.Split(f.Value.String(), "/")[0])
	return err != nil || re.MatchString("TestConformance")
}

// selected says whether FLJOB_CONFORMANCE_BACKENDS (default: all) names the
// column.
func selected(column string) bool {
	v := os.Getenv(envBackends)
	return v == "" || slices.Contains(strings.Split(v, ","), column)
}

// bringUpNode finds or starts the Kubernetes column's cluster.
func bringUpNode() nodeSetup {
	if kc := os.Getenv(envKubeconfig); kc != "" {
		return nodeSetup{kubeconfig: kc, where: "the cluster of " + envKubeconfig + " (" + kc + ")"}
	}
	if os.Getenv(envNode) == "skip" {
		return nodeSetup{skip: envNode + "=skip: the real node was switched off"}
	}
	script := filepath.Join(repoRoot, "hack", "node.sh")
	where := "the single node of hack/node.sh on this machine"
	// up starts the node, or finds it up; either way it records this
	// process as a user, and down leaves the node up while another user
	// runs.
	fmt.Fprintf(os.Stderr, "conformance: hack/node.sh up (builds what is missing first)\n")
	start := time.Now()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(script, "up")
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	s := nodeSetup{where: where, upTime: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case err == nil:
		s.kubeconfig = strings.TrimSpace(lastLine(stdout.String()))
		s.ours = true
		if strings.Contains(stderr.String(), "already up") {
			s.where += " (already up)"
		}
	case errors.As(err, &exit) && exit.ExitCode() == nodeExitForbidden:
		s.skip = "hack/node.sh up reports that this machine forbids the node:\n" +
			forbiddenLines(stderr.String())
	default:
		s.err = fmt.Errorf("hack/node.sh up failed after %v: %w\n%s", s.upTime.Round(time.Second),
			err, tail(stderr.String(), 40))
		// Whatever did start must not outlive the run.
		s.ours = true
	}
	return s
}

// takeDownNode runs hack/node.sh down and records how long it took. When
// the node went down, Docker's iptables rules must be as before it came up:
// the node's teardown removes its own chains and no others.
func takeDownNode(s *nodeSetup, dockerBefore []string) error {
	start := time.Now()
	out, err := exec.Command(filepath.Join(repoRoot, "hack", "node.sh"), "down").CombinedOutput()
	s.downTime = time.Since(start)
	if err != nil {
		return fmt.Errorf("hack/node.sh down: %w\n%s", err, tail(string(out), 30))
	}
	if strings.Contains(string(out), "still used by") || dockerBefore == nil {
		return nil
	}
	if diff := cmp.Diff(dockerBefore, dockerRules()); diff != "" {
		return fmt.Errorf("Docker's iptables rules changed between hack/node.sh up and down "+
			"(-before +after):\n%s", diff)
	}
	return nil
}

// dockerRules returns the iptables rules that mention Docker, sorted, or
// nil when they cannot be read (not root, no iptables-save).
func dockerRules() []string {
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		return nil
	}
	rules := []string{}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "DOCKER") && !strings.HasPrefix(l, "#") {
			rules = append(rules, l)
		}
	}
	slices.Sort(rules)
	return rules
}

// forbiddenLines keeps the lines of the node script that describe what the
// machine forbids.
func forbiddenLines(stderr string) string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "forbidden") || strings.HasPrefix(l, "node:   ") {
			out = append(out, strings.TrimPrefix(l, "node: "))
		}
	}
	if len(out) == 0 {
		return tail(stderr, 5)
	}
	return strings.Join(out, "\n")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// setUpLogs sends controller-runtime's logs (both columns' controllers) to
// a file, so that a failure can be traced without flooding the test output.
func setUpLogs(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create log directory: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create log file: %w", err)
	}
	ctrllog.SetLogger(zap.New(zap.WriteTo(&lockedWriter{w: f}), zap.UseDevMode(true)))
	return nil
}

// lockedWriter serializes writes from the goroutines of two managers.
type lockedWriter struct {
	mu sync.Mutex
	w  *os.File
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// withTimeout is a context for one step of a column.
func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
