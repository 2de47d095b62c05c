package backends_test

import (
	"path"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/test/builder"
)

// variants are FLJobs that differ in every field the layout depends on;
// every invariant must hold for each of them.
var variants = map[string]*fljobv1.FLJob{
	"client on host path": builder.FLJob("c1").Obj(),
	"server on volume":    builder.FLJob("s1").Server().Volume("site-ws").Obj(),
	"custom mount path": builder.FLJob("c2").MountPath("/ws").JobID("7f1c-uuid").
		SizeLimit("2Gi").Obj(),
	"gpus and limits": builder.FLJob("c3").CPU("1500m").Memory("2Gi").GPUs(2).
		User(4242, 4343).Obj(),
}

func build(t *testing.T, job *fljobv1.FLJob) *backends.Workload {
	t.Helper()
	w, err := backends.FromFLJob(job, 1)
	if err != nil {
		t.Fatalf("FromFLJob: %v", err)
	}
	return w
}

func root(job *fljobv1.FLJob) string { return job.Spec.Workspace.MountPath }

func TestInvariants(t *testing.T) {
	invariants := []struct {
		name  string
		check func(t *testing.T, job *fljobv1.FLJob, w *backends.Workload)
	}{
		{"workspace root is ephemeral, sticky and world-writable, with a size", func(t *testing.T, job *fljobv1.FLJob, w *backends.Workload) {
			m := w.Mount(backends.MountRoot)
			want := backends.Mount{Kind: backends.MountRoot, Target: root(job), Mode: 0o1777,
				SizeBytes: job.Spec.Workspace.SizeLimit.Value()}
			if diff := cmp.Diff(want, *m); diff != "" {
				t.Errorf("root mount (-want +got):\n%s", diff)
			}
		}},
		{"startup and local are read-only", func(t *testing.T, job *fljobv1.FLJob, w *backends.Workload) {
			for kind, dir := range map[backends.MountKind]string{
				backends.MountStartup: "startup", backends.MountLocal: "local"} {
				m := w.Mount(kind)
				if m == nil || !m.ReadOnly || m.SubPath != dir || m.Target != path.Join(root(job), dir) {
					t.Errorf("%s mount = %+v, want read-only %s/ at %s", kind, m, dir, path.Join(root(job), dir))
				}
			}
		}},
		{"only the job directory is persistent and writable", func(t *testing.T, job *fljobv1.FLJob, w *backends.Workload) {
			var writable []string
			for _, m := range w.Mounts {
				if !m.ReadOnly && m.Kind != backends.MountRoot {
					writable = append(writable, m.SubPath)
				}
			}
			if diff := cmp.Diff([]string{job.Spec.JobID}, writable); diff != "" {
				t.Errorf("writable persistent mounts (-want +got):\n%s", diff)
			}
			if m := w.Mount(backends.MountJob); m.Target != path.Join(root(job), job.Spec.JobID) {
				t.Errorf("job dir target = %s", m.Target)
			}
		}},
		{"no other part of the source is mounted", func(t *testing.T, job *fljobv1.FLJob, w *backends.Workload) {
			allowed := map[string]bool{"startup": true, "local": true, job.Spec.JobID: true}
			for _, m := range w.Mounts {
				if m.Kind == backends.MountRoot {
					continue
				}
				if !allowed[m.SubPath] || strings.Contains(m.SubPath, "/") {
					t.Errorf("mount of %q: only startup, local and the job's own dir may be mounted", m.SubPath)
				}
			}
			if len(w.Mounts) != 4 {
				t.Errorf("got %d mounts, want 4", len(w.Mounts))
			}
		}},
		{"every persistent mount comes from the one source", func(t *testing.T, _ *fljobv1.FLJob, w *backends.Workload) {
			src := w.Mount(backends.MountJob).Source
			if (src.HostPath == "") == (src.Volume == "") {
				t.Fatalf("source %+v: want exactly one of host path or volume", src)
			}
			for _, m := range w.Mounts[1:] {
				if m.Source != src {
					t.Errorf("%s from %+v, want %+v", m.Kind, m.Source, src)
				}
			}
		}},
		{"the process is non-root with the FLJob's ids", func(t *testing.T, job *fljobv1.FLJob, w *backends.Workload) {
			s := w.Security
			if !s.RunAsNonRoot || s.RunAsUser != job.Spec.RunAsUser || s.RunAsGroup != job.Spec.RunAsGroup || s.RunAsUser == 0 {
				t.Errorf("security = %+v", s)
			}
		}},
		{"no capabilities, no privilege escalation, default seccomp", func(t *testing.T, _ *fljobv1.FLJob, w *backends.Workload) {
			s := w.Security
			if !s.DropAllCapabilities || !s.NoNewPrivileges || !s.SeccompRuntimeDefault {
				t.Errorf("security = %+v", s)
			}
		}},
		{"no service-account token and no runtime socket", func(t *testing.T, _ *fljobv1.FLJob, w *backends.Workload) {
			if w.Security.ServiceAccountToken || w.Security.RuntimeSocket {
				t.Errorf("security = %+v", w.Security)
			}
			for _, m := range w.Mounts {
				if strings.HasSuffix(m.Source.HostPath, ".sock") {
					t.Errorf("socket mounted: %+v", m)
				}
			}
		}},
		{"working directory is the job directory", func(t *testing.T, job *fljobv1.FLJob, w *backends.Workload) {
			want := path.Join(root(job), job.Spec.JobID)
			if w.WorkingDir != want || w.ReturnCodePath != want+"/_process_rc.txt" {
				t.Errorf("working dir %s, rc path %s; want %s", w.WorkingDir, w.ReturnCodePath, want)
			}
		}},
		{"labels identify the FLJob and attempt", func(t *testing.T, job *fljobv1.FLJob, w *backends.Workload) {
			want := map[string]string{
				"app.kubernetes.io/managed-by": "fljob", "fljob.dev/namespace": job.Namespace,
				"fljob.dev/name": job.Name, "fljob.dev/uid": string(job.UID),
				"fljob.dev/job-id": job.Spec.JobID, "fljob.dev/role": string(job.Spec.Role),
				"fljob.dev/site": job.Spec.Site, "fljob.dev/attempt": "1",
				"fljob.dev/spec-hash": backends.SpecHash(&job.Spec),
			}
			if diff := cmp.Diff(want, w.Labels); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
		}},
	}
	for vname, job := range variants {
		w := build(t, job)
		for _, inv := range invariants {
			t.Run(vname+"/"+inv.name, func(t *testing.T) { inv.check(t, job, w) })
		}
	}
}

func TestFromFLJobTranslatesProcess(t *testing.T) {
	job := builder.FLJob("c").Command("python3", "-m", "x").Args("-a").Env("A", "1").
		SecretEnv("TOKEN", "job-secret", "token").CPU("500m").Memory("1Gi").GPUs(1).Grace(5).Obj()
	w := build(t, job)
	want := &backends.Workload{
		Ref: backends.Ref{Key: backends.Key{Namespace: "default", Name: "c"}, UID: "uid-c",
			Attempt: 1},
		Hostname:   "c",
		Image:      "fljob-probe:dev",
		PullPolicy: fljobv1.PullNever,
		Command:    []string{"python3", "-m", "x"},
		Args:       []string{"-a"},
		Env: []backends.EnvVar{{Name: "A", Value: "1"},
			{Name: "TOKEN", Secret: &backends.SecretKey{Name: "job-secret", Key: "token"}},
			{Name: "USER", Value: "fljob"}, {Name: "HOME", Value: "/var/tmp/nvflare/workspace"}},
		WorkingDir:     "/var/tmp/nvflare/workspace/job-1",
		ReturnCodePath: "/var/tmp/nvflare/workspace/job-1/_process_rc.txt",
		Mounts:         w.Mounts,
		Security:       w.Security,
		Resources:      backends.Resources{MilliCPU: 500, MemoryBytes: 1 << 30, GPUs: 1, Pids: backends.DefaultPids},
		Ports:          []backends.Port{},
		Labels:         w.Labels,
		StopGrace:      5 * time.Second,
	}
	if diff := cmp.Diff(want, w); diff != "" {
		t.Errorf("workload (-want +got):\n%s", diff)
	}
}

func TestFromFLJobRefusesUnsafeSpecs(t *testing.T) {
	cases := map[string]*fljobv1.FLJob{
		"job id escapes":      builder.FLJob("c").JobID("../x").Obj(),
		"job id with slash":   builder.FLJob("c").JobID("a/b").Obj(),
		"job id hidden":       builder.FLJob("c").JobID(".hidden").Obj(),
		"job id empty":        builder.FLJob("c").JobID("").Obj(),
		"root user":           builder.FLJob("c").User(0, 1000).Obj(),
		"root group":          builder.FLJob("c").User(1000, 0).Obj(),
		"relative host path":  builder.FLJob("c").HostPath("srv/site").Obj(),
		"unclean mount path":  builder.FLJob("c").MountPath("/ws/../etc").Obj(),
		"no workspace source": func() *fljobv1.FLJob { j := builder.FLJob("c").Obj(); j.Spec.Workspace.Source.HostPath = nil; return j }(),
		"both sources": func() *fljobv1.FLJob {
			j := builder.FLJob("c").Obj()
			j.Spec.Workspace.Source.Volume = &fljobv1.VolumeSource{Name: "v"}
			return j
		}(),
		"no image": builder.FLJob("c").Image("").Obj(),
	}
	for name, job := range cases {
		t.Run(name, func(t *testing.T) {
			if w, err := backends.FromFLJob(job, 1); err == nil {
				t.Errorf("FromFLJob accepted it: %+v", w)
			}
		})
	}
}

func TestDefaultsWhenUnset(t *testing.T) {
	job := builder.FLJob("c").Obj()
	job.Spec.Workspace.MountPath = ""
	job.Spec.Workspace.SizeLimit = nil
	job.Spec.TerminationGracePeriodSeconds = nil
	job.Spec.ImagePullPolicy = ""
	w := build(t, job)
	if got := w.Mount(backends.MountRoot); got.Target != fljobv1.DefaultMountPath || got.SizeBytes != 1<<30 {
		t.Errorf("root = %+v", got)
	}
	if w.StopGrace != 30*time.Second || w.PullPolicy != fljobv1.PullIfNotPresent {
		t.Errorf("grace %v, pull policy %q", w.StopGrace, w.PullPolicy)
	}
}
