package backends

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// State is what a backend observed of one attempt's workload.
type State string

const (
	// StateAbsent means no workload exists for the attempt.
	StateAbsent State = "Absent"
	// StateWaiting means the workload exists but its process has not
	// started: it is being created, scheduled, or waits for its image or
	// mounts. Reason and Message say why when the wait may not end.
	StateWaiting State = "Waiting"
	// StateRunning means the job process runs.
	StateRunning State = "Running"
	// StateExited means the job process ended; ExitCode says how.
	StateExited State = "Exited"
)

// Observation is one look at one attempt's workload.
type Observation struct {
	State State
	// Name and ID identify the backend object (Pod name and uid, container
	// name and id).
	Name string
	ID   string

	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time

	// ExitCode is the process's exit code, set when State is StateExited.
	ExitCode *int32
	// ReturnCode is NVFlare's return code from the job's return code file,
	// when the job wrote one and the backend could read it.
	ReturnCode *int32

	// Reason is a CamelCase cause of a wait or an exit (ImageNotFound,
	// Unschedulable, OOMKilled), Message the same in words.
	Reason  string
	Message string
}

// Backend runs workloads. Every method is idempotent and safe to call
// again after a crash: workloads are found by their labels and
// deterministic names, never from memory.
type Backend interface {
	// Name is the backend's name as written in status: kubernetes, docker.
	Name() string

	// Start creates the workload of w.Ref, or adopts the one that exists,
	// and returns what it observes. A workload that cannot be created
	// as specified yields a *PermanentError.
	Start(ctx context.Context, w *Workload) (Observation, error)

	// Observe looks at the workload of one attempt. A missing workload is
	// StateAbsent, not an error.
	Observe(ctx context.Context, ref Ref) (Observation, error)

	// Stop asks the attempt's process to exit, killing it after grace. A
	// missing or exited workload is no error.
	Stop(ctx context.Context, ref Ref, grace time.Duration) error

	// Remove deletes every workload of the FLJob, of every attempt, and
	// what makes it reachable by name. Missing workloads are no error.
	Remove(ctx context.Context, key Key) error
}

// Watcher is a backend that reports changes of its workloads, so that a
// controller need not poll. Watch blocks until ctx ends, calling notify
// with the FLJob whose workload changed.
type Watcher interface {
	Watch(ctx context.Context, notify func(Key)) error
}

// LogOptions selects the logs to read.
type LogOptions struct {
	Follow bool
	// Tail is how many last lines to read; 0 or less means all.
	Tail int
}

// LogReader is a backend that can stream an attempt's logs.
type LogReader interface {
	Logs(ctx context.Context, ref Ref, opts LogOptions, out io.Writer) error
}

// PermanentError says a workload cannot run as specified; retrying cannot
// help. The controller fails the FLJob with Reason and Message.
type PermanentError struct {
	Reason  string
	Message string
}

func (e *PermanentError) Error() string { return e.Reason + ": " + e.Message }

// Permanent returns a *PermanentError with a formatted message.
func Permanent(reason, format string, args ...any) error {
	return &PermanentError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// AsPermanent returns the *PermanentError in err's chain, if any.
func AsPermanent(err error) (*PermanentError, bool) {
	var p *PermanentError
	ok := errors.As(err, &p)
	return p, ok
}
