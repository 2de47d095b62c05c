package v1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Role says which NVFlare process an FLJob runs.
// +kubebuilder:validation:Enum=Server;Client
type Role string

const (
	// RoleServer is a server job (SJ): it serves the clients of one FL job.
	RoleServer Role = "Server"
	// RoleClient is a client job (CJ): one site's part of one FL job.
	RoleClient Role = "Client"
)

// PullPolicy says when the backend may fetch the image from a registry.
// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
type PullPolicy string

const (
	// PullAlways fetches the image before every attempt.
	PullAlways PullPolicy = "Always"
	// PullIfNotPresent fetches the image only when it is absent.
	PullIfNotPresent PullPolicy = "IfNotPresent"
	// PullNever never fetches: an absent image fails the attempt.
	PullNever PullPolicy = "Never"
)

// DefaultMountPath is where the workspace root appears inside the job, the
// path NVFlare's launchers use.
const DefaultMountPath = "/var/tmp/nvflare/workspace"

// FLJobSpec describes one job process of one NVFlare site.
// +kubebuilder:validation:XValidation:rule="self.role == 'Client' || (has(self.ports) && size(self.ports) > 0)",message="a Server job must declare at least one port: clients reach it by the FLJob's name",fieldPath=".ports"
type FLJobSpec struct {
	// jobID is the FL job's id. It names the job's directory in the
	// workspace, so it must be one safe path segment: letters, digits, '.',
	// '_' and '-', not starting with '.', at most 128 characters, and
	// neither "startup" nor "local". Immutable.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_][A-Za-z0-9._-]*$')",message="must be one path segment: letters, digits, '.', '_' or '-', not starting with '.' and without '/'"
	// +kubebuilder:validation:XValidation:rule="self != 'startup' && self != 'local'",message="must not be startup or local: those directories hold the site's kit"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="jobID is immutable"
	JobID string `json:"jobID"`

	// role is the NVFlare process this FLJob runs: Server or Client.
	// Immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="role is immutable"
	Role Role `json:"role"`

	// site is the NVFlare site that owns this job process, for example
	// "server" or "site-1". Immutable.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$')",message="must be letters, digits, '.', '_' or '-', starting and ending with a letter or digit"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="site is immutable"
	Site string `json:"site"`

	// image is the container image that runs the job process. It is never
	// pulled unless imagePullPolicy allows it and a registry is reachable.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image"`

	// imagePullPolicy is Always, IfNotPresent or Never. Defaults to
	// IfNotPresent.
	// +optional
	// +kubebuilder:default=IfNotPresent
	ImagePullPolicy PullPolicy `json:"imagePullPolicy,omitempty"`

	// command is the entrypoint of the job process. The image's entrypoint
	// is used when empty.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=4096
	Command []string `json:"command,omitempty"`

	// args are the arguments to the entrypoint.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=4096
	Args []string `json:"args,omitempty"`

	// env are environment variables for the job process, either plain
	// values or references to a key of a Secret. Credentials belong in
	// Secrets, never in args.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=128
	Env []EnvVar `json:"env,omitempty"`

	// ports are the ports the job process listens on. A Server job needs at
	// least one: clients reach it at <FLJob name>:<port> on both backends.
	// +optional
	// +listType=map
	// +listMapKey=containerPort
	// +kubebuilder:validation:MaxItems=16
	Ports []Port `json:"ports,omitempty"`

	// workspace is where the site's startup kit, local configuration and
	// job directories come from, and how the job sees them.
	// +required
	Workspace Workspace `json:"workspace"`

	// resources are the compute limits of the job process.
	// +optional
	Resources Resources `json:"resources,omitempty"`

	// runAsUser is the uid the job process runs as. Root (0) is rejected.
	// Defaults to 1000.
	// +optional
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Maximum=2147483647
	// +kubebuilder:validation:XValidation:rule="self >= 1",message="must be a non-root uid (1 or more)"
	RunAsUser int64 `json:"runAsUser,omitempty"`

	// runAsGroup is the primary gid of the job process. The root group (0)
	// is rejected. Defaults to 1000.
	// +optional
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Maximum=2147483647
	// +kubebuilder:validation:XValidation:rule="self >= 1",message="must be a non-root gid (1 or more)"
	RunAsGroup int64 `json:"runAsGroup,omitempty"`

	// backoffLimit is how many times a failed attempt is retried, each
	// retry a new attempt after an exponential backoff (10s doubling, at
	// most 10m). Defaults to 0: FL jobs are usually not safe to re-run.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`

	// activeDeadlineSeconds bounds the whole FLJob, counted from its
	// startTime. When it passes, the running attempt is stopped and the
	// FLJob fails with reason DeadlineExceeded.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=31536000
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// pendingDeadlineSeconds is how long an attempt may stay unstarted
	// (missing image, unschedulable, mount error) before the FLJob fails
	// with reason PendingDeadlineExceeded. Defaults to 120.
	// +optional
	// +kubebuilder:default=120
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	PendingDeadlineSeconds *int64 `json:"pendingDeadlineSeconds,omitempty"`

	// ttlSecondsAfterFinished deletes the FLJob, and with it its workload,
	// this many seconds after it finished. 0 deletes at once; unset never.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=31536000
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`

	// terminationGracePeriodSeconds is how long a stopped job process may
	// take to exit after SIGTERM before it is killed. Defaults to 30.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`
}

// EnvVar is one environment variable of the job process.
// +kubebuilder:validation:XValidation:rule="!(has(self.value) && has(self.valueFrom))",message="value and valueFrom are mutually exclusive"
type EnvVar struct {
	// name is the variable's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z_][A-Za-z0-9_]*$')",message="must be a C identifier: letters, digits and '_', not starting with a digit"
	Name string `json:"name"`

	// value is the variable's plain value.
	// +optional
	// +kubebuilder:validation:MaxLength=32768
	Value string `json:"value,omitempty"`

	// valueFrom takes the value from a Secret.
	// +optional
	ValueFrom *EnvVarSource `json:"valueFrom,omitempty"`
}

// EnvVarSource is where an environment variable's value comes from.
type EnvVarSource struct {
	// secretKeyRef selects one key of a Secret in the FLJob's namespace.
	// +required
	SecretKeyRef SecretKeySelector `json:"secretKeyRef"`
}

// SecretKeySelector selects one key of a Secret.
type SecretKeySelector struct {
	// name is the Secret's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key is the key within the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// Protocol is a port's transport protocol.
// +kubebuilder:validation:Enum=TCP;UDP
type Protocol string

// Port is one port the job process listens on.
type Port struct {
	// name is an optional name of the port.
	// +optional
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="must be lowercase letters, digits and '-'"
	Name string `json:"name,omitempty"`

	// containerPort is the port number, 1 to 65535.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	ContainerPort int32 `json:"containerPort"`

	// protocol is TCP or UDP. Defaults to TCP.
	// +optional
	// +kubebuilder:default=TCP
	Protocol Protocol `json:"protocol,omitempty"`
}

// Workspace describes the job's view of the NVFlare workspace.
//
// The job sees an ephemeral, sticky, world-writable root at mountPath that
// holds three entries of the source: startup/ and local/ read-only, and
// the job's own directory <jobID>/ read-write and persistent. Nothing else
// of the source is visible.
type Workspace struct {
	// mountPath is the absolute path of the workspace root inside the job.
	// Defaults to /var/tmp/nvflare/workspace.
	// +optional
	// +kubebuilder:default="/var/tmp/nvflare/workspace"
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/') && self != '/'",message="must be an absolute path other than /"
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(s, s == '..' || s == '.')",message="must not contain '.' or '..' segments"
	MountPath string `json:"mountPath,omitempty"`

	// sizeLimit bounds the ephemeral workspace root (the storage the job
	// writes outside its own directory). Defaults to 1Gi; at most 1Ti.
	// +optional
	// +kubebuilder:default="1Gi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0')) && quantity(string(self)).compareTo(quantity('1Ti')) <= 0",message="must be more than 0 and at most 1Ti"
	SizeLimit *resource.Quantity `json:"sizeLimit,omitempty"`

	// source holds the site's startup/, local/ and job directories: exactly
	// one of hostPath or volume.
	// +required
	Source WorkspaceSource `json:"source"`
}

// WorkspaceSource is where the site's workspace lives: exactly one of a
// host path or a named volume.
// +kubebuilder:validation:XValidation:rule="has(self.hostPath) != has(self.volume)",message="exactly one of hostPath or volume must be set"
type WorkspaceSource struct {
	// hostPath is a directory on the node (Kubernetes) or the Docker host.
	// +optional
	HostPath *HostPathSource `json:"hostPath,omitempty"`

	// volume is a named volume: a PersistentVolumeClaim of that name on
	// Kubernetes, a Docker volume of that name on Docker.
	// +optional
	Volume *VolumeSource `json:"volume,omitempty"`
}

// HostPathSource is a workspace directory on the host.
type HostPathSource struct {
	// path is the absolute path of the site's workspace directory on the
	// host.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/') && self != '/'",message="must be an absolute path other than /"
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(s, s == '..')",message="must not contain '..' segments"
	Path string `json:"path"`
}

// VolumeSource is a workspace held in a named volume.
type VolumeSource struct {
	// name is the PersistentVolumeClaim's name on Kubernetes and the Docker
	// volume's name on Docker.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",message="must be lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
	Name string `json:"name"`
}

// Resources are the compute limits of the job process.
type Resources struct {
	// cpu is the CPU limit in cores, for example "2" or "500m"; at most
	// 1024.
	// +optional
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0')) && quantity(string(self)).compareTo(quantity('1024')) <= 0",message="must be more than 0 and at most 1024 cores"
	CPU *resource.Quantity `json:"cpu,omitempty"`

	// memory is the memory limit, for example "4Gi"; at least 4Mi and at
	// most 16Ti.
	// +optional
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('4Mi')) >= 0 && quantity(string(self)).compareTo(quantity('16Ti')) <= 0",message="must be at least 4Mi and at most 16Ti"
	Memory *resource.Quantity `json:"memory,omitempty"`

	// gpus is the number of whole GPUs the job gets for itself, 0 to 16.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=16
	GPUs int32 `json:"gpus,omitempty"`
}

// Phase is the point of its lifecycle an FLJob is at.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type Phase string

const (
	// PhasePending means no attempt is running yet: it is being created,
	// waits for its image, node or mounts, or waits out a retry backoff.
	PhasePending Phase = "Pending"
	// PhaseRunning means an attempt's job process is running.
	PhaseRunning Phase = "Running"
	// PhaseSucceeded means the job process exited with code 0. Terminal.
	PhaseSucceeded Phase = "Succeeded"
	// PhaseFailed means the FLJob failed and will not be retried. Terminal.
	PhaseFailed Phase = "Failed"
)

// Condition types of an FLJob.
const (
	// ConditionRunning is True while an attempt's job process runs.
	ConditionRunning = "Running"
	// ConditionComplete is True once the FLJob succeeded.
	ConditionComplete = "Complete"
	// ConditionFailed is True once the FLJob failed for good.
	ConditionFailed = "Failed"
)

// Condition reasons of an FLJob, also used as status.reason and as event
// reasons.
const (
	// ReasonCreating means the workload of an attempt is being created.
	ReasonCreating = "Creating"
	// ReasonWaiting means the attempt's workload exists but has not started.
	ReasonWaiting = "Waiting"
	// ReasonStarted means the attempt's job process runs.
	ReasonStarted = "Started"
	// ReasonBackoff means a failed attempt waits out its retry backoff.
	ReasonBackoff = "Backoff"
	// ReasonSucceeded means the job process exited with code 0.
	ReasonSucceeded = "Succeeded"
	// ReasonExited means an attempt's job process exited with a non-zero
	// code.
	ReasonExited = "Exited"
	// ReasonBackoffLimitExceeded means more attempts failed than
	// backoffLimit allows.
	ReasonBackoffLimitExceeded = "BackoffLimitExceeded"
	// ReasonDeadlineExceeded means activeDeadlineSeconds passed.
	ReasonDeadlineExceeded = "DeadlineExceeded"
	// ReasonPendingDeadlineExceeded means an attempt stayed unstarted
	// longer than pendingDeadlineSeconds.
	ReasonPendingDeadlineExceeded = "PendingDeadlineExceeded"
	// ReasonWorkloadLost means the workload of a running attempt vanished
	// without reporting an exit code.
	ReasonWorkloadLost = "WorkloadLost"
	// ReasonInvalidWorkload means the backend cannot run the FLJob as
	// specified (for example its job directory cannot be prepared); retrying
	// cannot help.
	ReasonInvalidWorkload = "InvalidWorkload"
)

// NVFlare job return codes, as written by a job into its _process_rc.txt.
const (
	ReturnCodeSuccess        int32 = 0
	ReturnCodeExecutionError int32 = 1
	ReturnCodeAborted        int32 = 9
	ReturnCodeException      int32 = 101
	ReturnCodeUnsafe         int32 = 102
	ReturnCodeConfigError    int32 = 103
	ReturnCodeInfraError     int32 = 104
)

// WorkloadRef names the backend object that runs an FLJob's latest attempt.
type WorkloadRef struct {
	// backend is the backend that runs the workload: kubernetes or docker.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Backend string `json:"backend,omitempty"`
	// name is the workload's name: a Pod's or a container's.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`
	// id is the workload's unique id: a Pod's uid or a container's id.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ID string `json:"id,omitempty"`
	// attempt is the attempt the workload runs, counted from 1.
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
}

// FLJobStatus is what the controller observed of an FLJob.
type FLJobStatus struct {
	// phase is Pending, Running, Succeeded or Failed.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// conditions are the FLJob's Running, Complete and Failed conditions.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// startTime is when the first attempt's workload was created.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the FLJob reached Succeeded or Failed, or
	// when its latest attempt failed while a retry waits.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// attempts is how many attempts were started, counted from 1.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// failed is how many attempts failed.
	// +optional
	Failed int32 `json:"failed,omitempty"`

	// exitCode is the exit code of the latest finished attempt's process.
	// +optional
	ExitCode *int32 `json:"exitCode,omitempty"`

	// returnCode is NVFlare's return code of the latest finished attempt,
	// from the job's _process_rc.txt where it wrote one (0 success,
	// 1 execution error, 9 aborted, 101 exception, 102 unsafe component,
	// 103 configuration error, 104 infrastructure error).
	// +optional
	ReturnCode *int32 `json:"returnCode,omitempty"`

	// reason is a CamelCase word for why the FLJob is in its phase.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Reason string `json:"reason,omitempty"`

	// message says in words why the FLJob is in its phase.
	// +optional
	// +kubebuilder:validation:MaxLength=32768
	Message string `json:"message,omitempty"`

	// workload names the backend object of the latest attempt.
	// +optional
	Workload *WorkloadRef `json:"workload,omitempty"`
}

// FLJob is one job process (a server job or a client job) of one NVIDIA
// FLARE site, run as a Pod on Kubernetes or a container on Docker under
// one isolation model.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=flj,categories=all
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.spec.role`
// +kubebuilder:printcolumn:name="Site",type=string,JSONPath=`.spec.site`
// +kubebuilder:printcolumn:name="Job ID",type=string,JSONPath=`.spec.jobID`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Attempts",type=integer,JSONPath=`.status.attempts`,priority=1
// +kubebuilder:printcolumn:name="RC",type=integer,JSONPath=`.status.returnCode`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 52 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label of at most 52 characters starting with a letter: it names the job's Service or network alias and its workloads"
type FLJob struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the job process.
	// +required
	Spec FLJobSpec `json:"spec"`

	// status is what the controller observed.
	// +optional
	Status FLJobStatus `json:"status,omitempty"`
}

// FLJobList is a list of FLJobs.
//
// +kubebuilder:object:root=true
type FLJobList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the FLJobs.
	Items []FLJob `json:"items"`
}
