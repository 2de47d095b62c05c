package fake

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/fljob-dev/fljob/backends"
)

// Name is the fake backend's name, as written in status.
const Name = "fake"

// ExitCodeStopped is the exit code of a workload that Stop ended, as a
// process killed by SIGTERM reports it.
const ExitCodeStopped int32 = 143

// Backend is an in-memory backends.Backend, backends.Watcher and
// backends.LogReader. Its methods are safe for concurrent use.
type Backend struct {
	// OnStart, when set, decides the first observation of a new workload
	// or fails its creation. By default a new workload runs at once. It
	// runs under the backend's lock and must not call the backend.
	OnStart func(w *backends.Workload) (backends.Observation, error)
	// Clock stamps the workloads' times. Defaults to the real clock.
	Clock clock.PassiveClock

	mu        sync.Mutex
	workloads map[backends.Ref]*entry
	creates   map[backends.Ref]int
	watchers  map[int]func(backends.Key)
	nextWatch int
}

type entry struct {
	w    *backends.Workload
	obs  backends.Observation
	logs string
}

var (
	_ backends.Backend   = (*Backend)(nil)
	_ backends.Watcher   = (*Backend)(nil)
	_ backends.LogReader = (*Backend)(nil)
)

// New returns an empty fake backend.
func New() *Backend {
	return &Backend{
		workloads: map[backends.Ref]*entry{},
		creates:   map[backends.Ref]int{},
		watchers:  map[int]func(backends.Key){},
	}
}

// Name returns "fake".
func (b *Backend) Name() string { return Name }

func (b *Backend) now() time.Time {
	if b.Clock == nil {
		return time.Now()
	}
	return b.Clock.Now()
}

// slot is where an attempt's workload is kept: one per FLJob name and
// attempt, whatever the uid, as a backend's deterministic names are.
func slot(ref backends.Ref) backends.Ref {
	ref.UID = ""
	return ref
}

// Start creates the workload of w.Ref, or returns the one that exists.
func (b *Backend) Start(_ context.Context, w *backends.Workload) (backends.Observation, error) {
	obs, created, err := b.create(w)
	if created {
		b.notify(w.Ref.Key)
	}
	return obs, err
}

// create adds the workload unless it exists; OnStart runs under the lock,
// so that two Starts of one attempt cannot both create it.
func (b *Backend) create(w *backends.Workload) (backends.Observation, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.workloads[slot(w.Ref)]; ok {
		return e.obs, false, nil
	}
	now := b.now()
	obs := backends.Observation{State: backends.StateRunning, CreatedAt: now, StartedAt: now}
	if b.OnStart != nil {
		var err error
		if obs, err = b.OnStart(w); err != nil {
			return backends.Observation{}, false, err
		}
	}
	obs.Name = backends.WorkloadName(w.Ref)
	obs.ID = fmt.Sprintf("fake-%s-%d", w.Ref.Name, w.Ref.Attempt)
	if obs.CreatedAt.IsZero() {
		obs.CreatedAt = now
	}
	b.workloads[slot(w.Ref)] = &entry{w: w, obs: obs}
	b.creates[slot(w.Ref)]++
	return obs, true, nil
}

// Observe returns the attempt's workload, StateAbsent when there is none.
func (b *Backend) Observe(_ context.Context, ref backends.Ref) (backends.Observation, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.workloads[slot(ref)]; ok && (ref.UID == "" || ref.UID == e.w.Ref.UID) {
		return e.obs, nil
	}
	return backends.Observation{State: backends.StateAbsent}, nil
}

// Stop ends a waiting or running workload with ExitCodeStopped.
func (b *Backend) Stop(_ context.Context, ref backends.Ref, _ time.Duration) error {
	b.mu.Lock()
	e, ok := b.workloads[slot(ref)]
	if !ok || e.obs.State == backends.StateExited {
		b.mu.Unlock()
		return nil
	}
	code := ExitCodeStopped
	e.obs.State, e.obs.ExitCode, e.obs.FinishedAt = backends.StateExited, &code, b.now()
	b.mu.Unlock()
	b.notify(ref.Key)
	return nil
}

// Remove deletes every workload of the FLJob.
func (b *Backend) Remove(_ context.Context, key backends.Key) error {
	b.mu.Lock()
	removed := false
	for ref := range b.workloads {
		if ref.Key == key {
			delete(b.workloads, ref)
			removed = true
		}
	}
	b.mu.Unlock()
	if removed {
		b.notify(key)
	}
	return nil
}

// Watch calls notify with every FLJob whose workload changes until ctx ends.
func (b *Backend) Watch(ctx context.Context, notify func(backends.Key)) error {
	b.mu.Lock()
	id := b.nextWatch
	b.nextWatch++
	b.watchers[id] = notify
	b.mu.Unlock()
	<-ctx.Done()
	b.mu.Lock()
	delete(b.watchers, id)
	b.mu.Unlock()
	return nil
}

// Logs writes what Log recorded for the attempt.
func (b *Backend) Logs(_ context.Context, ref backends.Ref, _ backends.LogOptions, out io.Writer) error {
	b.mu.Lock()
	e, ok := b.workloads[slot(ref)]
	var logs string
	if ok {
		logs = e.logs
	}
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("logs of %s attempt %d: no workload", ref.Key, ref.Attempt)
	}
	_, err := io.WriteString(out, logs)
	return err
}

func (b *Backend) notify(key backends.Key) {
	b.mu.Lock()
	fns := make([]func(backends.Key), 0, len(b.watchers))
	for _, fn := range b.watchers {
		fns = append(fns, fn)
	}
	b.mu.Unlock()
	for _, fn := range fns {
		fn(key)
	}
}

// Exit makes the attempt's workload exit with code, and with NVFlare
// return code rc unless it is nil. It reports whether the workload exists.
func (b *Backend) Exit(ref backends.Ref, code int32, rc *int32) bool {
	return b.Set(ref, func(o *backends.Observation) {
		o.State, o.ExitCode, o.ReturnCode, o.FinishedAt = backends.StateExited, &code, rc, b.now()
	})
}

// Set changes the attempt's observation with fn and reports whether the
// workload exists.
func (b *Backend) Set(ref backends.Ref, fn func(*backends.Observation)) bool {
	b.mu.Lock()
	e, ok := b.workloads[slot(ref)]
	if ok {
		fn(&e.obs)
	}
	b.mu.Unlock()
	if ok {
		b.notify(ref.Key)
	}
	return ok
}

// Log appends text to the attempt's logs.
func (b *Backend) Log(ref backends.Ref, text string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.workloads[slot(ref)]; ok {
		e.logs += text
	}
}

// Workload returns the model the attempt's workload was started with and
// its observation, or false when it has none.
func (b *Backend) Workload(ref backends.Ref) (*backends.Workload, backends.Observation, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.workloads[slot(ref)]
	if !ok {
		return nil, backends.Observation{}, false
	}
	return e.w, e.obs, true
}

// Refs returns the attempts that have a workload, sorted.
func (b *Backend) Refs() []backends.Ref {
	b.mu.Lock()
	defer b.mu.Unlock()
	refs := make([]backends.Ref, 0, len(b.workloads))
	for ref := range b.workloads {
		refs = append(refs, ref)
	}
	sort.Slice(refs, func(i, j int) bool {
		if refs[i].Key != refs[j].Key {
			return refs[i].String() < refs[j].String()
		}
		return refs[i].Attempt < refs[j].Attempt
	})
	return refs
}

// Creates returns how many times a workload was created for the attempt:
// more than one means a workload was duplicated after it had been removed.
func (b *Backend) Creates(ref backends.Ref) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.creates[slot(ref)]
}
