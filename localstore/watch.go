package localstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fljob-dev/fljob/backends"
)

// Watch calls notify with every FLJob that is created, changed or deleted,
// until ctx ends. It polls: every PollInterval it reads the store's
// resource version and, when it moved, compares the FLJobs' resource
// versions with those it saw last. The FLJobs that exist when it starts
// are reported once.
func (s *Store) Watch(ctx context.Context, notify func(backends.Key)) error {
	seen := map[backends.Key]string{}
	var lastRV uint64
	first := true
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		rv, err := s.ResourceVersion()
		if err != nil {
			return err
		}
		if first || rv != lastRV {
			// Writers count the resource version up before they rename
			// the object into place, both under the exclusive lock: under
			// the shared lock every counted write is complete.
			var changed []backends.Key
			err := s.withLockMode(syscall.LOCK_SH, func() error {
				var err error
				if rv, err = s.ResourceVersion(); err != nil {
					return err
				}
				changed, err = s.diff(seen)
				return err
			})
			if err != nil {
				return err
			}
			lastRV, first = rv, false
			for _, k := range changed {
				notify(k)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// diff returns the FLJobs whose resource version differs from seen, and
// those gone, and updates seen.
func (s *Store) diff(seen map[backends.Key]string) ([]backends.Key, error) {
	keys, err := s.keys("")
	if err != nil {
		return nil, err
	}
	var changed []backends.Key
	now := make(map[backends.Key]string, len(keys))
	for _, k := range keys {
		job, err := s.read(k)
		if err != nil {
			return nil, err
		}
		if job == nil {
			continue
		}
		now[k] = job.ResourceVersion
		if seen[k] != job.ResourceVersion {
			changed = append(changed, k)
		}
	}
	for k := range seen {
		if _, ok := now[k]; !ok {
			changed = append(changed, k)
		}
	}
	clear(seen)
	for k, rv := range now {
		seen[k] = rv
	}
	return changed, nil
}

// ErrControllerRunning says another process holds the controller lock.
var ErrControllerRunning = errors.New("a controller already runs on this store")

// LockController takes the controller lock, which says that a controller
// runs on this store, and returns its release. The kernel releases it
// when the process dies, so a crashed controller never blocks the next.
// It fails with an error wrapping ErrControllerRunning, naming the holder's
// pid, when another controller holds it.
func (s *Store) LockController() (func(), error) {
	p := filepath.Join(s.dir, ctrlLock)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, fileMode)
	if err != nil {
		return nil, fmt.Errorf("open controller lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (pid %s)", ErrControllerRunning, holder(p))
		}
		return nil, fmt.Errorf("lock controller: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "%d\n", os.Getpid())
	}
	return func() {
		f.Truncate(0)                               //nolint:errcheck // best effort: the pid is only informative
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too
		f.Close()
	}, nil
}

// ControllerPID returns the pid of the process holding the controller
// lock, or 0 when no controller runs.
func (s *Store) ControllerPID() int {
	release, err := s.LockController()
	if err == nil {
		release()
		return 0
	}
	pid, _ := strconv.Atoi(holder(filepath.Join(s.dir, ctrlLock)))
	if pid == 0 {
		pid = -1
	}
	return pid
}

func holder(lockPath string) string {
	data, err := os.ReadFile(lockPath)
	if err != nil || len(strings.TrimSpace(string(data))) == 0 {
		return "unknown"
	}
	return strings.TrimSpace(string(data))
}

// removeStaleTemps deletes temporary files that a crash left behind; they
// are never renamed into place, so no reader sees them.
func removeStaleTemps(dir string, before time.Time) {
	//nolint:errcheck // best effort: stale files are only clutter
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // skip what cannot be read: the sweep is best effort
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		if info, err := d.Info(); err == nil && info.ModTime().Before(before) {
			os.Remove(p)
		}
		return nil
	})
}
