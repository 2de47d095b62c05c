package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/test/builder"
	"github.com/fljob-dev/fljob/test/probe/report"
)

// What every job of the scenario shares.
const (
	probeImage = "fljob-probe:dev"
	// jobUID and jobGID differ from each other and from the CRD's default
	// (1000), so that the report shows they come from the FLJob.
	jobUID = 1001
	jobGID = 1002
	// rootSize is the workspace root's size limit; fillBytes is what the
	// inspect job tries to write into the root.
	rootSize      = "16Mi"
	rootSizeBytes = 16 << 20
	fillBytes     = 32 << 20
	serverPort    = 8002
	secretName    = "probe-secret"
	secretKey     = "token"
	plainEnv      = "FLJOB_PLAIN"
	secretEnv     = "FLJOB_SECRET"
	plainValue    = "plain value with spaces"
	// clientTries bounds the client jobs run when a connection fails while
	// the server's address is still being programmed (Kubernetes endpoints,
	// kube-proxy rules).
	clientTries = 3
)

// Job directories of the scenario, under the workspace root.
const (
	inspectJobID = "conf-inspect"
	clientJobID  = "conf-client"
	serverJobID  = "conf-server"
	// missingJobID names a job directory the site does not have.
	missingJobID = "conf-missing"
	persisted    = "persisted.txt"
	rcFile       = "_process_rc.txt"
	// missingDeadline is the pending deadline of the job whose directory
	// is missing: how long a backend may wait for it.
	missingDeadline = 10
)

var root = fljobv1.DefaultMountPath

// cluster is one column: where FLJobs are created and how to look at what
// their backend did.
type cluster struct {
	column string
	// c creates and reads FLJobs, Secrets and Namespaces.
	c client.Client
	// shell reaches the node that holds host-path workspaces.
	shell nodeShell
	// waitNamespace waits until pods can be created in a new namespace
	// (its default service account exists); nil when nothing to wait for.
	waitNamespace func(ctx context.Context, ns string) error
	// reachable waits until a server FLJob's name can be reached; nil when
	// it is reachable as soon as the job runs.
	reachable func(ctx context.Context, ns, name string) error
	// logs returns an attempt's output, for failure messages.
	logs func(ctx context.Context, job *fljobv1.FLJob) string
	// recursiveRO says whether the backend, on this runtime, makes file
	// systems mounted below a read-only mount read-only too, and how or
	// why not.
	recursiveRO func(ctx context.Context) (bool, string)
	// facts describe the backend's environment in docs/parity.md.
	facts []string
}

// observed is what one column's scenario saw.
type observed struct {
	// inspect is the probe's report from the inspect job, reader from the
	// second job of the same job directory, client from the client job.
	inspect, reader, client *report.Report
	// clientTries is how many client jobs ran until one connected.
	clientTries int
	// serverName and inspectName are the server's and the inspect job's
	// FLJob names.
	serverName, inspectName string
	// hostPersisted is the content of the inspect job's file, read on the
	// node after the job ended.
	hostPersisted string
	token         string
	secret        string
	// inspectStatus is the inspect FLJob's status once it succeeded;
	// hostRC is its return code file read on the node afterwards.
	inspectStatus fljobv1.FLJobStatus
	hostRC        string
	hostRCErr     error
	// missing is the FLJob whose job directory did not exist, once
	// finished, and missingReport its report if it ran.
	missing       *fljobv1.FLJob
	missingReport *report.Report
	// submounts says whether the site had file systems mounted below
	// startup/ and local/.
	submounts bool
	// recursiveRO and recursiveROWhy are what the backend and runtime say
	// about file systems mounted below read-only mounts.
	recursiveRO    bool
	recursiveROWhy string
}

// job is one FLJob of the scenario, as documented in docs/parity.md.
type job struct {
	role  string
	jobID string
	args  []string
}

// scenarioJobs are the probe command lines, with <server> for the server
// FLJob's name.
func scenarioJobs(token string) []job {
	jobDir := path.Join(root, inspectJobID)
	return []job{
		{role: "server", jobID: serverJobID, args: []string{"serve", "--port",
			strconv.Itoa(serverPort)}},
		{role: "inspect", jobID: inspectJobID, args: []string{"run",
			"--inspect-out", path.Join(jobDir, "report.json"),
			"--root", root, "--job-dir", jobDir,
			"--check-dir", path.Join(root, otherJobID),
			"--check-dir", path.Join(root, "startup", plainSub),
			"--check-dir", path.Join(root, "startup", mountedSub),
			"--check-dir", path.Join(root, "local", plainSub),
			"--check-dir", path.Join(root, "local", mountedSub),
			"--fill-root", strconv.Itoa(fillBytes),
			"--write", path.Join(jobDir, persisted) + "=" + token,
			"--rc-file", path.Join(jobDir, rcFile), "--rc", "0"}},
		{role: "reader", jobID: inspectJobID, args: []string{"inspect", "--root=",
			"--check-dir", path.Join(jobDir, persisted),
			"--out", path.Join(jobDir, "reader.json")}},
		{role: "client", jobID: clientJobID, args: []string{"inspect", "--root=",
			"--connect", "<server>:" + strconv.Itoa(serverPort),
			"--out", path.Join(root, clientJobID, "report.json")}},
		{role: "missing", jobID: missingJobID, args: []string{"inspect", "--root=",
			"--job-dir", path.Join(root, missingJobID),
			"--out", path.Join(root, missingJobID, "report.json")}},
	}
}

func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("runs FLJobs on a Docker Engine and a real node; skipped with -short")
	}
	for _, col := range []struct {
		name  string
		setup func(t *testing.T) *cluster
	}{
		{columnDocker, dockerCluster},
		{columnKubernetes, kubeCluster},
	} {
		t.Run(col.name, func(t *testing.T) {
			if !selected(col.name) {
				results.skip(col.name, "not selected by "+envBackends)
				t.Skipf("not selected by %s", envBackends)
			}
			start := time.Now()
			t.Cleanup(func() {
				if t.Failed() {
					results.fail(col.name, "the scenario failed before it observed everything: "+
						"see the test's output")
				}
			})
			cl := col.setup(t)
			o := runScenario(t, cl)
			cells := checkAll(t, o)
			results.record(col.name, cl.facts, cells, time.Since(start))
		})
	}
}

// runScenario runs the scenario's FLJobs on one column and gathers what the
// probes reported.
func runScenario(t *testing.T, cl *cluster) *observed {
	ctx := withTimeout(t, 8*time.Minute)
	ns := "conformance-" + runID
	createNamespace(ctx, t, cl, ns)
	secret := "s3cr3t-" + randomHex(8)
	createSecret(ctx, t, cl, ns, secret)
	s := newSite(t, cl.shell, []string{inspectJobID, clientJobID, serverJobID})

	o := &observed{token: "persisted-" + randomHex(4), secret: secret, submounts: s.submounts}
	o.recursiveRO, o.recursiveROWhy = cl.recursiveRO(ctx)
	jobs := scenarioJobs(o.token)
	prefix := "c" + runID + "-"
	o.serverName, o.inspectName = prefix+"server", prefix+"inspect"

	server := newJob(ns, o.serverName, s, jobs[0]).Server().Obj()
	submit(ctx, t, cl, server)
	waitPhase(ctx, t, cl, server, fljobv1.PhaseRunning)

	inspect := newJob(ns, o.inspectName, s, jobs[1]).Env(plainEnv, plainValue).
		SecretEnv(secretEnv, secretName, secretKey).Obj()
	submit(ctx, t, cl, inspect)
	o.inspectStatus = waitPhase(ctx, t, cl, inspect, fljobv1.PhaseSucceeded).Status
	o.inspect = readReport(ctx, t, s, inspectJobID, "report.json")
	o.hostRC, o.hostRCErr = s.shell.read(ctx, s.path(inspectJobID, rcFile))
	content, err := s.shell.read(ctx, s.path(inspectJobID, persisted))
	if err != nil {
		t.Errorf("read the inspect job's file on the node: %v", err)
	}
	o.hostPersisted = content

	reader := newJob(ns, prefix+"reader", s, jobs[2]).Obj()
	submit(ctx, t, cl, reader)
	waitPhase(ctx, t, cl, reader, fljobv1.PhaseSucceeded)
	o.reader = readReport(ctx, t, s, inspectJobID, "reader.json")

	if cl.reachable != nil {
		if err := cl.reachable(ctx, ns, o.serverName); err != nil {
			t.Errorf("server %s never became reachable: %v", o.serverName, err)
		}
	}
	clientJob := jobs[3]
	clientJob.args = replaceAll(clientJob.args, "<server>", o.serverName)
	for o.clientTries < clientTries {
		o.clientTries++
		c := newJob(ns, fmt.Sprintf("%sclient-%d", prefix, o.clientTries), s, clientJob).Obj()
		submit(ctx, t, cl, c)
		waitPhase(ctx, t, cl, c, fljobv1.PhaseSucceeded)
		o.client = readReport(ctx, t, s, clientJobID, "report.json")
		if o.client.Connect != nil && o.client.Connect.OK {
			break
		}
		t.Logf("client try %d: %+v", o.clientTries, o.client.Connect)
		time.Sleep(2 * time.Second)
	}

	missing := newJob(ns, prefix+"missing", s, jobs[4]).PendingDeadline(missingDeadline).Obj()
	submit(ctx, t, cl, missing)
	o.missing = waitPhase(ctx, t, cl, missing, "")
	if o.missing.Status.Phase == fljobv1.PhaseSucceeded {
		o.missingReport = readReport(ctx, t, s, missingJobID, "report.json")
	}
	return o
}

// newJob builds one FLJob of the scenario on the site's workspace.
func newJob(ns, name string, s *site, j job) *builder.Builder {
	return builder.FLJob(name).Namespace(ns).UID("").Image(probeImage).HostPath(s.dir).
		JobID(j.jobID).User(jobUID, jobGID).SizeLimit(rootSize).Memory("64Mi").Grace(2).
		Args(j.args...)
}

func replaceAll(args []string, old, repl string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, old, repl)
	}
	return out
}

// submit creates an FLJob and deletes it when the test ends, waiting until
// its finalizer let it go (its workloads are removed).
func submit(ctx context.Context, t *testing.T, cl *cluster, job *fljobv1.FLJob) {
	t.Helper()
	if err := cl.c.Create(ctx, job); err != nil {
		t.Fatalf("create FLJob %s: %v", job.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := cl.c.Delete(ctx, job); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete FLJob %s: %v", job.Name, err)
			return
		}
		for {
			err := cl.c.Get(ctx, client.ObjectKeyFromObject(job), &fljobv1.FLJob{})
			if apierrors.IsNotFound(err) {
				return
			}
			if ctx.Err() != nil {
				t.Errorf("FLJob %s still exists 2m after its deletion: %v", job.Name, err)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// waitPhase waits until the FLJob reaches the phase, failing the test when it
// fails instead or takes too long, and returns it. An empty phase waits for
// either end, Succeeded or Failed.
func waitPhase(ctx context.Context, t *testing.T, cl *cluster, job *fljobv1.FLJob,
	want fljobv1.Phase) *fljobv1.FLJob {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got := &fljobv1.FLJob{}
		err := cl.c.Get(ctx, client.ObjectKeyFromObject(job), got)
		switch {
		case err != nil:
			t.Fatalf("get FLJob %s: %v", job.Name, err)
		case want == "" && got.Status.Phase.Finished(), want != "" && got.Status.Phase == want:
			return got
		case got.Status.Phase.Finished() || time.Now().After(deadline):
			st, _ := json.MarshalIndent(got.Status, "", "  ")
			t.Fatalf("FLJob %s is %s, want %s; status:\n%s\nlogs:\n%s\ncontroller log: %s",
				job.Name, got.Status.Phase, want, st, cl.logs(ctx, got), logFile)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readReport reads and decodes a probe report from a job directory on the
// node.
func readReport(ctx context.Context, t *testing.T, s *site, jobID, name string) *report.Report {
	t.Helper()
	data, err := s.shell.read(ctx, s.path(jobID, name))
	if err != nil {
		t.Fatalf("read the probe's report: %v", err)
	}
	rep, err := report.Decode(strings.NewReader(data))
	if err != nil {
		t.Fatalf("%s/%s: %v", jobID, name, err)
	}
	return rep
}

// createNamespace creates the scenario's namespace, labelled so that the
// Pod Security admission lets host-path Pods in, and deletes it at the end.
func createNamespace(ctx context.Context, t *testing.T, cl *cluster, ns string) {
	t.Helper()
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "privileged",
	}}}
	if err := cl.c.Create(ctx, obj); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	// Registered before the FLJobs' cleanups, so it runs after them.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cl.c.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", ns, err)
		}
	})
	if cl.waitNamespace != nil {
		if err := cl.waitNamespace(ctx, ns); err != nil {
			t.Fatalf("namespace %s: %v", ns, err)
		}
	}
}

func createSecret(ctx context.Context, t *testing.T, cl *cluster, ns, value string) {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secretName},
		Data:       map[string][]byte{secretKey: []byte(value)},
	}
	if err := cl.c.Create(ctx, s); err != nil {
		t.Fatalf("create secret: %v", err)
	}
}
