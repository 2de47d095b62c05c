package backends

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"time"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
)

// RootMode is the mode of the ephemeral workspace root: world-writable and
// sticky, like /tmp, so the job's non-root user can create its storage
// directories (snapshot-storage/, jobs-storage/) there but cannot remove
// what it does not own.
const RootMode uint32 = 0o1777

// Defaults for fields an FLJob may leave unset; the CRD applies the same.
const (
	DefaultSizeLimitBytes = 1 << 30
	DefaultStopGrace      = 30 * time.Second
	// DefaultPids bounds the job's processes on backends that can.
	DefaultPids = 4096
)

// Read-only directories of the workspace, beside the job's own directory.
const (
	StartupDir = "startup"
	LocalDir   = "local"
)

var safeSegment = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)

// FromFLJob builds the isolation model of one attempt of an FLJob. It is
// the one place where isolation is decided; backends only translate it.
func FromFLJob(job *fljobv1.FLJob, attempt int32) (*Workload, error) {
	spec := &job.Spec
	if err := checkSpec(spec); err != nil {
		return nil, err
	}
	root := spec.Workspace.MountPath
	if root == "" {
		root = fljobv1.DefaultMountPath
	}
	jobDir := path.Join(root, spec.JobID)

	w := &Workload{
		Ref: Ref{Key: Key{Namespace: job.Namespace, Name: job.Name}, UID: string(job.UID),
			Attempt: attempt},
		Hostname:       job.Name,
		Image:          spec.Image,
		PullPolicy:     spec.ImagePullPolicy,
		Command:        spec.Command,
		Args:           spec.Args,
		Env:            withIdentityEnv(envOf(spec.Env), root),
		WorkingDir:     jobDir,
		ReturnCodePath: path.Join(jobDir, ReturnCodeFile),
		Mounts:         mountsOf(&spec.Workspace, root, spec.JobID),
		Security: Security{
			RunAsUser:             spec.RunAsUser,
			RunAsGroup:            spec.RunAsGroup,
			RunAsNonRoot:          true,
			DropAllCapabilities:   true,
			NoNewPrivileges:       true,
			SeccompRuntimeDefault: true,
		},
		Resources: resourcesOf(&spec.Resources),
		Ports:     portsOf(spec.Ports),
		StopGrace: DefaultStopGrace,
	}
	if w.PullPolicy == "" {
		w.PullPolicy = fljobv1.PullIfNotPresent
	}
	if g := spec.TerminationGracePeriodSeconds; g != nil {
		w.StopGrace = time.Duration(*g) * time.Second
	}
	w.Labels = labelsOf(job, attempt)
	return w, nil
}

// checkSpec repeats the few CRD rules the model's safety rests on, so that
// an FLJob that bypassed validation can never escape its directory or run
// as root.
func checkSpec(spec *fljobv1.FLJobSpec) error {
	switch {
	case !safeSegment.MatchString(spec.JobID) || len(spec.JobID) > 128 ||
		spec.JobID == StartupDir || spec.JobID == LocalDir:
		return fmt.Errorf("spec.jobID: %q is not one safe path segment", spec.JobID)
	case spec.RunAsUser < 1:
		return fmt.Errorf("spec.runAsUser: %d is not a non-root uid", spec.RunAsUser)
	case spec.RunAsGroup < 1:
		return fmt.Errorf("spec.runAsGroup: %d is not a non-root gid", spec.RunAsGroup)
	case spec.Image == "":
		return fmt.Errorf("spec.image: must be set")
	}
	src := spec.Workspace.Source
	if (src.HostPath == nil) == (src.Volume == nil) {
		return fmt.Errorf("spec.workspace.source: exactly one of hostPath or volume must be set")
	}
	if src.HostPath != nil && !path.IsAbs(src.HostPath.Path) {
		return fmt.Errorf("spec.workspace.source.hostPath.path: %q is not absolute", src.HostPath.Path)
	}
	if mp := spec.Workspace.MountPath; mp != "" && (!path.IsAbs(mp) || path.Clean(mp) != mp) {
		return fmt.Errorf("spec.workspace.mountPath: %q is not a clean absolute path", mp)
	}
	return nil
}

// mountsOf lays out the workspace: an ephemeral sticky root, startup/ and
// local/ read-only, and the job's own directory read-write. No other part
// of the source, and so no other job's directory, is mounted.
func mountsOf(ws *fljobv1.Workspace, root, jobID string) []Mount {
	var src Source
	if hp := ws.Source.HostPath; hp != nil {
		src.HostPath = path.Clean(hp.Path)
	} else {
		src.Volume = ws.Source.Volume.Name
	}
	size := int64(DefaultSizeLimitBytes)
	if ws.SizeLimit != nil {
		size = ws.SizeLimit.Value()
	}
	return []Mount{
		{Kind: MountRoot, Target: root, Mode: RootMode, SizeBytes: size},
		{Kind: MountStartup, Target: path.Join(root, StartupDir), Source: src,
			SubPath: StartupDir, ReadOnly: true},
		{Kind: MountLocal, Target: path.Join(root, LocalDir), Source: src,
			SubPath: LocalDir, ReadOnly: true},
		{Kind: MountJob, Target: path.Join(root, jobID), Source: src, SubPath: jobID},
	}
}

func envOf(env []fljobv1.EnvVar) []EnvVar {
	out := make([]EnvVar, 0, len(env))
	for _, e := range env {
		v := EnvVar{Name: e.Name, Value: e.Value}
		if e.ValueFrom != nil {
			ref := e.ValueFrom.SecretKeyRef
			v = EnvVar{Name: e.Name, Secret: &SecretKey{Name: ref.Name, Key: ref.Key}}
		}
		out = append(out, v)
	}
	return out
}

// DefaultUserName is the USER every job gets unless its FLJob sets one.
const DefaultUserName = "fljob"

// withIdentityEnv adds USER and HOME unless the FLJob sets them: a job's
// uid usually has no passwd entry, and programs that look the user up
// (Python's getpass) crash without USER. HOME is the workspace root, which
// exists and is writable on every backend and keeps dot-files out of the
// persistent job directory.
func withIdentityEnv(env []EnvVar, root string) []EnvVar {
	set := map[string]bool{}
	for _, e := range env {
		set[e.Name] = true
	}
	if !set["USER"] {
		env = append(env, EnvVar{Name: "USER", Value: DefaultUserName})
	}
	if !set["HOME"] {
		env = append(env, EnvVar{Name: "HOME", Value: root})
	}
	return env
}

func resourcesOf(r *fljobv1.Resources) Resources {
	out := Resources{GPUs: r.GPUs, Pids: DefaultPids}
	if r.CPU != nil {
		out.MilliCPU = r.CPU.MilliValue()
	}
	if r.Memory != nil {
		out.MemoryBytes = r.Memory.Value()
	}
	return out
}

func portsOf(ports []fljobv1.Port) []Port {
	out := make([]Port, 0, len(ports))
	for _, p := range ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = "TCP"
		}
		out = append(out, Port{Name: p.Name, Port: p.ContainerPort, Protocol: proto})
	}
	return out
}

// labelsOf returns the labels that identify an attempt's workload. All
// values are valid Kubernetes label values.
func labelsOf(job *fljobv1.FLJob, attempt int32) map[string]string {
	l := SelectorLabels(Key{Namespace: job.Namespace, Name: job.Name})
	l[LabelUID] = string(job.UID)
	l[LabelJobID] = labelValue(job.Spec.JobID)
	l[LabelRole] = string(job.Spec.Role)
	l[LabelSite] = job.Spec.Site
	l[LabelAttempt] = strconv.Itoa(int(attempt))
	l[LabelSpecHash] = SpecHash(&job.Spec)
	return l
}

// SelectorLabels returns the labels that select every workload of an FLJob.
func SelectorLabels(key Key) map[string]string {
	return map[string]string{
		LabelManagedBy: ManagedBy,
		LabelNamespace: key.Namespace,
		LabelName:      key.Name,
	}
}

// SpecHash returns a short hash of an FLJob's spec, to tell which spec an
// existing workload was made from.
func SpecHash(spec *fljobv1.FLJobSpec) string {
	b, err := json.Marshal(spec)
	if err != nil {
		// A spec of plain fields always marshals; keep the label stable.
		return "unknown"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:5])
}

// labelValue trims a value to the 63 characters a label value may hold
// and keeps it ending in an alphanumeric character.
func labelValue(s string) string {
	if len(s) > 63 {
		s = s[:63]
	}
	for len(s) > 0 && !isAlnum(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// WorkloadName is the deterministic name of an attempt's workload, unique
// per FLJob and attempt: creating it twice can never yield two workloads.
func WorkloadName(ref Ref) string {
	return fmt.Sprintf("%s-%d", ref.Name, ref.Attempt)
}
