package localstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/utils/clock"
	"sigs.k8s.io/yaml"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/controllers"
	"github.com/fljob-dev/fljob/validation"
)

// Environment and defaults of the state directory.
const (
	// EnvStateDir overrides the default state directory.
	EnvStateDir = "FLJOB_STATE_DIR"
	// DefaultPollInterval is how often Watch looks for changes.
	DefaultPollInterval = 200 * time.Millisecond
	// DefaultMaxEvents is how many events are kept per FLJob.
	DefaultMaxEvents = 50
)

const (
	jobsDir     = "fljobs"
	eventsDir   = "events"
	secretsDir  = "secrets"
	rvFile      = "resource-version"
	lockFile    = "store.lock"
	ctrlLock    = "controller.lock"
	fileSuffix  = ".yaml"
	tempPrefix  = ".tmp-"
	dirMode     = 0o700
	fileMode    = 0o644
	secretMode  = 0o600
	staleTempAt = time.Hour
)

var groupResource = schema.GroupResource{Group: fljobv1.GroupVersion.Group, Resource: "fljobs"}

// DefaultDir returns the state directory: $FLJOB_STATE_DIR, else
// $XDG_STATE_HOME/fljob, else ~/.local/state/fljob.
func DefaultDir() (string, error) {
	if d := os.Getenv(EnvStateDir); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "fljob"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the state directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "fljob"), nil
}

// Options tune a Store.
type Options struct {
	// Clock stamps creation, deletion and event times.
	Clock clock.PassiveClock
	// PollInterval defaults to DefaultPollInterval.
	PollInterval time.Duration
	// MaxEvents defaults to DefaultMaxEvents.
	MaxEvents int
	// Log receives what cannot be returned (failed event writes).
	Log logr.Logger
}

// Store is a directory of FLJobs. It implements controllers.Store and
// controllers.Recorder. Its methods are safe for concurrent use, also by
// several processes.
type Store struct {
	dir  string
	v    *validation.Validator
	opts Options
}

var (
	_ controllers.Store    = (*Store)(nil)
	_ controllers.Recorder = (*Store)(nil)
)

// Open opens the store in dir, creating the directory when missing.
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open store: no state directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	for _, d := range []string{abs, filepath.Join(abs, jobsDir), filepath.Join(abs, eventsDir),
		filepath.Join(abs, secretsDir)} {
		if err := os.MkdirAll(d, dirMode); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	v, err := validation.Default()
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	if opts.Log.GetSink() == nil {
		opts.Log = logr.Discard()
	}
	removeStaleTemps(abs, opts.Clock.Now().Add(-staleTempAt))
	return &Store{dir: abs, v: v, opts: opts}, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Validator returns the validator the store checks FLJobs with.
func (s *Store) Validator() *validation.Validator { return s.v }

func (s *Store) jobPath(k backends.Key) string {
	return filepath.Join(s.dir, jobsDir, k.Namespace, k.Name+fileSuffix)
}

func (s *Store) eventsPath(k backends.Key) string {
	return filepath.Join(s.dir, eventsDir, k.Namespace, k.Name+fileSuffix)
}

// apiError is an API server error that also matches a controllers
// sentinel, and reads as the API server's message alone.
type apiError struct {
	sentinel error
	err      error
}

func (e *apiError) Error() string   { return e.err.Error() }
func (e *apiError) Unwrap() []error { return []error{e.sentinel, e.err} }

// notFound is the API server's NotFound error, matching ErrNotFound.
func notFound(gr schema.GroupResource, name string) error {
	return &apiError{sentinel: controllers.ErrNotFound, err: apierrors.NewNotFound(gr, name)}
}

// conflict is the API server's Conflict error, matching ErrConflict.
func conflict(name string) error {
	return &apiError{sentinel: controllers.ErrConflict, err: apierrors.NewConflict(groupResource, name,
		errors.New("the object has been modified; please apply your changes to the latest version and try again"))}
}

// Get returns the FLJob, or an error wrapping controllers.ErrNotFound.
func (s *Store) Get(_ context.Context, key backends.Key) (*fljobv1.FLJob, error) {
	job, err := s.read(key)
	if err != nil {
		return nil, err
	}
	if job == nil {
		return nil, notFound(groupResource, key.Name)
	}
	return job, nil
}

// read returns the stored FLJob, or nil when there is none.
func (s *Store) read(key backends.Key) (*fljobv1.FLJob, error) {
	data, err := os.ReadFile(s.jobPath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read FLJob %s: %w", key, err)
	}
	job := &fljobv1.FLJob{}
	if err := yaml.Unmarshal(data, job); err != nil {
		return nil, fmt.Errorf("decode %s: %w", s.jobPath(key), err)
	}
	return job, nil
}

// List returns the FLJobs of a namespace, or of all namespaces when
// namespace is empty, sorted by namespace and name.
func (s *Store) List(_ context.Context, namespace string) ([]fljobv1.FLJob, error) {
	keys, err := s.keys(namespace)
	if err != nil {
		return nil, err
	}
	jobs := make([]fljobv1.FLJob, 0, len(keys))
	for _, k := range keys {
		job, err := s.read(k)
		if err != nil {
			return nil, err
		}
		if job != nil {
			jobs = append(jobs, *job)
		}
	}
	return jobs, nil
}

// Keys returns the key of every FLJob of every namespace.
func (s *Store) Keys(_ context.Context) ([]backends.Key, error) {
	return s.keys("")
}

func (s *Store) keys(namespace string) ([]backends.Key, error) {
	root := filepath.Join(s.dir, jobsDir)
	namespaces := []string{namespace}
	if namespace == "" {
		entries, err := os.ReadDir(root)
		if err != nil {
			return nil, fmt.Errorf("list namespaces: %w", err)
		}
		namespaces = namespaces[:0]
		for _, e := range entries {
			if e.IsDir() {
				namespaces = append(namespaces, e.Name())
			}
		}
	}
	var keys []backends.Key
	for _, ns := range namespaces {
		entries, err := os.ReadDir(filepath.Join(root, ns))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list FLJobs: %w", err)
		}
		for _, e := range entries {
			n := e.Name()
			if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, fileSuffix) {
				continue
			}
			keys = append(keys, backends.Key{Namespace: ns, Name: strings.TrimSuffix(n, fileSuffix)})
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Namespace != keys[j].Namespace {
			return keys[i].Namespace < keys[j].Namespace
		}
		return keys[i].Name < keys[j].Name
	})
	return keys, nil
}

// ApplyResult says what an apply did, in kubectl's words.
type ApplyResult string

// Apply results.
const (
	Created    ApplyResult = "created"
	Configured ApplyResult = "configured"
	Unchanged  ApplyResult = "unchanged"
)

// Apply creates the FLJob u describes, or replaces the spec, labels and
// annotations of the stored one, after validating it as the API server
// would (with the stored object on update). u must come from
// validation.Validator.Decode and name its namespace. With dryRun nothing
// is written. The returned FLJob is what is (or would be) stored.
func (s *Store) Apply(ctx context.Context, u *unstructured.Unstructured, dryRun bool) (ApplyResult, *fljobv1.FLJob, error) {
	var (
		res ApplyResult
		out *fljobv1.FLJob
	)
	err := s.withLock(func() error {
		var err error
		res, out, err = s.apply(ctx, u, dryRun)
		return err
	})
	return res, out, err
}

func (s *Store) apply(ctx context.Context, u *unstructured.Unstructured, dryRun bool) (ApplyResult, *fljobv1.FLJob, error) {
	name, ns := u.GetName(), u.GetNamespace()
	if u.GetGenerateName() != "" && name == "" {
		return "", nil, apierrors.NewBadRequest("metadata.generateName is not supported by the local store: name the FLJob")
	}
	var old *fljobv1.FLJob
	if name != "" && ns != "" {
		var err error
		if old, err = s.read(backends.Key{Namespace: ns, Name: name}); err != nil {
			return "", nil, err
		}
	}
	if old == nil {
		return s.create(ctx, u, dryRun)
	}
	if old.DeletionTimestamp != nil {
		return "", nil, fmt.Errorf("object is being deleted: %w", apierrors.NewAlreadyExists(groupResource, name))
	}
	if rv := u.GetResourceVersion(); rv != "" && rv != old.ResourceVersion {
		return "", nil, conflict(name)
	}
	oldU, err := validation.FromFLJob(old)
	if err != nil {
		return "", nil, err
	}
	if err := s.v.Update(ctx, u, oldU); err != nil {
		return "", nil, err
	}
	job, err := validation.ToFLJob(u)
	if err != nil {
		return "", nil, err
	}
	specChanged := !equality.Semantic.DeepEqual(job.Spec, old.Spec)
	if !specChanged && equality.Semantic.DeepEqual(job.Labels, old.Labels) &&
		equality.Semantic.DeepEqual(job.Annotations, old.Annotations) {
		return Unchanged, old, nil
	}
	if specChanged {
		job.Generation = old.Generation + 1
	}
	if dryRun {
		return Configured, job, nil
	}
	if err := s.writeJob(job); err != nil {
		return "", nil, err
	}
	return Configured, job, nil
}

func (s *Store) create(ctx context.Context, u *unstructured.Unstructured, dryRun bool) (ApplyResult, *fljobv1.FLJob, error) {
	if u.GetResourceVersion() != "" {
		return "", nil, apierrors.NewBadRequest("resourceVersion should not be set on objects to be created")
	}
	if err := s.v.Create(ctx, u); err != nil {
		return "", nil, err
	}
	job, err := validation.ToFLJob(u)
	if err != nil {
		return "", nil, err
	}
	job.UID = types.UID(uuid.NewUUID())
	job.CreationTimestamp = metav1.Time{Time: s.opts.Clock.Now().Truncate(time.Second)}
	job.Generation = 1
	job.DeletionTimestamp, job.DeletionGracePeriodSeconds = nil, nil
	job.Status = fljobv1.FLJobStatus{}
	if dryRun {
		return Created, job, nil
	}
	if err := s.writeJob(job); err != nil {
		return "", nil, err
	}
	return Created, job, nil
}

// UpdateStatus writes job.Status if job is still the stored version,
// after validating it against the status schema. On success job holds the
// stored object and its new resource version.
func (s *Store) UpdateStatus(ctx context.Context, job *fljobv1.FLJob) error {
	return s.withLock(func() error {
		stored, err := s.current(job)
		if err != nil {
			return err
		}
		next := stored.DeepCopy()
		next.Status = *job.Status.DeepCopy()
		nextU, err := validation.FromFLJob(next)
		if err != nil {
			return err
		}
		storedU, err := validation.FromFLJob(stored)
		if err != nil {
			return err
		}
		if err := s.v.StatusUpdate(ctx, nextU, storedU); err != nil {
			return err
		}
		if err := s.writeJob(next); err != nil {
			return err
		}
		*job = *next
		return nil
	})
}

// current returns the stored FLJob if job is its version.
func (s *Store) current(job *fljobv1.FLJob) (*fljobv1.FLJob, error) {
	stored, err := s.read(backends.Key{Namespace: job.Namespace, Name: job.Name})
	if err != nil {
		return nil, err
	}
	if stored == nil {
		return nil, notFound(groupResource, job.Name)
	}
	if stored.ResourceVersion != job.ResourceVersion {
		return nil, conflict(job.Name)
	}
	return stored, nil
}

// DeleteResult says what a delete did.
type DeleteResult string

// Delete results.
const (
	// Deleted means the FLJob is gone.
	Deleted DeleteResult = "deleted"
	// MarkedDeleted means the FLJob has finalizers: it carries a
	// deletionTimestamp until the controller removes them.
	MarkedDeleted DeleteResult = "marked for deletion"
	// NotFound means there was no such FLJob.
	NotFound DeleteResult = "not found"
)

// Delete deletes the FLJob; it lingers, marked deleted, while it has
// finalizers. A missing FLJob is no error.
func (s *Store) Delete(ctx context.Context, job *fljobv1.FLJob) error {
	_, err := s.DeleteKey(ctx, backends.Key{Namespace: job.Namespace, Name: job.Name})
	return err
}

// DeleteKey deletes the FLJob of key and says what it did.
func (s *Store) DeleteKey(_ context.Context, key backends.Key) (DeleteResult, error) {
	res := NotFound
	err := s.withLock(func() error {
		stored, err := s.read(key)
		if err != nil || stored == nil {
			return err
		}
		if len(stored.Finalizers) == 0 {
			res = Deleted
			return s.remove(key)
		}
		res = MarkedDeleted
		if stored.DeletionTimestamp != nil {
			return nil
		}
		// As the API server marks an object with finalizers: a deletion
		// time, no grace, and a new generation.
		stored.DeletionTimestamp = &metav1.Time{Time: s.opts.Clock.Now().Truncate(time.Second)}
		stored.DeletionGracePeriodSeconds = new(int64)
		stored.Generation++
		return s.writeJob(stored)
	})
	return res, err
}

// SetFinalizer adds or removes the controller's finalizer if job is still
// the stored version. Removing the last finalizer of a deleted FLJob
// removes it.
func (s *Store) SetFinalizer(_ context.Context, job *fljobv1.FLJob, present bool) error {
	return s.withLock(func() error {
		stored, err := s.current(job)
		if err != nil {
			return err
		}
		var fins []string
		for _, f := range stored.Finalizers {
			if f != controllers.Finalizer {
				fins = append(fins, f)
			}
		}
		if present {
			fins = append(fins, controllers.Finalizer)
		}
		if equality.Semantic.DeepEqual(fins, stored.Finalizers) {
			*job = *stored
			return nil
		}
		stored.Finalizers = fins
		if len(fins) == 0 && stored.DeletionTimestamp != nil {
			*job = *stored
			return s.remove(backends.Key{Namespace: job.Namespace, Name: job.Name})
		}
		if err := s.writeJob(stored); err != nil {
			return err
		}
		*job = *stored
		return nil
	})
}

// writeJob stores job under a new resource version, which it sets. The
// caller holds the lock.
func (s *Store) writeJob(job *fljobv1.FLJob) error {
	rv, err := s.nextResourceVersion()
	if err != nil {
		return err
	}
	job.ResourceVersion = strconv.FormatUint(rv, 10)
	job.APIVersion, job.Kind = fljobv1.GroupVersion.String(), fljobv1.Kind
	data, err := yaml.Marshal(job)
	if err != nil {
		return fmt.Errorf("encode FLJob %s/%s: %w", job.Namespace, job.Name, err)
	}
	return writeAtomic(s.jobPath(backends.Key{Namespace: job.Namespace, Name: job.Name}), data, fileMode)
}

// remove deletes an FLJob's file and its events. The caller holds the lock.
func (s *Store) remove(key backends.Key) error {
	if _, err := s.nextResourceVersion(); err != nil {
		return err
	}
	for _, p := range []string{s.jobPath(key), s.eventsPath(key)} {
		err := os.Remove(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("delete FLJob %s: %w", key, err)
		}
		if err := syncDir(filepath.Dir(p)); err != nil {
			return err
		}
	}
	return nil
}

// ResourceVersion returns the last resource version handed out; it moves
// on every write.
func (s *Store) ResourceVersion() (uint64, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, rvFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read resource version: %w", err)
	}
	rv, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse resource version: %w", err)
	}
	return rv, nil
}

// nextResourceVersion durably counts up the resource version. The caller
// holds the lock.
func (s *Store) nextResourceVersion() (uint64, error) {
	rv, err := s.ResourceVersion()
	if err != nil {
		return 0, err
	}
	rv++
	data := []byte(strconv.FormatUint(rv, 10) + "\n")
	if err := writeAtomic(filepath.Join(s.dir, rvFile), data, fileMode); err != nil {
		return 0, err
	}
	return rv, nil
}

// withLock runs fn holding the store's write lock, an exclusive flock that
// the kernel releases when its holder dies.
func (s *Store) withLock(fn func() error) error {
	return s.withLockMode(syscall.LOCK_EX, fn)
}

// withLockMode runs fn holding the store lock exclusively (LOCK_EX) or
// shared with other readers (LOCK_SH).
func (s *Store) withLockMode(mode int, fn func() error) error {
	f, err := os.OpenFile(filepath.Join(s.dir, lockFile), os.O_CREATE|os.O_RDWR, fileMode)
	if err != nil {
		return fmt.Errorf("open store lock: %w", err)
	}
	defer f.Close()
	if err := flock(f, mode); err != nil {
		return fmt.Errorf("lock store: %w", err)
	}
	defer flock(f, syscall.LOCK_UN) //nolint:errcheck // closing the file releases it anyway
	return fn()
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// writeAtomic replaces path with data: written to a temporary file in the
// same directory, synced, renamed over path, and the directory synced, so
// that after a crash path holds the old or the new data in full.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, tempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	return syncDir(dir)
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
