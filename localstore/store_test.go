package localstore_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	testingclock "k8s.io/utils/clock/testing"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/controllers"
	"github.com/fljob-dev/fljob/localstore"
	"github.com/fljob-dev/fljob/test/manifests"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func open(t *testing.T) (*localstore.Store, *testingclock.FakeClock) {
	t.Helper()
	clk := testingclock.NewFakeClock(t0)
	s, err := localstore.Open(t.TempDir(), localstore.Options{Clock: clk, PollInterval: 10 * time.Millisecond,
		MaxEvents: 3})
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

func decode(t *testing.T, s *localstore.Store, doc string) *unstructured.Unstructured {
	t.Helper()
	u, err := s.Validator().Decode([]byte(doc))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return u
}

const client = `apiVersion: fljob.dev/v1
kind: FLJob
metadata:
  name: site-1
  namespace: default
spec:
  jobID: job-1
  role: Client
  site: site-1
  image: fljob-probe:dev
  workspace:
    source:
      hostPath:
        path: /srv/site-1
`

var key = backends.Key{Namespace: "default", Name: "site-1"}

// snapshot returns every file of the store's directory with its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "store.lock" {
			return err
		}
		data, err := os.ReadFile(p)
		files[strings.TrimPrefix(p, dir)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestApplyCreatesUpdatesAndKeepsServerFields(t *testing.T) {
	s, clk := open(t)
	ctx := context.Background()
	res, job, err := s.Apply(ctx, decode(t, s, client), false)
	if err != nil || res != localstore.Created {
		t.Fatalf("Apply() = %s, %v; want created", res, err)
	}
	got, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(job, got); diff != "" {
		t.Errorf("stored FLJob differs from the returned one (-want +got):\n%s", diff)
	}
	if got.UID == "" || got.Generation != 1 || !got.CreationTimestamp.Time.Equal(t0) || got.ResourceVersion == "" {
		t.Errorf("server fields: uid %q, generation %d, created %v, rv %q", got.UID, got.Generation,
			got.CreationTimestamp, got.ResourceVersion)
	}
	if got.Spec.ImagePullPolicy != fljobv1.PullIfNotPresent || got.Spec.RunAsUser != 1000 {
		t.Errorf("defaults not applied: %+v", got.Spec)
	}

	clk.Step(time.Minute)
	res, _, err = s.Apply(ctx, decode(t, s, client), false)
	if err != nil || res != localstore.Unchanged {
		t.Errorf("re-apply = %s, %v; want unchanged", res, err)
	}
	same, _ := s.Get(ctx, key)
	if same.ResourceVersion != got.ResourceVersion {
		t.Errorf("an unchanged apply wrote: rv %s -> %s", got.ResourceVersion, same.ResourceVersion)
	}

	// The controller's status and finalizer survive a new apply.
	got.Status.Phase = fljobv1.PhaseRunning
	if err := s.UpdateStatus(ctx, got); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFinalizer(ctx, got, true); err != nil {
		t.Fatal(err)
	}
	res, _, err = s.Apply(ctx, decode(t, s, strings.Replace(client, "fljob-probe:dev", "fljob-probe:v2", 1)), false)
	if err != nil || res != localstore.Configured {
		t.Fatalf("apply of a new image = %s, %v; want configured", res, err)
	}
	next, _ := s.Get(ctx, key)
	type fields struct {
		UID        string
		Generation int64
		Image      string
		Phase      fljobv1.Phase
		Finalizers []string
		Created    time.Time
	}
	want := fields{string(got.UID), 2, "fljob-probe:v2", fljobv1.PhaseRunning,
		[]string{controllers.Finalizer}, t0}
	have := fields{string(next.UID), next.Generation, next.Spec.Image, next.Status.Phase, next.Finalizers,
		next.CreationTimestamp.Time}
	if diff := cmp.Diff(want, have); diff != "" {
		t.Errorf("after update (-want +got):\n%s", diff)
	}

	labelled := strings.Replace(client, "  namespace: default\n", "  namespace: default\n  labels:\n    team: a\n", 1)
	labelled = strings.Replace(labelled, "fljob-probe:dev", "fljob-probe:v2", 1)
	if res, _, err := s.Apply(ctx, decode(t, s, labelled), false); err != nil || res != localstore.Configured {
		t.Fatalf("apply of a label = %s, %v; want configured", res, err)
	}
	if l, _ := s.Get(ctx, key); l.Generation != 2 || l.Labels["team"] != "a" {
		t.Errorf("a label change: generation %d (want 2), labels %v", l.Generation, l.Labels)
	}
}

// TestSharedTableRejectionsChangeNothing runs the manifests every mode
// must reject through the store.
func TestSharedTableRejectionsChangeNothing(t *testing.T) {
	for _, c := range manifests.Invalid {
		t.Run(c.Name, func(t *testing.T) {
			s, _ := open(t)
			ctx := context.Background()
			if c.Base != "" {
				if _, _, err := s.Apply(ctx, decode(t, s, c.Base), false); err != nil {
					t.Fatalf("base: %v", err)
				}
			}
			before := snapshot(t, s.Dir())
			u, err := s.Validator().Decode([]byte(c.YAML))
			if err == nil {
				_, _, err = s.Apply(ctx, u, false)
			}
			if cerr := c.Check(err); cerr != nil {
				t.Error(cerr)
			}
			if diff := cmp.Diff(before, snapshot(t, s.Dir())); diff != "" {
				t.Errorf("a rejected apply changed the store (-before +after):\n%s", diff)
			}
		})
	}
	for _, c := range manifests.Valid {
		t.Run(c.Name, func(t *testing.T) {
			s, _ := open(t)
			ctx := context.Background()
			for _, doc := range []string{c.Base, c.YAML} {
				if doc == "" {
					continue
				}
				if _, _, err := s.Apply(ctx, decode(t, s, doc), false); err != nil {
					t.Fatalf("rejected: %v", err)
				}
			}
		})
	}
}

func TestApplyDryRunWritesNothing(t *testing.T) {
	s, _ := open(t)
	before := snapshot(t, s.Dir())
	res, job, err := s.Apply(context.Background(), decode(t, s, client), true)
	if err != nil || res != localstore.Created || job.Name != "site-1" {
		t.Fatalf("dry run = %s, %v, %v", res, job, err)
	}
	if diff := cmp.Diff(before, snapshot(t, s.Dir())); diff != "" {
		t.Errorf("a dry run changed the store (-before +after):\n%s", diff)
	}
}

func TestUpdateStatusIsOptimistic(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	_, job, err := s.Apply(ctx, decode(t, s, client), false)
	if err != nil {
		t.Fatal(err)
	}
	stale := job.DeepCopy()
	job.Status.Phase = fljobv1.PhasePending
	if err := s.UpdateStatus(ctx, job); err != nil {
		t.Fatal(err)
	}
	if job.ResourceVersion == stale.ResourceVersion {
		t.Errorf("UpdateStatus did not hand back the new resource version")
	}
	stale.Status.Phase = fljobv1.PhaseFailed
	if err := s.UpdateStatus(ctx, stale); !errors.Is(err, controllers.ErrConflict) {
		t.Errorf("UpdateStatus of a stale version = %v, want ErrConflict", err)
	}
	if err := s.SetFinalizer(ctx, stale, true); !errors.Is(err, controllers.ErrConflict) {
		t.Errorf("SetFinalizer of a stale version = %v, want ErrConflict", err)
	}
	job.Status.Phase = "Lost"
	if err := s.UpdateStatus(ctx, job); err == nil || !strings.Contains(err.Error(), `status.phase: Unsupported value: "Lost"`) {
		t.Errorf("UpdateStatus of an invalid status = %v, want the schema's rejection", err)
	}
	missing := job.DeepCopy()
	missing.Name = "other"
	if err := s.UpdateStatus(ctx, missing); !errors.Is(err, controllers.ErrNotFound) {
		t.Errorf("UpdateStatus of a missing FLJob = %v, want ErrNotFound", err)
	}
}

// TestConcurrentWritersLoseNoUpdate has writers race on one FLJob, each
// retrying its conflicts, and checks that every increment landed.
func TestConcurrentWritersLoseNoUpdate(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	if _, _, err := s.Apply(ctx, decode(t, s, client), false); err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 10
	var wg sync.WaitGroup
	var conflicts sync.Map
	for w := range writers {
		wg.Go(func() {
			for range each {
				for {
					job, err := s.Get(ctx, key)
					if err != nil {
						t.Error(err)
						return
					}
					job.Status.Attempts++
					err = s.UpdateStatus(ctx, job)
					if errors.Is(err, controllers.ErrConflict) {
						conflicts.Store(w, true)
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	job, _ := s.Get(ctx, key)
	if job.Status.Attempts != writers*each {
		t.Errorf("attempts = %d, want %d: an update was lost", job.Status.Attempts, writers*each)
	}
	entries, _ := os.ReadDir(filepath.Join(s.Dir(), "fljobs", "default"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestDeleteHonorsFinalizers(t *testing.T) {
	s, clk := open(t)
	ctx := context.Background()
	if _, _, err := s.Apply(ctx, decode(t, s, client), false); err != nil {
		t.Fatal(err)
	}
	if res, err := s.DeleteKey(ctx, key); err != nil || res != localstore.Deleted {
		t.Fatalf("delete without finalizers = %s, %v", res, err)
	}
	if _, err := s.Get(ctx, key); !errors.Is(err, controllers.ErrNotFound) {
		t.Fatalf("Get after delete = %v, want ErrNotFound", err)
	}
	if res, err := s.DeleteKey(ctx, key); err != nil || res != localstore.NotFound {
		t.Errorf("delete of a missing FLJob = %s, %v", res, err)
	}

	_, job, _ := s.Apply(ctx, decode(t, s, client), false)
	if err := s.SetFinalizer(ctx, job, true); err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Minute)
	if res, err := s.DeleteKey(ctx, key); err != nil || res != localstore.MarkedDeleted {
		t.Fatalf("delete with a finalizer = %s, %v", res, err)
	}
	marked, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if marked.DeletionTimestamp == nil || !marked.DeletionTimestamp.Time.Equal(t0.Add(time.Minute)) ||
		marked.Generation != 2 {
		t.Errorf("marked FLJob: deletionTimestamp %v, generation %d", marked.DeletionTimestamp, marked.Generation)
	}
	if _, _, err := s.Apply(ctx, decode(t, s, client), false); err == nil ||
		!strings.Contains(err.Error(), "object is being deleted: fljobs.fljob.dev \"site-1\" already exists") {
		t.Errorf("apply over a deleted FLJob = %v, want it refused", err)
	}
	if err := s.SetFinalizer(ctx, marked, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, key); !errors.Is(err, controllers.ErrNotFound) {
		t.Errorf("Get after the last finalizer went = %v, want ErrNotFound", err)
	}
}

func TestEventsAreBoundedAggregatedAndTiedToTheObject(t *testing.T) {
	s, clk := open(t)
	ctx := context.Background()
	_, job, _ := s.Apply(ctx, decode(t, s, client), false)
	s.Eventf(job, nil, "Normal", "SuccessfulCreate", "Start", "Created %s", "w-1")
	clk.Step(time.Second)
	s.Eventf(job, nil, "Warning", "Backoff", "Reconcile", "retrying")
	clk.Step(time.Second)
	s.Eventf(job, nil, "Warning", "Backoff", "Reconcile", "retrying")
	s.Eventf(job, nil, "Normal", "Started", "Reconcile", "running")
	s.Eventf(job, nil, "Normal", "Completed", "Reconcile", "done")
	evs, err := s.Events(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%s %s x%d", e.Type, e.Reason, e.Count))
	}
	want := []string{"Warning Backoff x2", "Normal Started x1", "Normal Completed x1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if !evs[0].First.Time.Equal(t0.Add(time.Second)) || !evs[0].Last.Time.Equal(t0.Add(2*time.Second)) {
		t.Errorf("aggregated event seen %v to %v", evs[0].First, evs[0].Last)
	}

	// A new FLJob of the same name starts without its predecessor's events.
	if _, err := s.DeleteKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	s.Eventf(job, nil, "Normal", "Late", "Reconcile", "about a deleted FLJob")
	_, fresh, _ := s.Apply(ctx, decode(t, s, client), false)
	if evs, _ := s.Events(ctx, key); len(evs) != 0 {
		t.Errorf("new FLJob has events %v", evs)
	}
	s.Eventf(job, nil, "Normal", "Stale", "Reconcile", "about the old uid")
	s.Eventf(fresh, nil, "Normal", "Fresh", "Reconcile", "about the new uid")
	if evs, _ := s.Events(ctx, key); len(evs) != 1 || evs[0].Reason != "Fresh" {
		t.Errorf("events of the new FLJob = %v, want only Fresh", evs)
	}
}

func TestSecrets(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	sec, err := localstore.DecodeSecret([]byte(`apiVersion: v1
kind: Secret
metadata:
  name: token
  namespace: default
data:
  a: aGVsbG8=
stringData:
  b: world
`))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := s.ApplySecret(ctx, sec, false); err != nil || res != localstore.Created {
		t.Fatalf("ApplySecret() = %s, %v", res, err)
	}
	if res, _ := s.ApplySecret(ctx, sec, false); res != localstore.Unchanged {
		t.Errorf("re-apply = %s, want unchanged", res)
	}
	for k, want := range map[string]string{"a": "hello", "b": "world"} {
		if v, err := s.SecretValue(ctx, "default", "token", k); err != nil || v != want {
			t.Errorf("SecretValue(%s) = %q, %v; want %q", k, v, err, want)
		}
	}
	info, err := os.Stat(filepath.Join(s.Dir(), "secrets", "default", "token.yaml"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode = %v, %v; want 0600", info.Mode(), err)
	}
	if _, err := s.SecretValue(ctx, "default", "token", "c"); !errors.Is(err, controllers.ErrNotFound) {
		t.Errorf("missing key = %v, want ErrNotFound", err)
	}
	if _, err := s.SecretValue(ctx, "default", "nope", "a"); !errors.Is(err, controllers.ErrNotFound) {
		t.Errorf("missing secret = %v, want ErrNotFound", err)
	}
	bad := sec.DeepCopy()
	bad.Name = "Bad_Name"
	bad.Data = map[string][]byte{"no/slash": nil}
	if _, err := s.ApplySecret(ctx, bad, false); err == nil ||
		!strings.Contains(err.Error(), "metadata.name") || !strings.Contains(err.Error(), `data[no/slash]`) {
		t.Errorf("invalid secret = %v, want errors naming metadata.name and data[no/slash]", err)
	}
	if _, err := localstore.DecodeSecret([]byte("apiVersion: v1\nkind: Secret\nstringdata:\n  a: b\n")); err == nil ||
		!strings.Contains(err.Error(), `unknown field "stringdata"`) {
		t.Errorf("DecodeSecret with an unknown field = %v", err)
	}
	if res, err := s.DeleteSecret(ctx, "default", "token"); err != nil || res != localstore.Deleted {
		t.Errorf("DeleteSecret() = %s, %v", res, err)
	}
}

func TestWatchReportsChanges(t *testing.T) {
	s, _ := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan backends.Key, 100)
	go s.Watch(ctx, func(k backends.Key) { got <- k }) //nolint:errcheck // the test reads the keys
	next := func(what string) {
		t.Helper()
		select {
		case k := <-got:
			if k != key {
				t.Errorf("%s: got %s, want %s", what, k, key)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no notification", what)
		}
	}
	_, job, _ := s.Apply(context.Background(), decode(t, s, client), false)
	next("create")
	job.Status.Phase = fljobv1.PhaseRunning
	if err := s.UpdateStatus(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	next("status update")
	if _, err := s.DeleteKey(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	next("delete")
	select {
	case k := <-got:
		t.Errorf("spurious notification for %s", k)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestControllerLock(t *testing.T) {
	s, _ := open(t)
	if pid := s.ControllerPID(); pid != 0 {
		t.Fatalf("ControllerPID() = %d before any lock", pid)
	}
	release, err := s.LockController()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LockController(); !errors.Is(err, localstore.ErrControllerRunning) {
		t.Errorf("second LockController() = %v, want ErrControllerRunning", err)
	}
	if pid := s.ControllerPID(); pid != os.Getpid() {
		t.Errorf("ControllerPID() = %d, want %d", pid, os.Getpid())
	}
	release()
	if pid := s.ControllerPID(); pid != 0 {
		t.Errorf("ControllerPID() = %d after release", pid)
	}
}

func TestListSkipsTemporaryFilesAndOpenRemovesStaleOnes(t *testing.T) {
	dir := t.TempDir()
	s, err := localstore.Open(dir, localstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := s.Apply(ctx, decode(t, s, client), false); err != nil {
		t.Fatal(err)
	}
	// A crash between writing a temporary file and renaming it leaves it.
	stale := filepath.Join(dir, "fljobs", "default", ".tmp-site-2.yaml-123")
	if err := os.WriteFile(stale, []byte("half a wri"), 0o644); err != nil {
		t.Fatal(err)
	}
	jobs, err := s.List(ctx, "")
	if err != nil || len(jobs) != 1 {
		t.Fatalf("List() = %d FLJobs, %v; want 1", len(jobs), err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := localstore.Open(dir, localstore.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temporary file survived Open: %v", err)
	}
}

func TestDefaultDir(t *testing.T) {
	home, _ := os.UserHomeDir()
	cases := []struct{ env, xdg, want string }{
		{"/state/x", "/xdg", "/state/x"},
		{"", "/xdg", "/xdg/fljob"},
		{"", "", filepath.Join(home, ".local", "state", "fljob")},
	}
	for _, c := range cases {
		t.Setenv(localstore.EnvStateDir, c.env)
		t.Setenv("XDG_STATE_HOME", c.xdg)
		if got, err := localstore.DefaultDir(); err != nil || got != c.want {
			t.Errorf("DefaultDir() with %q, %q = %q, %v; want %q", c.env, c.xdg, got, err, c.want)
		}
	}
}

func TestListIsSortedAcrossNamespaces(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	for _, nm := range []string{"b/job-x", "a/job-z", "a/job-y"} {
		ns, name, _ := strings.Cut(nm, "/")
		doc := strings.NewReplacer("name: site-1", "name: "+name, "namespace: default", "namespace: "+ns).Replace(client)
		if _, _, err := s.Apply(ctx, decode(t, s, doc), false); err != nil {
			t.Fatal(err)
		}
	}
	jobs, _ := s.List(ctx, "")
	var got []string
	for _, j := range jobs {
		got = append(got, j.Namespace+"/"+j.Name)
	}
	if !sort.StringsAreSorted(got) || len(got) != 3 {
		t.Errorf("List() = %v", got)
	}
	if a, _ := s.List(ctx, "a"); len(a) != 2 {
		t.Errorf("List(a) = %d FLJobs, want 2", len(a))
	}
}

// BenchmarkUpdateStatus measures one durable, validated status write.
func BenchmarkUpdateStatus(b *testing.B) {
	s, err := localstore.Open(b.TempDir(), localstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	u, err := s.Validator().Decode([]byte(client))
	if err != nil {
		b.Fatal(err)
	}
	_, job, err := s.Apply(ctx, u, false)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		job.Status.Attempts++
		if err := s.UpdateStatus(ctx, job); err != nil {
			b.Fatal(err)
		}
	}
}
