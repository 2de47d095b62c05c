package docker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/backends/docker"
	"github.com/fljob-dev/fljob/test/probe/report"
)

const zeroCaps = "0000000000000000"

// TestWorkspaceIsolation runs the probe through the backend and checks,
// from inside the container, every property the isolation model states.
func TestWorkspaceIsolation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, docker.Options{})
	ctx := context.Background()

	// A file system mounted below startup/ on the host shows whether
	// read-only binds are recursive on this engine.
	subMount := filepath.Join(f.site, "startup", "mnt")
	canMount := os.Geteuid() == 0
	if canMount {
		if err := os.Mkdir(subMount, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mount("tmpfs", subMount, "tmpfs", 0, "size=1m,mode=1777"); err != nil {
			t.Fatalf("mount a tmpfs below startup/: %v", err)
		}
		t.Cleanup(func() { _ = syscall.Unmount(subMount, syscall.MNT_DETACH) })
	}

	jobDir := path.Join(root, "job-iso")
	w := f.workload(f.job("iso").Args("run",
		"--inspect-out", jobDir+"/report.json", "--job-dir", jobDir,
		"--check-dir", root+"/startup/mnt", "--fill-root", fmt.Sprint(32<<20),
		"--write", jobDir+"/out.txt=hello"))
	f.start(w)
	obs := f.waitExited(w.Ref)
	if obs.ExitCode == nil || *obs.ExitCode != 0 {
		t.Fatalf("probe exited %+v, want code 0", obs)
	}
	rep := f.readReport(w, "report.json")
	if len(rep.Errors) > 0 {
		t.Logf("probe could not inspect everything: %q", rep.Errors)
	}

	t.Run("root is a sticky world-writable tmpfs of the size limit", func(t *testing.T) {
		r := rep.Root
		if r == nil || r.Mode != "1777" || !r.Sticky || !r.Write.OK || !r.Mkdir.OK {
			t.Fatalf("root = %+v, want mode 1777, sticky, writable, mkdir %s ok", r, r.MkdirName)
		}
		if r.Mount == nil || r.Mount.FSType != "tmpfs" || r.Mount.ReadOnly {
			t.Errorf("root mount = %+v, want a writable tmpfs", r.Mount)
		}
		if r.MkdirName != "snapshot-storage" {
			t.Errorf("probe created %q in the root, want snapshot-storage", r.MkdirName)
		}
		fill := rep.Fill
		if fill == nil || fill.Write.OK || fill.Write.Errno != "ENOSPC" || fill.Written > 16<<20 {
			t.Errorf("filling the root with 32Mi = %+v, want ENOSPC at 16Mi at most", fill)
		}
	})
	t.Run("startup and local refuse writes, also in subdirectories", func(t *testing.T) {
		dirs := append(slices.Clone(rep.Startup), rep.Local...)
		want := []string{root + "/startup", root + "/startup/a-sub", root + "/local",
			root + "/local/a-sub"}
		var got []string
		for _, d := range dirs {
			got = append(got, d.Path)
			if d.Write.OK || d.Write.Errno != "EROFS" {
				t.Errorf("write in %s = %+v, want EROFS", d.Path, d.Write)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("inspected read-only dirs (-want +got):\n%s", diff)
		}
	})
	t.Run("a file system mounted below startup/ refuses writes too", func(t *testing.T) {
		if !canMount {
			t.Skip("mounting below startup/ needs root")
		}
		feat, err := f.b.Features(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sub, ok := rep.Lookup(root + "/startup/mnt")
		if !ok || !sub.Exists {
			t.Fatalf("the file system below startup/ is not visible: %+v", sub)
		}
		// Recursive read-only binds from API 1.44, one read-only bind per
		// file system below startup/ before.
		if sub.Write.OK || sub.Write.Errno != "EROFS" {
			t.Errorf("write below startup/ = %+v, want EROFS (API %s, recursive read-only %v)",
				sub.Write, feat.APIVersion, feat.RecursiveReadOnly)
		}
	})
	t.Run("job directory is writable and persists on the host", func(t *testing.T) {
		if rep.JobDir == nil || !rep.JobDir.Write.OK {
			t.Errorf("job dir = %+v, want writable", rep.JobDir)
		}
		data, err := os.ReadFile(filepath.Join(f.jobDir(w), "out.txt"))
		if err != nil || string(data) != "hello" {
			t.Errorf("out.txt on the host = %q, %v; want hello", data, err)
		}
	})
	t.Run("process is unprivileged", func(t *testing.T) {
		p := rep.Process
		if rep.UID != 1000 || rep.GID != 1000 {
			t.Errorf("uid:gid = %d:%d, want 1000:1000", rep.UID, rep.GID)
		}
		for name, set := range map[string]string{"CapInh": p.CapInh, "CapPrm": p.CapPrm,
			"CapEff": p.CapEff, "CapBnd": p.CapBnd, "CapAmb": p.CapAmb} {
			if set != zeroCaps {
				t.Errorf("%s = %s, want %s", name, set, zeroCaps)
			}
		}
		if p.NoNewPrivs != 1 || p.Seccomp != 2 {
			t.Errorf("NoNewPrivs = %d, Seccomp = %d; want 1 and 2 (filter)", p.NoNewPrivs, p.Seccomp)
		}
		for _, s := range rep.Sockets {
			if s.Exists {
				t.Errorf("%s is visible to the job", s.Path)
			}
		}
	})
	t.Run("identity, environment and working directory", func(t *testing.T) {
		got := []string{rep.Hostname, rep.Cwd, rep.Env["USER"], rep.Env["HOME"]}
		want := []string{"iso", jobDir, "fljob", "/var/tmp/nvflare/workspace"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("hostname, cwd, USER, HOME (-want +got):\n%s", diff)
		}
	})
}

// TestExitAndReturnCodes checks that exit codes and NVFlare's return
// codes, read from the job's _process_rc.txt, reach the observation.
func TestExitAndReturnCodes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, docker.Options{})
	type tc struct {
		name  string
		args  func(jobDir string) []string
		stale bool
		exit  int32
		rc    *int32
	}
	var tests []tc
	for _, code := range []int32{0, 1, 9, 101, 102, 103, 104} {
		tests = append(tests, tc{name: fmt.Sprintf("code %d", code), exit: code, rc: ptr(code),
			args: func(d string) []string {
				return []string{"run", "--rc-file", d + "/_process_rc.txt", "--rc", fmt.Sprint(code),
					"--exit", fmt.Sprint(code)}
			}})
	}
	tests = append(tests,
		tc{name: "return code differs from exit code", exit: 0, rc: ptr(9),
			args: func(d string) []string {
				return []string{"run", "--rc-file", d + "/_process_rc.txt", "--rc", "9"}
			}},
		tc{name: "no return code file", exit: 3, rc: nil,
			args: func(string) []string { return []string{"exit", "3"} }},
		tc{name: "garbage in the return code file", exit: 1, rc: nil,
			args: func(d string) []string {
				return []string{"run", "--write", d + "/_process_rc.txt=oops", "--exit", "1"}
			}},
		tc{name: "file left by an earlier attempt", exit: 1, rc: nil, stale: true,
			args: func(string) []string { return []string{"exit", "1"} }},
	)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := fmt.Sprintf("rc%d", i)
			w := f.workload(f.job(name).Args(tt.args(path.Join(root, "job-"+name))...))
			if tt.stale {
				file := filepath.Join(f.site, "job-"+name, backends.ReturnCodeFile)
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte("0"), 0o644); err != nil {
					t.Fatal(err)
				}
				old := time.Now().Add(-time.Hour)
				if err := os.Chtimes(file, old, old); err != nil {
					t.Fatal(err)
				}
			}
			f.start(w)
			obs := f.waitExited(w.Ref)
			if obs.ExitCode == nil || *obs.ExitCode != tt.exit {
				t.Errorf("exit code = %v, want %d (observation %+v)", deref(obs.ExitCode), tt.exit, obs)
			}
			if diff := cmp.Diff(tt.rc, obs.ReturnCode); diff != "" {
				t.Errorf("return code (-want +got):\n%s", diff)
			}
			if obs.StartedAt.IsZero() || obs.FinishedAt.Before(obs.StartedAt) {
				t.Errorf("started %v, finished %v", obs.StartedAt, obs.FinishedAt)
			}
		})
	}
}

func ptr(v int32) *int32 { return &v }

func deref(p *int32) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestMissingImage checks that an absent image is reported and pulled only
// where the pull policy allows.
func TestMissingImage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, docker.Options{})
	tests := []struct {
		policy, image, reason, message string
	}{
		{"Never", "fljob-missing:none", docker.ReasonImageNotFound, "imagePullPolicy is Never"},
		{"IfNotPresent", "fljob-missing:none", docker.ReasonImageNotFound, "pulling it failed"},
		// Always pulls even a present image; without a registry that fails.
		{"Always", probeImage, docker.ReasonImagePullFailed, "imagePullPolicy Always"},
	}
	for i, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			job := f.job(fmt.Sprintf("img%d", i)).Image(tt.image).Obj()
			job.Spec.ImagePullPolicy = fljobv1.PullPolicy(tt.policy)
			w, err := backends.FromFLJob(job, 1)
			if err != nil {
				t.Fatal(err)
			}
			obs, err := f.b.Start(context.Background(), w)
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if obs.State != backends.StateWaiting || obs.Reason != tt.reason ||
				!strings.Contains(obs.Message, tt.message) || !strings.Contains(obs.Message, tt.image) {
				t.Errorf("Start = %+v, want Waiting %s naming %s and %q", obs, tt.reason, tt.image,
					tt.message)
			}
			if ids := f.containers(w.Ref.Key); len(ids) != 0 {
				t.Errorf("containers %v exist for a job whose image is missing", ids)
			}
		})
	}
}

// TestKilledFromOutside checks that a container killed behind the
// backend's back is observed as exited with a failure code.
func TestKilledFromOutside(t *testing.T) {
	t.Parallel()
	f := newFixture(t, docker.Options{})
	w := f.workload(f.job("killed").Args("sleep", "60s"))
	obs := f.start(w)
	if obs.State != backends.StateRunning {
		t.Fatalf("Start = %+v, want Running", obs)
	}
	if _, err := f.cli.ContainerKill(context.Background(), obs.ID,
		client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	obs = f.waitExited(w.Ref)
	if obs.ExitCode == nil || *obs.ExitCode != 137 || obs.ReturnCode != nil {
		t.Errorf("killed container = %+v, want exit code 137 and no return code", obs)
	}
}

// TestObserveIgnoresAnotherFLJobsContainer checks that a container left by
// an earlier FLJob of the same name is not taken for the new FLJob's.
func TestObserveIgnoresAnotherFLJobsContainer(t *testing.T) {
	t.Parallel()
	f := newFixture(t, docker.Options{})
	w := f.workload(f.job("reused").Args("exit", "3"))
	f.start(w)
	f.waitExited(w.Ref)

	newer := w.Ref
	newer.UID = "uid-of-a-newer-fljob"
	obs, err := f.b.Observe(context.Background(), newer)
	if err != nil {
		t.Fatal(err)
	}
	if obs.State != backends.StateAbsent {
		t.Errorf("Observe of a newer FLJob = %+v, want Absent: the container is another FLJob's", obs)
	}
}

// TestStop checks that Stop sends SIGTERM and kills after the grace period.
func TestStop(t *testing.T) {
	t.Parallel()
	f := newFixture(t, docker.Options{})
	tests := []struct {
		name  string
		args  []string
		grace time.Duration
		want  int32
	}{
		{"exits on SIGTERM", []string{"sleep", "60s"}, 30 * time.Second, 143},
		{"killed after grace", []string{"sleep", "--ignore-term", "60s"}, time.Second, 137},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := f.workload(f.job(fmt.Sprintf("stop%d", i)).Args(tt.args...))
			if obs := f.start(w); obs.State != backends.StateRunning {
				t.Fatalf("Start = %+v, want Running", obs)
			}
			begin := time.Now()
			if err := f.b.Stop(context.Background(), w.Ref, tt.grace); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			took := time.Since(begin)
			obs := f.waitExited(w.Ref)
			if obs.ExitCode == nil || *obs.ExitCode != tt.want {
				t.Errorf("stopped container = %+v, want exit code %d", obs, tt.want)
			}
			if took > tt.grace+10*time.Second {
				t.Errorf("Stop took %v with grace %v", took, tt.grace)
			}
			if err := f.b.Stop(context.Background(), w.Ref, tt.grace); err != nil {
				t.Errorf("Stop of an exited container: %v", err)
			}
		})
	}
}

// TestAdoption checks that Start is idempotent: concurrent calls and a new
// backend (a restarted controller) adopt the attempt's container.
func TestAdoption(t *testing.T) {
	t.Parallel()
	f := newFixture(t, docker.Options{})
	w := f.workload(f.job("adopt").Args("sleep", "60s"))

	const callers = 4
	ids := make([]string, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			obs, err := f.b.Start(context.Background(), w)
			if err != nil {
				t.Errorf("Start %d: %v", i, err)
			}
			ids[i] = obs.ID
		})
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] || id == "" {
			t.Fatalf("concurrent Starts returned containers %v", ids)
		}
	}

	restarted := docker.New(engine(t), docker.Options{})
	obs, err := restarted.Start(context.Background(), w)
	if err != nil {
		t.Fatalf("Start on a new backend: %v", err)
	}
	if obs.ID != ids[0] || obs.State != backends.StateRunning {
		t.Errorf("new backend's Start = %+v, want the running container %s", obs, ids[0])
	}
	if got := f.containers(w.Ref.Key); len(got) != 1 {
		t.Errorf("containers of the FLJob = %v, want exactly one", got)
	}
	if obs, err := restarted.Observe(context.Background(), w.Ref); err != nil ||
		obs.ID != ids[0] || obs.State != backends.StateRunning {
		t.Errorf("new backend's Observe = %+v, %v; want the running container", obs, err)
	}
}

// TestConcurrentJobs runs 50 jobs of one site at once; each must finish
// with its own job directory, and only its own, intact.
func TestConcurrentJobs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, docker.Options{})
	const jobs = 50
	ws := make([]*backends.Workload, jobs)
	for i := range ws {
		name := fmt.Sprintf("many%02d", i)
		dir := path.Join(root, "job-"+name)
		ws[i] = f.workload(f.job(name).Memory("32Mi").SizeLimit("4Mi").Args("run",
			"--write", dir+"/id.txt="+name, "--rc-file", dir+"/_process_rc.txt", "--rc", "0",
			"--sleep", "1s"))
	}
	begin := time.Now()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			if _, err := f.b.Start(context.Background(), w); err != nil {
				t.Errorf("Start %s: %v", w.Ref.Key, err)
			}
		})
	}
	wg.Wait()
	started := time.Since(begin)
	for _, w := range ws {
		obs := f.waitFor(w.Ref, 2*time.Minute, func(o backends.Observation) bool {
			return o.State == backends.StateExited
		})
		if obs.ExitCode == nil || *obs.ExitCode != 0 || obs.ReturnCode == nil || *obs.ReturnCode != 0 {
			t.Errorf("%s: %+v, want exit and return code 0", w.Ref.Key, obs)
		}
		dir := f.jobDir(w)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if diff := cmp.Diff([]string{backends.ReturnCodeFile, "id.txt"}, names); diff != "" {
			t.Errorf("%s holds (-want +got):\n%s", dir, diff)
		}
		if data, _ := os.ReadFile(filepath.Join(dir, "id.txt")); string(data) != w.Ref.Name {
			t.Errorf("%s/id.txt = %q, want %q", dir, data, w.Ref.Name)
		}
	}
	t.Logf("%d jobs started in %v, all finished after %v", jobs, started, time.Since(begin))
}

// TestRemove checks that Remove leaves nothing of the FLJob and is
// idempotent.
func TestRemove(t *testing.T) {
	t.Parallel()
	f := newFixture(t, docker.Options{})
	w := f.workload(f.job("gone").Args("sleep", "60s"))
	f.start(w)
	w2 := *w
	w2.Ref.Attempt = 2
	w2.Labels = maps(w.Labels, backends.LabelAttempt, "2")
	f.start(&w2)
	ctx := context.Background()
	for range 2 {
		if err := f.b.Remove(ctx, w.Ref.Key); err != nil {
			t.Fatalf("Remove: %v", err)
		}
	}
	if ids := f.containers(w.Ref.Key); len(ids) != 0 {
		t.Errorf("containers left after Remove: %v", ids)
	}
	fl := make(client.Filters)
	for k, v := range backends.SelectorLabels(w.Ref.Key) {
		fl.Add("label", k+"="+v)
	}
	vols, err := f.cli.VolumeList(ctx, client.VolumeListOptions{Filters: fl})
	if err != nil {
		t.Fatal(err)
	}
	if len(vols.Items) != 0 {
		t.Errorf("volumes left after Remove: %v", vols.Items)
	}
	if obs, err := f.b.Observe(ctx, w.Ref); err != nil || obs.State != backends.StateAbsent {
		t.Errorf("Observe after Remove = %+v, %v; want Absent", obs, err)
	}
}

func maps(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for key, val := range m {
		if key != k {
			out[key] = val
		}
	}
	return out
}

// TestWatch checks that container events reach notify with the FLJob's key.
func TestWatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t, docker.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	keys := make(chan backends.Key, 64)
	done := make(chan error)
	go func() {
		done <- f.b.Watch(ctx, func(k backends.Key) {
			select {
			case keys <- k:
			default:
			}
		})
	}()
	time.Sleep(300 * time.Millisecond) // let the stream connect
	w := f.workload(f.job("watched").Args("exit", "0"))
	f.start(w)
	timeout := time.After(30 * time.Second)
	for seen := false; !seen; {
		select {
		case k := <-keys:
			seen = k == w.Ref.Key
		case <-timeout:
			t.Fatalf("no event of %s within 30s", w.Ref.Key)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch returned %v after its context ended", err)
	}
}

// TestLogs checks that logs are demultiplexed and can be followed.
func TestLogs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, docker.Options{})
	w := f.workload(f.job("logs").Args("run", "--inspect", "--sleep", "1s", "--exit", "2"))
	f.start(w)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.b.Logs(ctx, w.Ref, backends.LogOptions{Follow: true}, &out); err != nil {
		t.Fatalf("Logs: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("following the logs did not end when the container exited")
	}
	rep, err := report.Decode(&out)
	if err != nil {
		t.Fatalf("logs are not the probe's clean JSON report: %v", err)
	}
	if rep.Hostname != "logs" {
		t.Errorf("report from the logs has hostname %q, want logs", rep.Hostname)
	}
	missing := w.Ref
	missing.Attempt = 7
	if err := f.b.Logs(ctx, missing, backends.LogOptions{}, &out); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("Logs of a missing attempt = %v, want ErrNotFound", err)
	}
}

// TestSecrets checks that variables taken from Secrets are resolved, and
// that a missing Secret makes the attempt wait without a container.
func TestSecrets(t *testing.T) {
	t.Parallel()
	var f *fixture
	f = newFixture(t, docker.Options{Secrets: func(_ context.Context, ns, name, key string) (string, error) {
		if ns == f.ns && name == "creds" && key == "token" {
			return "s3cr3t", nil
		}
		return "", fmt.Errorf("secret %s/%s: %w", ns, name, docker.ErrSecretNotFound)
	}})
	f.b = docker.New(f.cli, f.opts)

	jobDir := path.Join(root, "job-sec")
	w := f.workload(f.job("sec").Env("PLAIN", "p").SecretEnv("TOKEN", "creds", "token").
		Args("run", "--inspect-out", jobDir+"/report.json"))
	f.start(w)
	f.waitExited(w.Ref)
	env := f.readReport(w, "report.json").Env
	if env["TOKEN"] != "s3cr3t" || env["PLAIN"] != "p" {
		t.Errorf("TOKEN=%q PLAIN=%q, want s3cr3t and p", env["TOKEN"], env["PLAIN"])
	}

	w2 := f.workload(f.job("nosec").SecretEnv("TOKEN", "absent", "token"))
	obs := f.start(w2)
	if obs.State != backends.StateWaiting || obs.Reason != docker.ReasonSecretNotFound ||
		!strings.Contains(obs.Message, "absent") {
		t.Errorf("Start with a missing Secret = %+v, want Waiting SecretNotFound", obs)
	}
	if ids := f.containers(w2.Ref.Key); len(ids) != 0 {
		t.Errorf("containers %v exist for a job whose Secret is missing", ids)
	}
}

// TestNetworkAlias checks that a client job reaches a server job by the
// server FLJob's name, and that the name is not shared across namespaces.
func TestNetworkAlias(t *testing.T) {
	t.Parallel()
	f := newFixture(t, docker.Options{})
	server := "srv" + f.ns
	ws := f.workload(f.job(server).Server().Args("serve", "--port", "8002",
		"--reply", "hello from server"))
	if obs := f.start(ws); obs.State != backends.StateRunning {
		t.Fatalf("server Start = %+v", obs)
	}
	jobDir := path.Join(root, "job-cl")
	wc := f.workload(f.job("cl").Args("run", "--inspect-out", jobDir+"/report.json",
		"--connect", server+":8002"))
	f.start(wc)
	f.waitExited(wc.Ref)
	c := f.readReport(wc, "report.json").Connect
	if c == nil || !c.OK || c.Reply != "hello from server" {
		t.Errorf("client connecting to %s:8002 = %+v, want the server's reply", server, c)
	}

	other := newFixture(t, docker.Options{})
	wo := other.workload(other.job(server).Server().Args("sleep", "1s"))
	obs := other.start(wo)
	if obs.State != backends.StateWaiting || obs.Reason != docker.ReasonHostnameInUse {
		t.Errorf("second %s in another namespace: Start = %+v, want Waiting HostnameInUse",
			server, obs)
	}
}

// TestInvalidWorkspace checks that a workspace the backend cannot prepare
// fails the attempt with a message naming the path.
func TestInvalidWorkspace(t *testing.T) {
	t.Parallel()
	f := newFixture(t, docker.Options{})
	if err := os.RemoveAll(filepath.Join(f.site, "local")); err != nil {
		t.Fatal(err)
	}
	w := f.workload(f.job("nolocal"))
	_, err := f.b.Start(context.Background(), w)
	want := filepath.Join(f.site, "local")
	if p, ok := backends.AsPermanent(err); !ok || p.Reason != "InvalidWorkload" ||
		!strings.Contains(p.Message, want) {
		t.Errorf("Start without local/ = %v, want InvalidWorkload naming %s", err, want)
	}

	g := newFixture(t, docker.Options{})
	file := filepath.Join(g.site, "job-notadir")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = g.b.Start(context.Background(), g.workload(g.job("notadir")))
	if p, ok := backends.AsPermanent(err); !ok || !strings.Contains(p.Message, file) {
		t.Errorf("Start with a file as job directory = %v, want InvalidWorkload naming %s",
			err, file)
	}
}

// TestJobDirectoryOwnership checks that the backend creates a missing job
// directory, or takes over a root-owned one, for the job's user.
func TestJobDirectoryOwnership(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("changing a directory's owner needs root")
	}
	f := newFixture(t, docker.Options{})
	rootOwned := filepath.Join(f.site, "job-taken")
	if err := os.Mkdir(rootOwned, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fresh", "taken"} {
		dir := path.Join(root, "job-"+name)
		w := f.workload(f.job(name).User(2345, 3456).Args("write", "--file", dir+"/x",
			"--data", "y"))
		f.start(w)
		if obs := f.waitExited(w.Ref); obs.ExitCode == nil || *obs.ExitCode != 0 {
			t.Errorf("%s: job writing its directory = %+v, want exit code 0", name, obs)
		}
		fi, err := os.Stat(filepath.Join(f.jobDir(w), "x"))
		if err != nil {
			t.Fatalf("%s: the job's file is not on the host: %v", name, err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 2345 || st.Gid != 3456 {
			t.Errorf("%s: file owned by %d:%d, want 2345:3456", name, st.Uid, st.Gid)
		}
	}
}

// TestVolumeSource runs the probe on a workspace held in a named volume,
// mounted the way this engine allows.
func TestVolumeSource(t *testing.T) {
	t.Parallel()
	f := newFixture(t, docker.Options{})
	ctx := context.Background()
	vol := "fljob-test-ws-" + f.ns
	res, err := f.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: vol, Driver: "local"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = f.cli.VolumeRemove(context.Background(), vol, client.VolumeRemoveOptions{Force: true})
	})
	base := res.Volume.Mountpoint
	for _, d := range []string{"startup/a-sub", "local/a-sub", "job-other"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	feat, err := f.b.Features(ctx)
	if err != nil {
		t.Fatal(err)
	}

	jobDir := path.Join(root, "job-vol")
	w := f.workload(f.job("vol").Volume(vol).Args("run", "--inspect-out", jobDir+"/report.json",
		"--job-dir", jobDir, "--check-dir", root+"/job-other"))
	f.start(w)
	obs := f.waitExited(w.Ref)
	if obs.ExitCode == nil || *obs.ExitCode != 0 {
		t.Fatalf("probe on a volume workspace = %+v, want exit code 0", obs)
	}
	file, err := os.Open(filepath.Join(base, "job-vol", "report.json"))
	if err != nil {
		t.Fatalf("the report is not in the volume: %v", err)
	}
	defer file.Close()
	rep, err := report.Decode(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range append(slices.Clone(rep.Startup), rep.Local...) {
		if d.Write.Errno != "EROFS" {
			t.Errorf("write in %s = %+v, want EROFS", d.Path, d.Write)
		}
	}
	if rep.JobDir == nil || !rep.JobDir.Write.OK || rep.Root == nil || rep.Root.Mode != "1777" {
		t.Errorf("job dir %+v, root %+v; want a writable job dir and a 1777 root", rep.JobDir, rep.Root)
	}
	if other, ok := rep.Lookup(root + "/job-other"); !ok || other.Exists {
		t.Errorf("another job's directory is visible: %+v", other)
	}

	ins, err := f.cli.ContainerInspect(ctx, obs.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ins.Container.HostConfig.Mounts {
		if m.Target != root {
			got = append(got, fmt.Sprintf("%s %s %s", m.Type, m.Source, m.Target))
		}
	}
	want := []string{"volume " + vol + " " + root + "/startup", "volume " + vol + " " + root + "/local",
		"volume " + vol + " " + jobDir}
	if !feat.VolumeSubpath {
		want = []string{"bind " + base + "/startup " + root + "/startup",
			"bind " + base + "/local " + root + "/local", "bind " + base + "/job-vol " + jobDir}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("API %s: workspace mounts (-want +got):\n%s", feat.APIVersion, diff)
	}
	t.Logf("API %s: volume subpath %v, mounts %q", feat.APIVersion, feat.VolumeSubpath, got)
}

// TestGPUAllocation checks device requests and the exclusive allocator on
// the real engine. This host has no GPUs, so containers that hold GPUs are
// created but cannot start; created containers hold their GPUs all the
// same.
func TestGPUAllocation(t *testing.T) {
	t.Parallel()
	opts := docker.Options{GPUs: []string{"0", "1", "2"}}
	f := newFixture(t, opts)
	ctx := context.Background()

	a := f.workload(f.job("gpua").GPUs(2))
	obsA := f.start(a)
	if obsA.ID == "" || obsA.State != backends.StateWaiting {
		t.Fatalf("Start with 2 GPUs = %+v, want a created container waiting", obsA)
	}
	t.Logf("a container asking for GPUs on a host without them: %s: %s", obsA.Reason, obsA.Message)
	ins, err := f.cli.ContainerInspect(ctx, obsA.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []container.DeviceRequest{{DeviceIDs: []string{"0", "1"},
		Capabilities: [][]string{{"gpu"}}}}
	if diff := cmp.Diff(want, ins.Container.HostConfig.DeviceRequests); diff != "" {
		t.Errorf("device requests in docker inspect (-want +got):\n%s", diff)
	}

	b := f.workload(f.job("gpub").GPUs(2))
	if obs := f.start(b); obs.State != backends.StateWaiting ||
		obs.Reason != docker.ReasonInsufficientGPU || obs.ID != "" {
		t.Errorf("Start with 2 GPUs while 2 of 3 are held = %+v, want InsufficientGPU", obs)
	}
	c := f.workload(f.job("gpuc").GPUs(1))
	obsC := f.start(c)
	if got := deviceIDs(t, f, obsC.ID); !cmp.Equal(got, []string{"2"}) {
		t.Errorf("third job got GPUs %v, want [2]", got)
	}

	// A new backend (a restarted controller) knows the allocation from the
	// containers' labels.
	restarted := docker.New(engine(t), opts)
	if obs, err := restarted.Start(ctx, b); err != nil || obs.Reason != docker.ReasonInsufficientGPU {
		t.Errorf("new backend: Start with 2 GPUs = %+v, %v; want InsufficientGPU", obs, err)
	}
	if err := restarted.Stop(ctx, a.Ref, time.Second); err != nil {
		t.Fatal(err)
	}
	obsB, err := restarted.Start(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := deviceIDs(t, f, obsB.ID); !cmp.Equal(got, []string{"0", "1"}) {
		t.Errorf("after the first job stopped, the waiting job got GPUs %v, want [0 1]", got)
	}

	_, err = restarted.Start(ctx, f.workload(f.job("gpud").GPUs(4)))
	if p, ok := backends.AsPermanent(err); !ok || p.Reason != "InvalidWorkload" {
		t.Errorf("Start with more GPUs than the host has = %v, want InvalidWorkload", err)
	}
}

func deviceIDs(t *testing.T, f *fixture, id string) []string {
	t.Helper()
	if id == "" {
		t.Fatal("no container")
	}
	ins, err := f.cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range ins.Container.HostConfig.DeviceRequests {
		ids = append(ids, r.DeviceIDs...)
	}
	return ids
}

// TestOOMKilled checks that a job killed for exceeding its memory limit is
// observed with reason OOMKilled. Writing into the tmpfs root is charged
// to the job's memory, so filling it beyond the limit is enough.
func TestOOMKilled(t *testing.T) {
	t.Parallel()
	f := newFixture(t, docker.Options{})
	w := f.workload(f.job("oom").Memory("16Mi").SizeLimit("64Mi").
		Args("inspect", "--fill-root", fmt.Sprint(48<<20)))
	f.start(w)
	obs := f.waitExited(w.Ref)
	if obs.Reason != "OOMKilled" || obs.ExitCode == nil || *obs.ExitCode != 137 {
		t.Errorf("job over its memory limit = %+v, want exit code 137 with reason OOMKilled", obs)
	}
}
