package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
)

// TestRunDemo runs the fedavg demo's manifests, rendered to a temporary
// workspace, with `fljob run` and checks the results on the host.
func TestRunDemo(t *testing.T) {
	e := newEnv(t)
	root := t.TempDir()
	dir := filepath.Join(root, "manifests")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(repoRoot, "examples", "fedavg", "manifests")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range entries {
		data, err := os.ReadFile(filepath.Join(src, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		rendered := strings.ReplaceAll(string(data), "/var/tmp/fljob-demo", filepath.Join(root, "workspace"))
		if err := os.WriteFile(filepath.Join(dir, ent.Name()), []byte(rendered), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sites := []string{"server", "site-1", "site-2"}
	for _, site := range sites {
		for _, d := range []string{"startup", "local"} {
			if err := os.MkdirAll(filepath.Join(root, "workspace", site, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}

	r := e.fljob("run", "-f", dir, "--timeout", "3m")
	if r.code != 0 {
		t.Fatalf("fljob run failed:\n%s", r)
	}
	for _, want := range []string{
		"fljob.fljob.dev/fedavg-server created",
		"fedavg-server | ", "fedavg-site-1 | ", "fedavg-site-2 | ",
		"msg=\"Finished round\"",
		"[3/3 finished]",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("run output lacks %q:\n%s", want, r.stdout)
		}
	}
	summary := regexp.MustCompile(`(?m)^fedavg-(server|site-1|site-2)\s+(Server|Client)\s+\S+\s+Succeeded\s+0\s+0\s`)
	if n := len(summary.FindAllString(r.stdout, -1)); n != 3 {
		t.Errorf("summary shows %d succeeded jobs with exit and return code 0, want 3:\n%s", n, r.stdout)
	}
	for _, site := range sites {
		jobDir := filepath.Join(root, "workspace", site, "fedavg-demo")
		if rc := readFile(filepath.Join(jobDir, "_process_rc.txt")); rc != "0" {
			t.Errorf("%s: _process_rc.txt = %q, want 0", site, rc)
		}
		result := "local_metrics.json"
		if site == "server" {
			result = "global_model.json"
		}
		if data := readFile(filepath.Join(jobDir, result)); !strings.Contains(data, "rounds") {
			t.Errorf("%s: %s = %q, want the job's results", site, result, data)
		}
		if !strings.Contains(r.stdout, jobDir) {
			t.Errorf("summary does not say where %s's results are (%s)", site, jobDir)
		}
	}
	// Only the job directory persists: the server's storage directories
	// live in the ephemeral workspace root.
	if _, err := os.Stat(filepath.Join(root, "workspace", "server", "snapshot-storage")); !os.IsNotExist(err) {
		t.Errorf("snapshot-storage reached the host workspace: %v", err)
	}
	// The run's own controller stopped with it: nothing holds the lock.
	if got := len(e.containers()); got != 3 {
		t.Errorf("%d containers after the run, want the 3 exited ones", got)
	}
}

// TestRunReportsFailures checks that run exits 1 and names the FLJob that
// failed, with its exit and return codes in the summary.
func TestRunReportsFailures(t *testing.T) {
	e := newEnv(t)
	dir := e.writeManifests(map[string]string{
		"ok.yaml":   e.probeJob("ok", "job-ok", "run", "--rc-file", "_process_rc.txt", "--rc", "0"),
		"fail.yaml": e.probeJob("fails", "job-fail", "run", "--rc-file", "_process_rc.txt", "--rc", "103", "--exit", "3"),
	})
	r := e.fljob("run", "-f", dir, "--timeout", "2m")
	if r.code != 1 {
		t.Fatalf("run with a failing job exited %d, want 1:\n%s", r.code, r)
	}
	if want := "error: 1 of 2 FLJobs failed: fails (BackoffLimitExceeded)\n"; r.stderr != want {
		t.Errorf("stderr = %q, want %q", r.stderr, want)
	}
	if !regexp.MustCompile(`(?m)^fails\s+Client\s+site-1\s+Failed\s+3\s+103\s`).MatchString(r.stdout) {
		t.Errorf("summary lacks the failed job with exit 3 and rc 103:\n%s", r.stdout)
	}
}

// TestApplyGetDescribeLogs applies a job for a running operator and reads
// it back with every read command.
func TestApplyGetDescribeLogs(t *testing.T) {
	e := newEnv(t)
	op := e.startOperator()
	file := filepath.Join(e.writeManifests(map[string]string{
		"probe.yaml": e.probeJob("probe-1", "job-7", "run", "--inspect", "--rc-file", "_process_rc.txt", "--rc", "0"),
	}), "probe.yaml")

	r := e.mustFljob("apply", "-f", file)
	if r.stdout != "fljob.fljob.dev/probe-1 created\n" {
		t.Errorf("apply printed %q", r.stdout)
	}
	if r := e.mustFljob("apply", "-f", file); r.stdout != "fljob.fljob.dev/probe-1 unchanged\n" {
		t.Errorf("second apply printed %q", r.stdout)
	}
	if r := e.mustFljob("wait", "probe-1", "--for=condition=Complete", "--timeout=90s"); r.stdout !=
		"fljob.fljob.dev/probe-1 condition met\n" {
		t.Errorf("wait printed %q", r.stdout)
	}

	get := e.mustFljob("get")
	if !regexp.MustCompile(`^NAME\s+ROLE\s+SITE\s+JOB-ID\s+PHASE\s+AGE\nprobe-1\s+Client\s+site-1\s+job-7\s+Succeeded\s+\d+s\n$`).
		MatchString(get.stdout) {
		t.Errorf("get printed:\n%s", get.stdout)
	}
	wide := e.mustFljob("get", "probe-1", "-o", "wide")
	if !regexp.MustCompile(`ATTEMPTS\s+RC\s+REASON\n.*Succeeded\s+\S+\s+1\s+0\s+Succeeded\n`).MatchString(wide.stdout) {
		t.Errorf("get -o wide printed:\n%s", wide.stdout)
	}
	if y := e.mustFljob("get", "probe-1", "-o", "yaml"); !strings.Contains(y.stdout, "kind: FLJob\n") ||
		!strings.Contains(y.stdout, "phase: Succeeded") {
		t.Errorf("get -o yaml printed:\n%s", y.stdout)
	}
	job := e.jobs()["probe-1"]
	if job.Status.Phase != fljobv1.PhaseSucceeded || job.Status.Workload == nil ||
		job.Status.Workload.Backend != "docker" {
		t.Errorf("status = %+v", job.Status)
	}

	desc := e.mustFljob("describe", "probe-1").stdout
	for _, want := range []string{
		"Name:", "probe-1", "Job ID:", "job-7", "Phase:", "Succeeded", "Return code:", "0 (success)",
		"Job directory:", filepath.Join(e.workspace, "job-7"),
		"Conditions:", "Complete", "Events:", "SuccessfulCreate", "Completed",
	} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe lacks %q:\n%s", want, desc)
		}
	}
	logs := e.mustFljob("logs", "probe-1").stdout
	if !strings.Contains(logs, `"hostname": "probe-1"`) || !strings.Contains(logs, `"uid": 1000`) {
		t.Errorf("logs lack the probe's report:\n%s", logs)
	}
	if r := e.fljob("get", "nope"); r.code != 1 || r.stderr != "error: fljobs.fljob.dev \"nope\" not found\n" {
		t.Errorf("get of a missing FLJob:\n%s", r)
	}

	// run leaves the work to the controller that runs already.
	r = e.fljob("run", "-f", e.writeManifests(map[string]string{
		"p2.yaml": e.probeJob("probe-2", "job-8", "run", "--rc-file", "_process_rc.txt", "--rc", "0"),
	}), "--timeout", "90s")
	if r.code != 0 || !strings.Contains(r.stderr, "Using the controller that already runs on") ||
		!strings.Contains(r.stdout, "[1/1 finished]") {
		t.Errorf("run next to an operator:\n%s", r)
	}
	op.stop(t)
}

// TestRunWithSecret runs a job whose variable comes from a Secret applied
// in the same run.
func TestRunWithSecret(t *testing.T) {
	e := newEnv(t)
	job := e.probeJob("secretive", "job-s", "run", "--inspect") + `  env:
    - name: PLAIN
      value: visible
    - name: TOKEN
      valueFrom:
        secretKeyRef:
          name: site-token
          key: token
`
	secret := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: site-token\nstringData:\n  token: s3cr3t\n"
	r := e.fljob("run", "-f", e.writeManifests(map[string]string{"job.yaml": job, "secret.yaml": secret}),
		"--timeout", "90s")
	if r.code != 0 {
		t.Fatalf("run:\n%s", r)
	}
	if !strings.HasPrefix(r.stdout, "secret/site-token created\nfljob.fljob.dev/secretive created\n") {
		t.Errorf("the Secret was not applied before the FLJob:\n%s", r.stdout)
	}
	for _, want := range []string{`"TOKEN": "s3cr3t"`, `"PLAIN": "visible"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the job's environment lacks %s:\n%s", want, r.stdout)
		}
	}
}

// TestDeleteStopsAndRemovesTheContainer deletes a running job, with and
// without a running controller.
func TestDeleteStopsAndRemovesTheContainer(t *testing.T) {
	e := newEnv(t)
	op := e.startOperator()
	dir := e.writeManifests(map[string]string{
		"a.yaml": e.probeJob("sleeper-a", "job-a", "run", "--sleep", "10m"),
		"b.yaml": e.probeJob("sleeper-b", "job-b", "run", "--sleep", "10m"),
	})
	e.mustFljob("apply", "-f", dir)
	e.mustFljob("wait", "sleeper-a", "sleeper-b", "--for=condition=Running", "--timeout=90s")
	if cs := e.containers(); len(cs) != 2 || cs[0].State != "running" || cs[1].State != "running" {
		t.Fatalf("containers before delete: %+v", cs)
	}

	start := time.Now()
	r := e.mustFljob("delete", "sleeper-a")
	if r.stdout != "fljob.fljob.dev \"sleeper-a\" deleted\n" {
		t.Errorf("delete printed %q", r.stdout)
	}
	t.Logf("delete of a running job took %s", time.Since(start).Round(time.Millisecond))
	if cs := e.containers(); len(cs) != 1 || cs[0].Job != "sleeper-b" {
		t.Errorf("containers after delete: %+v, want only sleeper-b's", cs)
	}
	if _, ok := e.jobs()["sleeper-a"]; ok {
		t.Errorf("sleeper-a is still stored")
	}

	// Without a controller, delete only marks; the next one finishes.
	op.stop(t)
	r = e.mustFljob("delete", "-f", filepath.Join(dir, "b.yaml"))
	if r.stdout != "fljob.fljob.dev \"sleeper-b\" marked for deletion\n" ||
		!strings.Contains(r.stderr, "No controller runs") {
		t.Errorf("delete without a controller:\n%s", r)
	}
	if got := e.jobs()["sleeper-b"]; got.DeletionTimestamp == nil {
		t.Errorf("sleeper-b is not marked deleted")
	}
	if cs := e.containers(); len(cs) != 1 || cs[0].State != "running" {
		t.Errorf("containers while no controller runs: %+v", cs)
	}
	if get := e.mustFljob("get"); !strings.Contains(get.stdout, "Terminating") {
		t.Errorf("get does not show the deletion:\n%s", get.stdout)
	}
	op = e.startOperator()
	e.mustFljob("wait", "sleeper-b", "--for=delete", "--timeout=90s")
	if cs := e.containers(); len(cs) != 0 {
		t.Errorf("containers after the controller finished the deletion: %+v", cs)
	}
	if vs := e.volumes(); len(vs) != 0 {
		t.Errorf("volumes left: %v", vs)
	}
	op.stop(t)
}

// TestWaitTimesOutCleanly waits for a job no controller runs.
func TestWaitTimesOutCleanly(t *testing.T) {
	e := newEnv(t)
	e.mustFljob("apply", "-f", filepath.Join(e.writeManifests(map[string]string{
		"j.yaml": e.probeJob("idle", "job-1", "run"),
	}), "j.yaml"))
	start := time.Now()
	r := e.fljob("wait", "idle", "--for=condition=Complete", "--timeout=1s")
	took := time.Since(start)
	if r.code != 1 || r.stdout != "" || r.stderr != "error: timed out waiting for the condition on fljobs/idle\n" {
		t.Errorf("wait:\n%s", r)
	}
	if took > 10*time.Second {
		t.Errorf("a 1s wait took %s", took)
	}
	if r := e.fljob("wait", "missing", "--for=condition=Complete", "--timeout=1s"); r.code != 1 ||
		r.stderr != "error: fljobs.fljob.dev \"missing\" not found\n" {
		t.Errorf("wait for a missing FLJob:\n%s", r)
	}
	if r := e.fljob("wait", "idle", "--for=phase"); r.code != 1 || !strings.Contains(r.stderr, "unrecognized condition") {
		t.Errorf("wait with a bad --for:\n%s", r)
	}
}

// TestOperatorKilledAndRestarted kills the controller with SIGKILL while 20
// jobs run, restarts it, and checks that every job ends in the phase its
// exit code calls for, once, with no duplicate or orphan container and its
// job directory intact.
func TestOperatorKilledAndRestarted(t *testing.T) {
	e := newEnv(t)
	const n = 20
	codes := []int{0, 1, 0, 3, 0}
	docs := map[string]string{}
	for i := range n {
		code := codes[i%len(codes)]
		docs[fmt.Sprintf("job-%02d.yaml", i)] = e.probeJob(fmt.Sprintf("k-%02d", i), fmt.Sprintf("job-%02d", i),
			"run", "--write", fmt.Sprintf("marker.txt=job %d", i), "--rc-file", "_process_rc.txt",
			"--rc", fmt.Sprint(code), "--sleep", "6s", "--exit", fmt.Sprint(code))
	}
	dir := e.writeManifests(docs)
	op := e.startOperator()
	e.mustFljob("apply", "-f", dir)

	// Kill once some jobs run and others are still being created.
	running := 0
	e.eventually(90*time.Second, "5 jobs run", func() bool {
		running = 0
		for _, j := range e.jobs() {
			if j.Status.Phase == fljobv1.PhaseRunning {
				running++
			}
		}
		return running >= 5
	})
	op.kill()
	t.Logf("Killed the operator with %d of %d jobs running", running, n)
	time.Sleep(time.Second)
	op = e.startOperator()

	e.eventually(2*time.Minute, "every job finished", func() bool {
		jobs := e.jobs()
		for _, j := range jobs {
			if !j.Status.Phase.Finished() {
				return false
			}
		}
		return len(jobs) == n
	})
	jobs := e.jobs()
	for i := range n {
		name := fmt.Sprintf("k-%02d", i)
		code := int32(codes[i%len(codes)])
		j := jobs[name]
		want := fljobv1.PhaseSucceeded
		if code != 0 {
			want = fljobv1.PhaseFailed
		}
		st := j.Status
		if st.Phase != want || st.Attempts != 1 || st.ExitCode == nil || *st.ExitCode != code ||
			st.ReturnCode == nil || *st.ReturnCode != code {
			t.Errorf("%s: phase %s (want %s), attempts %d, exit %v, rc %v (want %d); %s",
				name, st.Phase, want, st.Attempts, deref(st.ExitCode), deref(st.ReturnCode), code, st.Message)
		}
		jobDir := filepath.Join(e.workspace, fmt.Sprintf("job-%02d", i))
		if got := readFile(filepath.Join(jobDir, "marker.txt")); got != fmt.Sprintf("job %d", i) {
			t.Errorf("%s: marker.txt = %q", name, got)
		}
		if got := readFile(filepath.Join(jobDir, "_process_rc.txt")); got != fmt.Sprint(code) {
			t.Errorf("%s: _process_rc.txt = %q", name, got)
		}
	}

	// One exited container per job and attempt 1: none duplicated, none
	// without its FLJob.
	perJob := map[string]int{}
	for _, c := range e.containers() {
		if c.State != "exited" || c.Attempt != "1" {
			t.Errorf("container %s: state %s, attempt %s", c.Name, c.State, c.Attempt)
		}
		perJob[c.Job]++
	}
	want := map[string]int{}
	for name := range jobs {
		want[name] = 1
	}
	if diff := cmp.Diff(want, perJob); diff != "" {
		t.Errorf("containers per FLJob (-want +got):\n%s", diff)
	}

	e.mustFljob("delete", "-f", dir)
	if cs := e.containers(); len(cs) != 0 {
		t.Errorf("containers after deleting every FLJob: %+v", cs)
	}
	if vs := e.volumes(); len(vs) != 0 {
		t.Errorf("volumes after deleting every FLJob: %v", vs)
	}
	if _, err := os.Stat(filepath.Join(e.workspace, "job-00", "marker.txt")); err != nil {
		t.Errorf("deleting an FLJob removed its job directory's results: %v", err)
	}
	op.stop(t)
}

func deref(p *int32) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprint(*p)
}
