// Package builder makes FLJob objects for tests with a fluent API:
//
//	job := builder.FLJob("server").Server().HostPath("/srv/site").Obj()
//
// Every FLJob it makes is valid as made; each method changes one thing.
package builder

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
)

// Builder wraps an FLJob under construction.
type Builder struct{ job fljobv1.FLJob }

// FLJob starts a valid client FLJob named name in namespace "default", with
// a host-path workspace and the CRD's defaults filled in.
func FLJob(name string) *Builder {
	return &Builder{job: fljobv1.FLJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: fljobv1.GroupVersion.String(), Kind: fljobv1.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceDefault, UID: types.UID("uid-" + name)},
		Spec: fljobv1.FLJobSpec{
			JobID:           "job-1",
			Role:            fljobv1.RoleClient,
			Site:            "site-1",
			Image:           "fljob-probe:dev",
			ImagePullPolicy: fljobv1.PullNever,
			Workspace: fljobv1.Workspace{
				MountPath: fljobv1.DefaultMountPath,
				SizeLimit: ptr.To(resource.MustParse("64Mi")),
				Source: fljobv1.WorkspaceSource{
					HostPath: &fljobv1.HostPathSource{Path: "/srv/fljob/site-1"},
				},
			},
			RunAsUser:                     1000,
			RunAsGroup:                    1000,
			BackoffLimit:                  ptr.To[int32](0),
			PendingDeadlineSeconds:        ptr.To[int64](120),
			TerminationGracePeriodSeconds: ptr.To[int64](30),
		},
	}}
}

// Namespace sets the namespace.
func (b *Builder) Namespace(ns string) *Builder { b.job.Namespace = ns; return b }

// UID sets the uid.
func (b *Builder) UID(uid string) *Builder { b.job.UID = types.UID(uid); return b }

// Generation sets metadata.generation.
func (b *Builder) Generation(g int64) *Builder { b.job.Generation = g; return b }

// JobID sets spec.jobID.
func (b *Builder) JobID(id string) *Builder { b.job.Spec.JobID = id; return b }

// Site sets spec.site.
func (b *Builder) Site(site string) *Builder { b.job.Spec.Site = site; return b }

// Server makes it a server job listening on port 8002.
func (b *Builder) Server() *Builder {
	b.job.Spec.Role = fljobv1.RoleServer
	b.job.Spec.Site = "server"
	b.job.Spec.Ports = []fljobv1.Port{{Name: "fl", ContainerPort: 8002, Protocol: "TCP"}}
	return b
}

// Image sets spec.image.
func (b *Builder) Image(image string) *Builder { b.job.Spec.Image = image; return b }

// Args sets spec.args.
func (b *Builder) Args(args ...string) *Builder { b.job.Spec.Args = args; return b }

// Command sets spec.command.
func (b *Builder) Command(cmd ...string) *Builder { b.job.Spec.Command = cmd; return b }

// Env adds a plain environment variable.
func (b *Builder) Env(name, value string) *Builder {
	b.job.Spec.Env = append(b.job.Spec.Env, fljobv1.EnvVar{Name: name, Value: value})
	return b
}

// SecretEnv adds an environment variable taken from a Secret's key.
func (b *Builder) SecretEnv(name, secret, key string) *Builder {
	b.job.Spec.Env = append(b.job.Spec.Env, fljobv1.EnvVar{Name: name, ValueFrom: &fljobv1.EnvVarSource{
		SecretKeyRef: fljobv1.SecretKeySelector{Name: secret, Key: key},
	}})
	return b
}

// HostPath makes the workspace source a host path.
func (b *Builder) HostPath(p string) *Builder {
	b.job.Spec.Workspace.Source = fljobv1.WorkspaceSource{HostPath: &fljobv1.HostPathSource{Path: p}}
	return b
}

// Volume makes the workspace source a named volume.
func (b *Builder) Volume(name string) *Builder {
	b.job.Spec.Workspace.Source = fljobv1.WorkspaceSource{Volume: &fljobv1.VolumeSource{Name: name}}
	return b
}

// MountPath sets spec.workspace.mountPath.
func (b *Builder) MountPath(p string) *Builder { b.job.Spec.Workspace.MountPath = p; return b }

// SizeLimit sets spec.workspace.sizeLimit.
func (b *Builder) SizeLimit(q string) *Builder {
	b.job.Spec.Workspace.SizeLimit = ptr.To(resource.MustParse(q))
	return b
}

// User sets the uid and gid.
func (b *Builder) User(uid, gid int64) *Builder {
	b.job.Spec.RunAsUser, b.job.Spec.RunAsGroup = uid, gid
	return b
}

// CPU sets the cpu limit.
func (b *Builder) CPU(q string) *Builder {
	b.job.Spec.Resources.CPU = ptr.To(resource.MustParse(q))
	return b
}

// Memory sets the memory limit.
func (b *Builder) Memory(q string) *Builder {
	b.job.Spec.Resources.Memory = ptr.To(resource.MustParse(q))
	return b
}

// GPUs sets the GPU count.
func (b *Builder) GPUs(n int32) *Builder { b.job.Spec.Resources.GPUs = n; return b }

// BackoffLimit sets spec.backoffLimit.
func (b *Builder) BackoffLimit(n int32) *Builder { b.job.Spec.BackoffLimit = ptr.To(n); return b }

// ActiveDeadline sets spec.activeDeadlineSeconds.
func (b *Builder) ActiveDeadline(s int64) *Builder {
	b.job.Spec.ActiveDeadlineSeconds = ptr.To(s)
	return b
}

// PendingDeadline sets spec.pendingDeadlineSeconds.
func (b *Builder) PendingDeadline(s int64) *Builder {
	b.job.Spec.PendingDeadlineSeconds = ptr.To(s)
	return b
}

// TTL sets spec.ttlSecondsAfterFinished.
func (b *Builder) TTL(s int32) *Builder { b.job.Spec.TTLSecondsAfterFinished = ptr.To(s); return b }

// Grace sets spec.terminationGracePeriodSeconds.
func (b *Builder) Grace(s int64) *Builder {
	b.job.Spec.TerminationGracePeriodSeconds = ptr.To(s)
	return b
}

// Status sets the whole status.
func (b *Builder) Status(st fljobv1.FLJobStatus) *Builder { b.job.Status = st; return b }

// Obj returns the FLJob.
func (b *Builder) Obj() *fljobv1.FLJob { return b.job.DeepCopy() }
