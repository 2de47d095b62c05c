package docker

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/mount"
	"github.com/moby/sys/mountinfo"

	"github.com/fljob-dev/fljob/backends"
)

// mountinfoPath is the mount table of the backend's process. The backend
// runs on the Docker host, in the mount namespace the engine resolves bind
// sources in.
const mountinfoPath = "/proc/self/mountinfo"

// readOnlySubmounts finds, on an engine without recursive read-only binds,
// the file systems mounted below the host directory of each read-only bind
// of w. The engine binds a directory with everything mounted below it, and
// only the top of that becomes read-only; the translation then binds each
// of these file systems read-only on its own. The result maps a bind's host
// directory to the mount points below it, relative to it, outermost first.
// File systems mounted there after the container starts do not reach it:
// the engine's binds do not propagate mounts.
func readOnlySubmounts(w *backends.Workload, sources map[backends.Source]source,
	f Features) (map[string][]string, error) {
	if f.RecursiveReadOnly {
		return nil, nil
	}
	var dirs []string
	for _, m := range w.Mounts {
		src, ok := sources[m.Source]
		if m.Kind == backends.MountRoot || !m.ReadOnly || !ok || src.volume != "" || src.dir == "" {
			continue
		}
		dirs = append(dirs, filepath.Join(src.dir, m.SubPath))
	}
	if len(dirs) == 0 {
		return nil, nil
	}
	file, err := os.Open(mountinfoPath)
	if err != nil {
		return nil, fmt.Errorf("read the mount table: %w", err)
	}
	defer file.Close()
	points, err := mountPoints(file)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string)
	for _, dir := range dirs {
		resolved, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return nil, invalid("cannot resolve the workspace directory %s: %v", dir, err)
		}
		if rel := below(points, resolved); len(rel) > 0 {
			out[dir] = rel
		}
	}
	return out, nil
}

// mountPoints returns the mount points of a mountinfo table, unescaped.
func mountPoints(r io.Reader) ([]string, error) {
	infos, err := mountinfo.GetMountsFromReader(r, nil)
	if err != nil {
		return nil, fmt.Errorf("read the mount table: %w", err)
	}
	out := make([]string, 0, len(infos))
	for _, m := range infos {
		out = append(out, m.Mountpoint)
	}
	return out, nil
}

// below returns the mount points strictly below dir, relative to it,
// without duplicates, outermost first.
func below(points []string, dir string) []string {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	seen := make(map[string]bool)
	var out []string
	for _, p := range points {
		rel, ok := strings.CutPrefix(p, prefix)
		if !ok || rel == "" || seen[rel] {
			continue
		}
		seen[rel] = true
		out = append(out, rel)
	}
	sort.Slice(out, func(i, j int) bool {
		di, dj := strings.Count(out[i], "/"), strings.Count(out[j], "/")
		if di != dj {
			return di < dj
		}
		return out[i] < out[j]
	})
	return out
}

// submountBinds returns the read-only binds of the file systems mounted
// below a read-only bind, for engines without recursive read-only binds.
// The engine mounts deeper targets after shallower ones, so each lands on
// top of the writable copy the parent's bind brought along.
func submountBinds(parent mount.Mount, rels []string) []mount.Mount {
	out := make([]mount.Mount, 0, len(rels))
	for _, rel := range rels {
		out = append(out, mount.Mount{
			Type: mount.TypeBind, Source: filepath.Join(parent.Source, rel),
			Target: filepath.Join(parent.Target, rel), ReadOnly: true,
		})
	}
	return out
}
