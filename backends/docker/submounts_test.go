package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/mount"

	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/test/builder"
)

// A mount table as the kernel prints it, with escaped spaces.
const mountTable = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:40 / /srv/site/startup/certs rw,relatime shared:2 - tmpfs tmpfs rw,size=1024k
31 30 0:41 / /srv/site/startup/certs/nested rw,relatime shared:3 - tmpfs tmpfs rw
32 22 0:42 / /srv/site/startup2/x rw,relatime shared:4 - tmpfs tmpfs rw
33 22 0:43 / /srv/site/local/with\040space rw,relatime shared:5 - tmpfs tmpfs rw
34 22 0:44 / /srv/site/startup rw,relatime shared:6 - tmpfs tmpfs rw
35 30 0:45 / /srv/site/startup/certs rw,relatime shared:7 - tmpfs tmpfs rw
`

func TestBelow(t *testing.T) {
	points, err := mountPoints(strings.NewReader(mountTable))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir  string
		want []string
	}{
		// The directory itself, a sibling sharing its prefix and a
		// mount stacked twice are left out; nested ones come after
		// their parents.
		{"/srv/site/startup", []string{"certs", "certs/nested"}},
		{"/srv/site/local/", []string{"with space"}},
		{"/srv/site/j1", nil},
	} {
		if diff := cmp.Diff(tc.want, below(points, tc.dir)); diff != "" {
			t.Errorf("below(%q) (-want +got):\n%s", tc.dir, diff)
		}
	}
}

// TestSubmountBinds checks that, on an engine without recursive read-only
// binds, the file systems mounted below startup/ are bound read-only after
// startup/ itself, and that nothing is added where the engine has them.
func TestSubmountBinds(t *testing.T) {
	const root = "/var/tmp/nvflare/workspace"
	w := workload(t, builder.FLJob("c1").HostPath("/srv/site").JobID("j1"))
	for _, tc := range []struct {
		name string
		feat Features
		want []mount.Mount
	}{{
		name: "API 1.41",
		feat: Features{APIVersion: "1.41"},
		want: []mount.Mount{
			{Type: mount.TypeBind, Source: "/srv/site/startup", Target: root + "/startup",
				ReadOnly: true},
			{Type: mount.TypeBind, Source: "/srv/site/startup/certs",
				Target: root + "/startup/certs", ReadOnly: true},
			{Type: mount.TypeBind, Source: "/srv/site/startup/certs/nested",
				Target: root + "/startup/certs/nested", ReadOnly: true},
			{Type: mount.TypeBind, Source: "/srv/site/local", Target: root + "/local",
				ReadOnly: true},
			{Type: mount.TypeBind, Source: "/srv/site/j1", Target: root + "/j1"},
		},
	}, {
		name: "API 1.44",
		feat: Features{APIVersion: "1.44", RecursiveReadOnly: true},
		want: []mount.Mount{
			{Type: mount.TypeBind, Source: "/srv/site/startup", Target: root + "/startup",
				ReadOnly: true, BindOptions: &mount.BindOptions{ReadOnlyForceRecursive: true}},
			{Type: mount.TypeBind, Source: "/srv/site/local", Target: root + "/local",
				ReadOnly: true, BindOptions: &mount.BindOptions{ReadOnlyForceRecursive: true}},
			{Type: mount.TypeBind, Source: "/srv/site/j1", Target: root + "/j1"},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := &plan{rootVolume: "root", features: tc.feat,
				sources: map[backends.Source]source{{HostPath: "/srv/site"}: {dir: "/srv/site"}}}
			if !tc.feat.RecursiveReadOnly {
				p.submounts = map[string][]string{"/srv/site/startup": {"certs", "certs/nested"}}
			}
			got, err := containerMounts(w, p)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got[1:]); diff != "" {
				t.Errorf("mounts after the root (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadOnlySubmounts reads this process's real mount table: a
// directory that no file system is mounted below has no submounts, and
// nothing is looked up where the engine binds recursively.
func TestReadOnlySubmounts(t *testing.T) {
	site := t.TempDir()
	for _, d := range []string{"startup", "local", "j1"} {
		if err := os.Mkdir(filepath.Join(site, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w := workload(t, builder.FLJob("c1").HostPath(site).JobID("j1"))
	sources := map[backends.Source]source{{HostPath: site}: {dir: site}}
	got, err := readOnlySubmounts(w, sources, Features{APIVersion: "1.41"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("submounts of a fresh directory: %v", got)
	}
	got, err = readOnlySubmounts(w, map[backends.Source]source{{HostPath: site}: {dir: "/missing"}},
		Features{APIVersion: "1.44", RecursiveReadOnly: true})
	if err != nil || got != nil {
		t.Errorf("with recursive read-only binds: %v, %v; want nothing looked up", got, err)
	}
}
