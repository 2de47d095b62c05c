package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
)

// The end-to-end tests build bin/fljob into a temporary directory and run
// it as a subprocess against the real Docker Engine, each test with a state
// directory and a namespace of its own, so that they never see each other's
// FLJobs or containers.

const probeImage = "fljob-probe:dev"

var (
	// fljobBin is the binary under test.
	fljobBin string
	// setupErr says why the end-to-end tests cannot run.
	setupErr error
	repoRoot = filepath.Join("..", "..")
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if testing.Short() {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "fljob-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		setupErr = setup(dir)
		return m.Run()
	}()
	os.Exit(code)
}

// setup builds the binary and the test images.
func setup(dir string) error {
	fljobBin = filepath.Join(dir, "fljob")
	build := exec.Command("go", "build", "-o", fljobBin, ".")
	build.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build fljob: %w\n%s", err, out)
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return fmt.Errorf("docker engine unreachable: %w: %s", err, bytes.TrimSpace(out))
	}
	script := filepath.Join(repoRoot, "hack", "build-images.sh")
	if out, err := exec.Command(script, "probe", "fedavg").CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", script, err, out)
	}
	return nil
}

// requireE2E skips or fails a test that cannot run: a missing engine is a
// failure when CI=true.
func requireE2E(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("Skipping an end-to-end test in -short mode")
	}
	if setupErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("end-to-end setup failed (CI=true: a missing Docker Engine is a failure): %v", setupErr)
		}
		t.Skipf("end-to-end setup failed: %v", setupErr)
	}
}

// env is one test's state directory, namespace and workspace.
type env struct {
	t         *testing.T
	stateDir  string
	namespace string
	// workspace is a site workspace with startup/ and local/.
	workspace string
	extraEnv  []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	requireE2E(t)
	e := &env{t: t, stateDir: t.TempDir(), namespace: "e2e-" + randomSuffix()}
	e.workspace = e.newWorkspace("site")
	t.Cleanup(e.removeContainers)
	return e
}

func randomSuffix() string {
	b := make([]byte, 4)
	rand.Read(b) //nolint:errcheck // crypto/rand does not fail
	return hex.EncodeToString(b)
}

// newWorkspace makes a site workspace with placeholder startup/ and local/.
func (e *env) newWorkspace(name string) string {
	e.t.Helper()
	ws := filepath.Join(e.t.TempDir(), name)
	for _, d := range []string{"startup", "local"} {
		if err := os.MkdirAll(filepath.Join(ws, d), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ws, d, "placeholder.json"), []byte("{}\n"), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	return ws
}

// result is one run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// fljob runs the binary with the env's state directory and namespace.
func (e *env) fljob(args ...string) result {
	e.t.Helper()
	return e.fljobIn(e.namespace, args...)
}

// fljobIn runs the binary in a namespace; "" leaves the flag out.
func (e *env) fljobIn(namespace string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	full := []string{"--state-dir", e.stateDir}
	if namespace != "" {
		full = append(full, "--namespace", namespace)
	}
	cmd := exec.CommandContext(ctx, fljobBin, append(full, args...)...)
	cmd.Env = append(os.Environ(), e.extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		e.t.Fatalf("run fljob %v: %v", args, err)
	}
	if ctx.Err() != nil {
		e.t.Fatalf("fljob %v did not finish in time:\n%s", args, r)
	}
	return r
}

// mustFljob runs the binary and fails the test unless it exits 0.
func (e *env) mustFljob(args ...string) result {
	e.t.Helper()
	r := e.fljob(args...)
	if r.code != 0 {
		e.t.Fatalf("fljob %v failed:\n%s", args, r)
	}
	return r
}

// operator is a background `fljob operator`.
type operator struct {
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan struct{}
	err    error
}

// startOperator starts `fljob operator` on the env's store.
func (e *env) startOperator() *operator {
	e.t.Helper()
	logs := &syncBuffer{}
	cmd := exec.Command(fljobBin, "--state-dir", e.stateDir, "operator", "--workers", "4",
		"--zap-log-level", "info")
	cmd.Env = append(os.Environ(), e.extraEnv...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	o := &operator{cmd: cmd, logs: logs, exited: make(chan struct{})}
	go func() {
		o.err = cmd.Wait()
		close(o.exited)
	}()
	e.t.Cleanup(o.kill)
	return o
}

// kill ends the operator with SIGKILL, as a crash would.
func (o *operator) kill() {
	select {
	case <-o.exited:
		return
	default:
	}
	o.cmd.Process.Kill() //nolint:errcheck // it may have exited meanwhile
	<-o.exited
}

// stop ends the operator with SIGTERM and checks that it exits cleanly.
func (o *operator) stop(t *testing.T) {
	t.Helper()
	if err := o.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-o.exited:
		if o.err != nil {
			t.Errorf("operator exited with %v:\n%s", o.err, o.logs)
		}
	case <-time.After(time.Minute):
		t.Fatalf("operator did not stop on SIGTERM:\n%s", o.logs)
	}
}

// syncBuffer is a bytes.Buffer safe for a writing process and a reading
// test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// probeJob is an FLJob manifest running the probe with args.
func (e *env) probeJob(name, jobID string, args ...string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	return fmt.Sprintf(`apiVersion: fljob.dev/v1
kind: FLJob
metadata:
  name: %s
spec:
  jobID: %s
  role: Client
  site: site-1
  image: %s
  imagePullPolicy: Never
  args: [%s]
  workspace:
    sizeLimit: 16Mi
    source:
      hostPath:
        path: %s
  terminationGracePeriodSeconds: 5
  pendingDeadlineSeconds: 60
`, name, jobID, probeImage, strings.Join(quoted, ", "), e.workspace)
}

// writeManifests writes documents into a new directory, one file each.
func (e *env) writeManifests(docs map[string]string) string {
	e.t.Helper()
	dir := e.t.TempDir()
	for name, doc := range docs {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	return dir
}

// jobs returns the FLJobs of the env's namespace, by name.
func (e *env) jobs() map[string]fljobv1.FLJob {
	e.t.Helper()
	r := e.fljob("get", "-o", "json")
	if r.code != 0 {
		e.t.Fatalf("get -o json:\n%s", r)
	}
	var list fljobv1.FLJobList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		e.t.Fatalf("decode get -o json: %v\n%s", err, r.stdout)
	}
	out := map[string]fljobv1.FLJob{}
	for _, j := range list.Items {
		out[j.Name] = j
	}
	return out
}

// eventually polls cond every 200ms until it holds or timeout passes.
func (e *env) eventually(timeout time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// container is one container of the env's namespace, as docker ps shows it.
type container struct {
	Name, State, Job, Attempt string
}

// containers lists every container of the env's namespace, running or not.
func (e *env) containers() []container {
	e.t.Helper()
	out, err := exec.Command("docker", "ps", "-a",
		"--filter", "label=fljob.dev/namespace="+e.namespace,
		"--format", `{{.Names}}|{{.State}}|{{.Label "fljob.dev/name"}}|{{.Label "fljob.dev/attempt"}}`).Output()
	if err != nil {
		e.t.Fatalf("docker ps: %v", err)
	}
	var cs []container
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		cs = append(cs, container{Name: f[0], State: f[1], Job: f[2], Attempt: f[3]})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	return cs
}

// volumes lists the volumes of the env's namespace.
func (e *env) volumes() []string {
	e.t.Helper()
	out, err := exec.Command("docker", "volume", "ls", "-q",
		"--filter", "label=fljob.dev/namespace="+e.namespace).Output()
	if err != nil {
		e.t.Fatalf("docker volume ls: %v", err)
	}
	return strings.Fields(string(out))
}

// removeContainers removes what the test left in the engine.
func (e *env) removeContainers() {
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=fljob.dev/namespace="+e.namespace).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run() //nolint:errcheck // cleanup
	}
	out, _ = exec.Command("docker", "volume", "ls", "-q", "--filter",
		"label=fljob.dev/namespace="+e.namespace).Output()
	if vols := strings.Fields(string(out)); len(vols) > 0 {
		exec.Command("docker", append([]string{"volume", "rm", "-f"}, vols...)...).Run() //nolint:errcheck // cleanup
	}
}

// snapshot returns every file of the state directory with its content,
// except the lock files, whose content is not state.
func (e *env) snapshot() map[string]string {
	e.t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(e.stateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".lock") {
			return err
		}
		data, err := os.ReadFile(p)
		files[strings.TrimPrefix(p, e.stateDir)] = string(data)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return files
}

// readFile returns a file's content, or "<missing>".
func readFile(p string) string {
	data, err := os.ReadFile(p)
	if err != nil {
		return "<missing>"
	}
	return string(data)
}
