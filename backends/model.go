package backends

import (
	"time"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
)

// Labels every workload carries, so that a backend finds the workloads of an
// FLJob by label after a restart, never from memory.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelNamespace = "fljob.dev/namespace"
	LabelName      = "fljob.dev/name"
	LabelUID       = "fljob.dev/uid"
	LabelJobID     = "fljob.dev/job-id"
	LabelRole      = "fljob.dev/role"
	LabelSite      = "fljob.dev/site"
	LabelAttempt   = "fljob.dev/attempt"
	LabelSpecHash  = "fljob.dev/spec-hash"

	// ManagedBy is the value of LabelManagedBy on every workload.
	ManagedBy = "fljob"
)

// ReturnCodeFile is the file, in the job directory, into which an NVFlare
// job process writes its return code.
const ReturnCodeFile = "_process_rc.txt"

// Key identifies an FLJob.
type Key struct {
	Namespace string
	Name      string
}

// String returns namespace/name.
func (k Key) String() string { return k.Namespace + "/" + k.Name }

// Ref identifies the workload of one attempt of an FLJob.
type Ref struct {
	Key
	// UID is the FLJob's uid. When set, a workload left by an earlier FLJob
	// of the same name is not this one's.
	UID string
	// Attempt counts from 1.
	Attempt int32
}

// MountKind says what part of the workspace a mount carries.
type MountKind string

const (
	// MountRoot is the ephemeral workspace root.
	MountRoot MountKind = "Root"
	// MountStartup is the site's startup kit, read-only.
	MountStartup MountKind = "Startup"
	// MountLocal is the site's local configuration, read-only.
	MountLocal MountKind = "Local"
	// MountJob is the job's own directory, persistent and writable.
	MountJob MountKind = "Job"
)

// Source is where a persistent mount comes from: exactly one of HostPath or
// Volume is set.
type Source struct {
	// HostPath is an absolute directory on the host.
	HostPath string
	// Volume is a named volume: a PVC on Kubernetes, a Docker volume on
	// Docker.
	Volume string
}

// Mount is one mount of the workload.
type Mount struct {
	Kind MountKind
	// Target is the absolute path inside the workload.
	Target string
	// Source and SubPath give a persistent mount's origin; both are empty
	// for the ephemeral root.
	Source  Source
	SubPath string
	// ReadOnly mounts are read-only recursively where the runtime allows.
	ReadOnly bool
	// Mode is the permission of the ephemeral root (with the sticky bit).
	Mode uint32
	// SizeBytes bounds the ephemeral root.
	SizeBytes int64
}

// EnvVar is one environment variable: a plain Value, or a key of a Secret.
type EnvVar struct {
	Name   string
	Value  string
	Secret *SecretKey
}

// SecretKey names one key of a Secret in the FLJob's namespace.
type SecretKey struct {
	Name string
	Key  string
}

// Port is a port the job listens on.
type Port struct {
	Name     string
	Port     int32
	Protocol string
}

// Security is the process's security settings. Every field is a statement
// the backend must enforce, not a request it may ignore.
type Security struct {
	// RunAsUser and RunAsGroup are never 0.
	RunAsUser  int64
	RunAsGroup int64
	// RunAsNonRoot asks the runtime to refuse a root process.
	RunAsNonRoot bool
	// DropAllCapabilities leaves the process no capability in any set.
	DropAllCapabilities bool
	// NoNewPrivileges forbids gaining privileges (setuid, file caps).
	NoNewPrivileges bool
	// SeccompRuntimeDefault applies the runtime's default seccomp profile.
	SeccompRuntimeDefault bool
	// ServiceAccountToken mounts a Kubernetes API token; always false.
	ServiceAccountToken bool
	// RuntimeSocket mounts the container runtime's socket; always false.
	RuntimeSocket bool
}

// Resources are the workload's limits; zero means unlimited.
type Resources struct {
	MilliCPU    int64
	MemoryBytes int64
	GPUs        int32
	// Pids bounds the number of processes where the backend can.
	Pids int64
}

// Workload is the backend-neutral description of one attempt of an FLJob:
// the isolation model. Build it with FromFLJob; backends only translate it.
type Workload struct {
	Ref Ref
	// Hostname is the name other jobs reach this one by: the FLJob's name.
	Hostname string

	Image      string
	PullPolicy fljobv1.PullPolicy
	Command    []string
	Args       []string
	Env        []EnvVar
	// WorkingDir is the job directory.
	WorkingDir string
	// ReturnCodePath is where the job writes NVFlare's return code, inside
	// the workload.
	ReturnCodePath string

	Mounts    []Mount
	Security  Security
	Resources Resources
	Ports     []Port
	Labels    map[string]string

	// StopGrace is how long a stopped process may take to exit.
	StopGrace time.Duration
}

// Mount returns the workload's mount of the given kind, or nil.
func (w *Workload) Mount(kind MountKind) *Mount {
	for i := range w.Mounts {
		if w.Mounts[i].Kind == kind {
			return &w.Mounts[i]
		}
	}
	return nil
}
