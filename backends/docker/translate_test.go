package docker

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/test/builder"
)

func workload(t *testing.T, b *builder.Builder) *backends.Workload {
	t.Helper()
	w, err := backends.FromFLJob(b.Obj(), 2)
	if err != nil {
		t.Fatalf("FromFLJob: %v", err)
	}
	return w
}

func TestContainerNameIsUnambiguous(t *testing.T) {
	refs := []backends.Ref{
		{Key: backends.Key{Namespace: "ns-a", Name: "b"}, Attempt: 1},
		{Key: backends.Key{Namespace: "ns", Name: "a-b"}, Attempt: 1},
		{Key: backends.Key{Namespace: "ns", Name: "a"}, Attempt: 11},
		{Key: backends.Key{Namespace: "ns", Name: "a-1"}, Attempt: 1},
	}
	seen := map[string]backends.Ref{}
	for _, r := range refs {
		n := ContainerName(r)
		if prev, ok := seen[n]; ok {
			t.Errorf("%+v and %+v share the container name %q", prev, r, n)
		}
		seen[n] = r
	}
	if got, want := ContainerName(refs[0]), "fljob-ns-a.b-1"; got != want {
		t.Errorf("ContainerName = %q, want %q", got, want)
	}
}

// created is the part of a container's configuration the translation
// decides.
type created struct {
	Name, User, Hostname, WorkingDir, Image string
	Entrypoint, Cmd, Env, CapDrop, Secopt   []string
	Labels                                  map[string]string
	Ports                                   network.PortSet
	StopTimeout                             int
	Network                                 string
	Aliases                                 []string
	Mounts                                  []mount.Mount
	NanoCPUs, Memory, MemorySwap, Pids      int64
	Devices                                 []container.DeviceRequest
	Restart                                 container.RestartPolicyMode
}

func TestCreateOptions(t *testing.T) {
	const root = "/var/tmp/nvflare/workspace"
	hostPlan := func(f Features) *plan {
		return &plan{name: "fljob-default.c1-2", rootVolume: "fljob-default.c1-2-root",
			network: "fljob", features: f, env: []string{"A=1", "USER=fljob", "HOME=/tmp"},
			sources: map[backends.Source]source{{HostPath: "/srv/site"}: {dir: "/srv/site"}}}
	}
	rootMount := mount.Mount{Type: mount.TypeVolume, Source: "fljob-default.c1-2-root",
		Target: root, VolumeOptions: &mount.VolumeOptions{NoCopy: true}}
	tests := []struct {
		name string
		job  *builder.Builder
		plan *plan
		gpus []string
		want func(c *created)
	}{{
		name: "host path on an engine without recursive read-only",
		job:  builder.FLJob("c1").HostPath("/srv/site").JobID("j1"),
		plan: hostPlan(Features{APIVersion: "1.41"}),
		want: func(*created) {},
	}, {
		name: "recursive read-only where the engine has it",
		job:  builder.FLJob("c1").HostPath("/srv/site").JobID("j1"),
		plan: hostPlan(Features{APIVersion: "1.44", RecursiveReadOnly: true}),
		want: func(c *created) {
			for i := 1; i <= 2; i++ {
				c.Mounts[i].BindOptions = &mount.BindOptions{ReadOnlyForceRecursive: true}
			}
		},
	}, {
		name: "volume by subpath",
		job:  builder.FLJob("c1").Volume("site-ws").JobID("j1"),
		plan: &plan{name: "fljob-default.c1-2", rootVolume: "fljob-default.c1-2-root",
			network: "fljob", features: Features{APIVersion: "1.45", VolumeSubpath: true},
			env:     []string{"A=1", "USER=fljob", "HOME=/tmp"},
			sources: map[backends.Source]source{{Volume: "site-ws"}: {volume: "site-ws"}}},
		want: func(c *created) {
			c.Mounts = []mount.Mount{rootMount,
				{Type: mount.TypeVolume, Source: "site-ws", Target: root + "/startup", ReadOnly: true,
					VolumeOptions: &mount.VolumeOptions{NoCopy: true, Subpath: "startup"}},
				{Type: mount.TypeVolume, Source: "site-ws", Target: root + "/local", ReadOnly: true,
					VolumeOptions: &mount.VolumeOptions{NoCopy: true, Subpath: "local"}},
				{Type: mount.TypeVolume, Source: "site-ws", Target: root + "/j1",
					VolumeOptions: &mount.VolumeOptions{NoCopy: true, Subpath: "j1"}},
			}
		},
	}, {
		name: "limits, GPUs, ports, command and user",
		job: builder.FLJob("c1").Server().HostPath("/srv/site").JobID("j1").CPU("1500m").
			Memory("2Gi").GPUs(2).User(4242, 4343).Command("/bin/run").Args("-x").Grace(7),
		plan: hostPlan(Features{APIVersion: "1.41"}),
		gpus: []string{"1", "3"},
		want: func(c *created) {
			c.User = "4242:4343"
			c.Entrypoint, c.Cmd = []string{"/bin/run"}, []string{"-x"}
			c.NanoCPUs, c.Memory, c.MemorySwap = 1_500_000_000, 2<<30, 2<<30
			c.Devices = []container.DeviceRequest{{DeviceIDs: []string{"1", "3"},
				Capabilities: [][]string{{"gpu"}}}}
			c.Labels[LabelGPUs] = "1,3"
			c.Labels[backends.LabelRole] = "Server"
			c.Labels[backends.LabelSite] = "server"
			c.Ports = network.PortSet{network.MustParsePort("8002/tcp"): {}}
			c.StopTimeout = 7
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := workload(t, tt.job)
			tt.plan.gpus = tt.gpus
			opts, err := createOptions(w, tt.plan)
			if err != nil {
				t.Fatalf("createOptions: %v", err)
			}
			want := created{
				Name: "fljob-default.c1-2", User: "1000:1000", Hostname: "c1",
				WorkingDir: root + "/j1", Image: "fljob-probe:dev",
				Env:     []string{"A=1", "USER=fljob", "HOME=/tmp"},
				CapDrop: []string{"ALL"}, Secopt: []string{"no-new-privileges:true"},
				Labels: func() map[string]string {
					l := map[string]string{LabelReturnCodePath: root + "/j1/_process_rc.txt"}
					for k, v := range w.Labels {
						l[k] = v
					}
					return l
				}(),
				StopTimeout: 30, Network: "fljob", Aliases: []string{"c1"},
				Mounts: []mount.Mount{rootMount,
					{Type: mount.TypeBind, Source: "/srv/site/startup", Target: root + "/startup",
						ReadOnly: true},
					{Type: mount.TypeBind, Source: "/srv/site/local", Target: root + "/local",
						ReadOnly: true},
					{Type: mount.TypeBind, Source: "/srv/site/j1", Target: root + "/j1"},
				},
				Pids: backends.DefaultPids, Restart: container.RestartPolicyDisabled,
			}
			tt.want(&want)
			if diff := cmp.Diff(want, summarize(opts.Name, opts.Config, opts.HostConfig,
				opts.NetworkingConfig)); diff != "" {
				t.Errorf("created container (-want +got):\n%s", diff)
			}
		})
	}
}

func summarize(name string, cfg *container.Config, host *container.HostConfig,
	net *network.NetworkingConfig) created {
	c := created{
		Name: name, User: cfg.User, Hostname: cfg.Hostname, WorkingDir: cfg.WorkingDir,
		Image: cfg.Image, Entrypoint: cfg.Entrypoint, Cmd: cfg.Cmd, Env: cfg.Env,
		CapDrop: host.CapDrop, Secopt: host.SecurityOpt, Labels: cfg.Labels,
		Ports: cfg.ExposedPorts, Network: string(host.NetworkMode), Mounts: host.Mounts,
		NanoCPUs: host.NanoCPUs, Memory: host.Memory, MemorySwap: host.MemorySwap,
		Devices: host.DeviceRequests, Restart: host.RestartPolicy.Name,
	}
	if cfg.StopTimeout != nil {
		c.StopTimeout = *cfg.StopTimeout
	}
	if host.PidsLimit != nil {
		c.Pids = *host.PidsLimit
	}
	for n, ep := range net.EndpointsConfig {
		if n == c.Network {
			c.Aliases = ep.Aliases
		}
	}
	return c
}

func TestRootVolumeOptions(t *testing.T) {
	got := rootVolumeOptions(&backends.Mount{Kind: backends.MountRoot, Mode: 0o1777,
		SizeBytes: 64 << 20})
	want := map[string]string{"type": "tmpfs", "device": "tmpfs",
		"o": "size=67108864,mode=1777,nosuid,nodev"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("root volume options (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(w *backends.Workload)
		ok     bool
	}{
		{"as built", func(*backends.Workload) {}, true},
		{"root uid", func(w *backends.Workload) { w.Security.RunAsUser = 0 }, false},
		{"root gid", func(w *backends.Workload) { w.Security.RunAsGroup = 0 }, false},
		{"runtime socket", func(w *backends.Workload) { w.Security.RuntimeSocket = true }, false},
		{"token", func(w *backends.Workload) { w.Security.ServiceAccountToken = true }, false},
		{"escaping subpath", func(w *backends.Workload) { w.Mounts[3].SubPath = "../x" }, false},
		{"nested subpath", func(w *backends.Workload) { w.Mounts[3].SubPath = "a/b" }, false},
		{"no root", func(w *backends.Workload) { w.Mounts = w.Mounts[1:] }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := workload(t, builder.FLJob("c1"))
			tt.mutate(w)
			err := validate(w)
			if tt.ok != (err == nil) {
				t.Fatalf("validate = %v, want ok=%v", err, tt.ok)
			}
			if p, isPerm := backends.AsPermanent(err); err != nil && (!isPerm || p.Reason != "InvalidWorkload") {
				t.Errorf("validate = %v, want a PermanentError with reason InvalidWorkload", err)
			}
		})
	}
}

func TestAllocateGPUs(t *testing.T) {
	host := []string{"0", "1", "2", "3"}
	tests := []struct {
		name string
		used []string
		n    int
		want []string
		ok   bool
	}{
		{"none asked", []string{"0", "1", "2", "3"}, 0, nil, true},
		{"first free in host order", nil, 2, []string{"0", "1"}, true},
		{"skips used ones", []string{"0", "2"}, 2, []string{"1", "3"}, true},
		{"all of them", nil, 4, []string{"0", "1", "2", "3"}, true},
		{"not enough free", []string{"1", "2"}, 3, nil, false},
		{"more than the host has", nil, 5, nil, false},
		{"unknown used ids do not count", []string{"9"}, 4, []string{"0", "1", "2", "3"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			used := map[string]bool{}
			for _, id := range tt.used {
				used[id] = true
			}
			got, ok := allocateGPUs(host, used, tt.n)
			if ok != tt.ok {
				t.Fatalf("allocateGPUs ok = %v, want %v", ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("allocateGPUs (-want +got):\n%s", diff)
			}
			for _, id := range got {
				if used[id] {
					t.Errorf("allocated GPU %s is in use", id)
				}
			}
		})
	}
}

func TestAllocationsNeverOverlap(t *testing.T) {
	host := []string{"a", "b", "c", "d", "e"}
	used := map[string]bool{}
	var got [][]string
	for _, n := range []int{2, 1, 2} {
		ids, ok := allocateGPUs(host, used, n)
		if !ok {
			t.Fatalf("allocate %d of %v with %v used failed", n, host, used)
		}
		for _, id := range ids {
			if used[id] {
				t.Fatalf("GPU %s given twice", id)
			}
			used[id] = true
		}
		got = append(got, ids)
	}
	if _, ok := allocateGPUs(host, used, 1); ok {
		t.Errorf("allocated a GPU of a full host; allocations %v", got)
	}
}

func TestParseGPUs(t *testing.T) {
	if diff := cmp.Diff([]string{"0", "GPU-x"}, parseGPUs(" 0,,GPU-x ")); diff != "" {
		t.Errorf("parseGPUs (-want +got):\n%s", diff)
	}
	if got := parseGPUs(formatGPUs([]string{"1", "2"})); !cmp.Equal(got, []string{"1", "2"}) {
		t.Errorf("parseGPUs(formatGPUs) = %v", got)
	}
}

func TestParseReturnCode(t *testing.T) {
	tests := []struct {
		in   string
		want *int32
	}{
		{"0", ptr(0)}, {"9\n", ptr(9)}, {" 104 ", ptr(104)}, {"-1", ptr(-1)},
		{"", nil}, {"abc", nil}, {"1.5", nil}, {"99999999999", nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, parseReturnCode([]byte(tt.in))); diff != "" {
			t.Errorf("parseReturnCode(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func ptr(v int32) *int32 { return &v }

func TestObservation(t *testing.T) {
	const t0, t1 = "2026-01-02T03:04:05.5Z", "2026-01-02T03:05:05Z"
	at := func(s string) time.Time { return parseTime(s) }
	tests := []struct {
		name  string
		state container.State
		want  backends.Observation
	}{{
		name:  "created",
		state: container.State{Status: container.StateCreated, StartedAt: "0001-01-01T00:00:00Z"},
		want:  backends.Observation{State: backends.StateWaiting, Reason: "ContainerCreated"},
	}, {
		name:  "start refused",
		state: container.State{Status: container.StateCreated, Error: "no such file", ExitCode: 127},
		want: backends.Observation{State: backends.StateWaiting, Reason: "StartFailed",
			Message: "no such file"},
	}, {
		name:  "running",
		state: container.State{Status: container.StateRunning, Running: true, StartedAt: t0},
		want:  backends.Observation{State: backends.StateRunning, StartedAt: at(t0)},
	}, {
		name: "exited",
		state: container.State{Status: container.StateExited, ExitCode: 103, StartedAt: t0,
			FinishedAt: t1},
		want: backends.Observation{State: backends.StateExited, ExitCode: ptr(103),
			StartedAt: at(t0), FinishedAt: at(t1)},
	}, {
		name: "exited at once: the engine recorded the start after the end",
		state: container.State{Status: container.StateExited, ExitCode: 1, StartedAt: t1,
			FinishedAt: t0},
		want: backends.Observation{State: backends.StateExited, ExitCode: ptr(1),
			StartedAt: at(t0), FinishedAt: at(t0)},
	}, {
		name:  "out of memory",
		state: container.State{Status: container.StateExited, ExitCode: 137, OOMKilled: true},
		want: backends.Observation{State: backends.StateExited, ExitCode: ptr(137),
			Reason: "OOMKilled"},
	}, {
		name:  "dead",
		state: container.State{Status: container.StateDead, Dead: true, ExitCode: 1},
		want:  backends.Observation{State: backends.StateExited, ExitCode: ptr(1), Reason: "Dead"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.state
			got := observation(&container.InspectResponse{ID: "abc", Name: "/fljob-x.y-1",
				Created: t0, State: &st})
			tt.want.Name, tt.want.ID, tt.want.CreatedAt = "fljob-x.y-1", "abc", at(t0)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("observation (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnsureJobDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a directory's owner needs root")
	}
	base := t.TempDir()
	owner := func(t *testing.T, p string) (int, int, os.FileMode) {
		t.Helper()
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return int(st.Uid), int(st.Gid), fi.Mode().Perm()
	}

	t.Run("created for the job user", func(t *testing.T) {
		dir := filepath.Join(base, "new")
		if err := ensureJobDir(dir, 1000, 1001); err != nil {
			t.Fatal(err)
		}
		if u, g, m := owner(t, dir); u != 1000 || g != 1001 || m != 0o750 {
			t.Errorf("job dir owner %d:%d mode %o, want 1000:1001 750", u, g, m)
		}
	})
	t.Run("taken over from root", func(t *testing.T) {
		dir := filepath.Join(base, "rootowned")
		if err := os.Mkdir(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		if err := ensureJobDir(dir, 1000, 1000); err != nil {
			t.Fatal(err)
		}
		if u, _, m := owner(t, dir); u != 1000 || m != 0o700 {
			t.Errorf("job dir owner %d mode %o, want 1000 700", u, m)
		}
	})
	t.Run("left alone when group-writable", func(t *testing.T) {
		dir := filepath.Join(base, "group")
		if err := os.Mkdir(dir, 0o770); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 0, 1000); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o770); err != nil {
			t.Fatal(err)
		}
		if err := ensureJobDir(dir, 1000, 1000); err != nil {
			t.Fatal(err)
		}
		if u, g, _ := owner(t, dir); u != 0 || g != 1000 {
			t.Errorf("job dir owner %d:%d, want it unchanged 0:1000", u, g)
		}
	})
	for name, setup := range map[string]func(p string) error{
		"a file":    func(p string) error { return os.WriteFile(p, nil, 0o644) },
		"a symlink": func(p string) error { return os.Symlink(base, p) },
	} {
		t.Run("refused when "+name, func(t *testing.T) {
			dir := filepath.Join(base, filepath.Base(name))
			if err := setup(dir); err != nil {
				t.Fatal(err)
			}
			err := ensureJobDir(dir, 1000, 1000)
			p, ok := backends.AsPermanent(err)
			if !ok || p.Reason != "InvalidWorkload" || !strings.Contains(p.Message, dir) {
				t.Errorf("ensureJobDir = %v, want an InvalidWorkload error naming %s", err, dir)
			}
		})
	}
}
