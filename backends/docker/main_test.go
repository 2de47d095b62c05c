package docker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/backends/docker"
	"github.com/fljob-dev/fljob/test/builder"
	"github.com/fljob-dev/fljob/test/probe/report"
)

// probeImage is the test job image built by hack/build-images.sh.
const probeImage = "fljob-probe:dev"

// engineErr says why the tests cannot use the Docker Engine, if they
// cannot.
var engineErr error

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		engineErr = prepareEngine()
	}
	os.Exit(m.Run())
}

// prepareEngine checks that the engine answers and builds the probe image
// (the script only rebuilds it when its sources changed).
func prepareEngine() error {
	cli, err := docker.NewClientFromEnv()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return fmt.Errorf("docker engine unreachable: %w", err)
	}
	script := filepath.Join("..", "..", "hack", "build-images.sh")
	out, buildErr := exec.Command(script, "probe").CombinedOutput()
	_, err = cli.ImageInspect(ctx, probeImage)
	switch {
	case err == nil && buildErr != nil:
		fmt.Fprintf(os.Stderr, "warning: %s failed, using the existing %s: %v\n%s",
			script, probeImage, buildErr, out)
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("build %s with %s: %w\n%s", probeImage, script, buildErr, out)
	case err != nil:
		return fmt.Errorf("inspect %s: %w", probeImage, err)
	}
	return nil
}

// engine returns a client of the Docker Engine, or skips the test when
// there is none; on CI (CI=true) a missing engine fails it.
func engine(t *testing.T) *client.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the Docker Engine; skipped with -short")
	}
	if engineErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Docker Engine required on CI: %v", engineErr)
		}
		t.Skipf("no Docker Engine: %v", engineErr)
	}
	cli, err := docker.NewClientFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// root is where the workspace appears inside jobs.
const root = fljobv1.DefaultMountPath

// fixture is one test's engine, backend and site workspace on the host.
type fixture struct {
	t    *testing.T
	cli  *client.Client
	b    *docker.Backend
	opts docker.Options
	// ns is a namespace of this test only, so that leftovers of a crashed
	// run never collide with it.
	ns string
	// site is the site's workspace directory on the host.
	site string
}

func newFixture(t *testing.T, opts docker.Options) *fixture {
	t.Helper()
	cli := engine(t)
	site := t.TempDir()
	for _, d := range []string{"startup/a-sub", "local/a-sub"} {
		if err := os.MkdirAll(filepath.Join(site, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(site, "startup", "fed_client.json"), []byte("{}"),
		0o644); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, cli: cli, b: docker.New(cli, opts), opts: opts, ns: "t" + randHex(4),
		site: site}
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// job starts an FLJob of this test's namespace on the site's workspace,
// with a small root and memory limit.
func (f *fixture) job(name string) *builder.Builder {
	return builder.FLJob(name).Namespace(f.ns).UID("uid-" + f.ns + "-" + name).HostPath(f.site).
		JobID("job-" + name).SizeLimit("16Mi").Memory("64Mi").Grace(5)
}

// workload builds attempt 1 of job and removes its containers when the
// test ends.
func (f *fixture) workload(b *builder.Builder) *backends.Workload {
	f.t.Helper()
	w, err := backends.FromFLJob(b.Obj(), 1)
	if err != nil {
		f.t.Fatalf("FromFLJob: %v", err)
	}
	f.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := f.b.Remove(ctx, w.Ref.Key); err != nil {
			f.t.Errorf("Remove %s: %v", w.Ref.Key, err)
		}
	})
	return w
}

// start starts w and fails the test on an error.
func (f *fixture) start(w *backends.Workload) backends.Observation {
	f.t.Helper()
	obs, err := f.b.Start(context.Background(), w)
	if err != nil {
		f.t.Fatalf("Start %s: %v", w.Ref.Key, err)
	}
	return obs
}

// waitFor observes ref until cond holds, failing the test after timeout.
func (f *fixture) waitFor(ref backends.Ref, timeout time.Duration,
	cond func(backends.Observation) bool) backends.Observation {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		obs, err := f.b.Observe(context.Background(), ref)
		if err != nil {
			f.t.Fatalf("Observe %s: %v", ref.Key, err)
		}
		if cond(obs) {
			return obs
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s attempt %d: still %+v after %v", ref.Key, ref.Attempt, obs, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (f *fixture) waitExited(ref backends.Ref) backends.Observation {
	f.t.Helper()
	return f.waitFor(ref, time.Minute, func(o backends.Observation) bool {
		return o.State == backends.StateExited
	})
}

// jobDir is the host directory of w's job directory.
func (f *fixture) jobDir(w *backends.Workload) string {
	return filepath.Join(f.site, filepath.Base(w.WorkingDir))
}

// readReport decodes the probe report the job wrote into its directory.
func (f *fixture) readReport(w *backends.Workload, name string) *report.Report {
	f.t.Helper()
	file, err := os.Open(filepath.Join(f.jobDir(w), name))
	if err != nil {
		f.t.Fatalf("the probe's report is not on the host: %v", err)
	}
	defer file.Close()
	rep, err := report.Decode(file)
	if err != nil {
		f.t.Fatal(err)
	}
	return rep
}

// containers lists the containers of an FLJob, in any state.
func (f *fixture) containers(key backends.Key) []string {
	f.t.Helper()
	fl := make(client.Filters)
	for k, v := range backends.SelectorLabels(key) {
		fl.Add("label", k+"="+v)
	}
	list, err := f.cli.ContainerList(context.Background(), client.ContainerListOptions{
		All: true, Filters: fl})
	if err != nil {
		f.t.Fatal(err)
	}
	var ids []string
	for _, c := range list.Items {
		ids = append(ids, c.ID)
	}
	return ids
}
