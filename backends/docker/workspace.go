package docker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/fljob-dev/fljob/backends"
)

// jobDirMode is the mode of a job directory the backend creates.
const jobDirMode fs.FileMode = 0o750

// resolveSources finds, for each workspace source of w, how this engine
// mounts it, and prepares its host directories where the backend can. A
// source that does not exist yet yields a waiting observation.
func (b *Backend) resolveSources(ctx context.Context, w *backends.Workload,
	f Features) (map[backends.Source]source, *backends.Observation, error) {
	out := make(map[backends.Source]source)
	for _, m := range w.Mounts {
		if m.Kind == backends.MountRoot {
			continue
		}
		if _, done := out[m.Source]; done {
			continue
		}
		if m.Source.HostPath != "" {
			out[m.Source] = source{dir: m.Source.HostPath}
			continue
		}
		src, obs, err := b.resolveVolume(ctx, w.Ref, m.Source.Volume, f)
		if err != nil || obs != nil {
			return nil, obs, err
		}
		out[m.Source] = src
	}
	for _, m := range w.Mounts {
		if m.Kind == backends.MountRoot {
			continue
		}
		if dir := out[m.Source].dir; dir != "" {
			if err := prepareDir(filepath.Join(dir, m.SubPath), &m, w); err != nil {
				return nil, nil, err
			}
		}
	}
	return out, nil, nil
}

// resolveVolume decides how a named volume is mounted: by subpath where
// the engine can, otherwise by binding its directories, which only a plain
// volume of the local driver has on the host. Where those directories are
// on the host, the backend prepares them either way; otherwise they must
// exist.
func (b *Backend) resolveVolume(ctx context.Context, ref backends.Ref, name string,
	f Features) (source, *backends.Observation, error) {
	res, err := b.cli.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		obs := waiting(ContainerName(ref), "VolumeNotFound",
			"the workspace volume %q does not exist", name)
		return source{}, &obs, nil
	}
	if err != nil {
		return source{}, nil, fmt.Errorf("inspect volume %s: %w", name, err)
	}
	v := res.Volume
	// A plain local volume is a directory on the host. One with driver
	// options (a tmpfs, an NFS export) is mounted only while a container
	// uses it, so there is nothing on the host to prepare or bind.
	var dir string
	if v.Driver == "local" && len(v.Options) == 0 {
		dir = v.Mountpoint
	}
	switch {
	case f.VolumeSubpath:
		return source{dir: dir, volume: name}, nil, nil
	case dir != "":
		return source{dir: dir}, nil, nil
	default:
		return source{}, nil, invalid("the workspace volume %q (driver %s) can be mounted by "+
			"subdirectory only with Docker API %s or later, and this engine speaks %s; "+
			"only a plain volume of the local driver works here", name, v.Driver,
			apiVolumeSubpath, f.APIVersion)
	}
}

// prepareDir checks one mount's host directory: a read-only directory
// must exist; the writable job directory is created when missing and given
// to the job's user when that user cannot write it.
func prepareDir(dir string, m *backends.Mount, w *backends.Workload) error {
	if m.ReadOnly {
		fi, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return invalid("the workspace has no %s directory: %s does not exist", m.SubPath, dir)
		case err != nil:
			return invalid("cannot read the workspace's %s directory %s: %v", m.SubPath, dir, err)
		case !fi.IsDir():
			return invalid("the workspace's %s entry %s is not a directory", m.SubPath, dir)
		}
		return nil
	}
	return ensureJobDir(dir, int(w.Security.RunAsUser), int(w.Security.RunAsGroup))
}

// ensureJobDir makes dir a directory that uid:gid can write, creating it
// when missing and changing its owner when needed. Errors name the path.
func ensureJobDir(dir string, uid, gid int) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// Another Start of the same attempt may create it first.
		err = os.Mkdir(dir, jobDirMode)
		switch {
		case err == nil:
			if err := os.Chmod(dir, jobDirMode); err != nil {
				return invalid("cannot set the mode of the job directory %s: %v", dir, err)
			}
		case !errors.Is(err, fs.ErrExist):
			return invalid("cannot create the job directory %s: %v", dir, err)
		}
		fi, err = os.Lstat(dir)
	}
	switch {
	case err != nil:
		return invalid("cannot read the job directory %s: %v", dir, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return invalid("the job directory %s is a symbolic link; it must be a directory", dir)
	case !fi.IsDir():
		return invalid("the job directory %s is not a directory", dir)
	case writableBy(fi, uid, gid):
		return nil
	}
	if err := os.Lchown(dir, uid, gid); err != nil {
		return invalid("the job directory %s is not writable by uid %d gid %d and its owner "+
			"cannot be changed: %v", dir, uid, gid, err)
	}
	if fi.Mode().Perm()&0o700 != 0o700 {
		if err := os.Chmod(dir, fi.Mode().Perm()|0o700); err != nil {
			return invalid("cannot make the job directory %s writable by its owner: %v", dir, err)
		}
	}
	return nil
}

// writableBy says whether uid:gid (without supplementary groups) may
// create files in the directory fi describes, by the kernel's rule: the
// owner's bits apply to the owner, the group's to the group, the others'
// to everybody else.
func writableBy(fi fs.FileInfo, uid, gid int) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	perm := fi.Mode().Perm()
	switch {
	case int(st.Uid) == uid:
		return perm&0o300 == 0o300
	case int(st.Gid) == gid:
		return perm&0o030 == 0o030
	default:
		return perm&0o003 == 0o003
	}
}
