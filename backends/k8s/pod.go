package k8s

import (
	"fmt"
	"maps"
	"math"
	"path"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
)

// ContainerName is the name of the one container of every FLJob Pod.
const ContainerName = "job"

// ResourceGPU is the extended resource a GPU is requested as: the name the
// NVIDIA device plugin advertises.
const ResourceGPU corev1.ResourceName = "nvidia.com/gpu"

// Volume names in the Pod.
const (
	// VolumeRoot is the memory-backed emptyDir of the workspace root.
	VolumeRoot = "workspace"
	// VolumeSource is the PersistentVolumeClaim of a volume workspace
	// source; its directories are mounted through subPath.
	VolumeSource = "source"
)

// PodFor translates the workload of one attempt into its Pod. It decides
// nothing about isolation: every security setting, mount and limit comes
// from the model. Call Validate first; PodFor assumes a valid workload.
//
//   - The workspace root is an emptyDir of medium Memory sized SizeBytes: a
//     tmpfs whose mode is the kernel's default 1777, which is the model's
//     Mode. Its pages count against the memory limit, as on Docker.
//   - A host-path source becomes one hostPath volume of type Directory per
//     directory (startup/, local/, <jobID>/), so a missing directory fails
//     the mount instead of being created by the kubelet as root; a volume
//     source becomes one PersistentVolumeClaim mounted through subPath.
//   - Read-only mounts are recursively read-only where the runtime can.
//   - The termination message file is the job's return code file, so the
//     return code reaches the Pod's status (see ObservationFrom).
func PodFor(w *backends.Workload) *corev1.Pod {
	volumes, mounts := volumesOf(w)
	sec := w.Security
	container := corev1.Container{
		Name:                     ContainerName,
		Image:                    w.Image,
		ImagePullPolicy:          corev1.PullPolicy(w.PullPolicy),
		Command:                  w.Command,
		Args:                     w.Args,
		WorkingDir:               w.WorkingDir,
		Env:                      envOf(w.Env),
		Ports:                    containerPortsOf(w.Ports),
		Resources:                resourcesOf(w.Resources),
		VolumeMounts:             mounts,
		TerminationMessagePath:   w.ReturnCodePath,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(sec.RunAsNonRoot),
			AllowPrivilegeEscalation: ptr.To(!sec.NoNewPrivileges),
			Capabilities:             capabilitiesOf(sec),
		},
	}
	podSec := &corev1.PodSecurityContext{
		RunAsUser:    ptr.To(sec.RunAsUser),
		RunAsGroup:   ptr.To(sec.RunAsGroup),
		RunAsNonRoot: ptr.To(sec.RunAsNonRoot),
	}
	if sec.SeccompRuntimeDefault {
		podSec.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            backends.WorkloadName(w.Ref),
			Namespace:       w.Ref.Namespace,
			Labels:          maps.Clone(w.Labels),
			OwnerReferences: []metav1.OwnerReference{ownerRef(w)},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  ptr.To(sec.ServiceAccountToken),
			EnableServiceLinks:            ptr.To(false),
			Hostname:                      w.Hostname,
			TerminationGracePeriodSeconds: ptr.To(graceSeconds(w.StopGrace)),
			SecurityContext:               podSec,
			Containers:                    []corev1.Container{container},
			Volumes:                       volumes,
		},
	}
}

// ServiceFor returns the ClusterIP Service that makes the FLJob reachable
// by its name, or nil when the workload declares no ports. It selects the
// FLJob's pods by the FLJob's name and uid, not by attempt, so it follows
// retries.
func ServiceFor(w *backends.Workload) *corev1.Service {
	if len(w.Ports) == 0 {
		return nil
	}
	ports := make([]corev1.ServicePort, 0, len(w.Ports))
	for _, p := range w.Ports {
		name := p.Name
		if name == "" && len(w.Ports) > 1 {
			// A Service with several ports must name each one.
			name = fmt.Sprintf("%s-%d", strings.ToLower(p.Protocol), p.Port)
		}
		ports = append(ports, corev1.ServicePort{
			Name:       name,
			Protocol:   corev1.Protocol(p.Protocol),
			Port:       p.Port,
			TargetPort: intstr.FromInt32(p.Port),
		})
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:            w.Hostname,
			Namespace:       w.Ref.Namespace,
			Labels:          serviceSelector(w),
			OwnerReferences: []metav1.OwnerReference{ownerRef(w)},
		},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: serviceSelector(w),
			Ports:    ports,
		},
	}
}

// Validate reports, as a *backends.PermanentError, a workload this backend
// cannot run as the model says.
func Validate(w *backends.Workload) error {
	root := w.Mount(backends.MountRoot)
	switch {
	case root == nil:
		return backends.Permanent(fljobv1.ReasonInvalidWorkload, "the workload has no workspace root")
	case root.Mode != backends.RootMode:
		// A memory-backed emptyDir is always 1777; no other mode is
		// available without the alpha EmptyDirVolumeMode gate.
		return backends.Permanent(fljobv1.ReasonInvalidWorkload,
			"the workspace root mode %#o is not supported on Kubernetes (only %#o)", root.Mode, backends.RootMode)
	case w.Security.RuntimeSocket:
		return backends.Permanent(fljobv1.ReasonInvalidWorkload,
			"the kubernetes backend never mounts a container runtime socket")
	}
	for _, m := range w.Mounts {
		if m.Kind == backends.MountRoot {
			continue
		}
		if (m.Source.HostPath == "") == (m.Source.Volume == "") {
			return backends.Permanent(fljobv1.ReasonInvalidWorkload,
				"mount %s needs exactly one of a host path or a volume", m.Target)
		}
		if m.SubPath == "" || path.IsAbs(m.SubPath) || slices.Contains(strings.Split(m.SubPath, "/"), "..") {
			return backends.Permanent(fljobv1.ReasonInvalidWorkload,
				"mount %s has an unsafe sub-path %q", m.Target, m.SubPath)
		}
	}
	return nil
}

// volumesOf returns the Pod's volumes and the container's mounts.
func volumesOf(w *backends.Workload) ([]corev1.Volume, []corev1.VolumeMount) {
	var (
		volumes []corev1.Volume
		mounts  []corev1.VolumeMount
		claims  = map[string]string{} // claim name -> volume name
	)
	for _, m := range w.Mounts {
		vm := corev1.VolumeMount{MountPath: m.Target}
		if m.ReadOnly {
			vm.ReadOnly = true
			vm.RecursiveReadOnly = ptr.To(corev1.RecursiveReadOnlyIfPossible)
		}
		switch {
		case m.Kind == backends.MountRoot:
			vm.Name = VolumeRoot
			volumes = append(volumes, corev1.Volume{Name: VolumeRoot, VolumeSource: corev1.VolumeSource{
				EmptyDir: &corev1.EmptyDirVolumeSource{
					Medium:    corev1.StorageMediumMemory,
					SizeLimit: resource.NewQuantity(m.SizeBytes, resource.BinarySI),
				},
			}})
		case m.Source.HostPath != "":
			// One volume per directory, type Directory: the kubelet fails
			// the mount when the directory is missing rather than create
			// it owned by root, as it does for a missing subPath.
			vm.Name = strings.ToLower(string(m.Kind))
			volumes = append(volumes, corev1.Volume{Name: vm.Name, VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{
					Path: path.Join(m.Source.HostPath, m.SubPath),
					Type: ptr.To(corev1.HostPathDirectory),
				},
			}})
		default:
			name, ok := claims[m.Source.Volume]
			if !ok {
				name = VolumeSource
				if len(claims) > 0 {
					name = fmt.Sprintf("%s-%d", VolumeSource, len(claims))
				}
				claims[m.Source.Volume] = name
				volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
						ClaimName: m.Source.Volume,
					},
				}})
			}
			vm.Name = name
			vm.SubPath = m.SubPath
		}
		mounts = append(mounts, vm)
	}
	return volumes, mounts
}

func envOf(env []backends.EnvVar) []corev1.EnvVar {
	if len(env) == 0 {
		return nil
	}
	out := make([]corev1.EnvVar, 0, len(env))
	for _, e := range env {
		v := corev1.EnvVar{Name: e.Name, Value: e.Value}
		if e.Secret != nil {
			v = corev1.EnvVar{Name: e.Name, ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: e.Secret.Name},
					Key:                  e.Secret.Key,
				},
			}}
		}
		out = append(out, v)
	}
	return out
}

func containerPortsOf(ports []backends.Port) []corev1.ContainerPort {
	if len(ports) == 0 {
		return nil
	}
	out := make([]corev1.ContainerPort, 0, len(ports))
	for _, p := range ports {
		out = append(out, corev1.ContainerPort{
			Name:          p.Name,
			ContainerPort: p.Port,
			Protocol:      corev1.Protocol(p.Protocol),
		})
	}
	return out
}

// resourcesOf sets limits only; the API server copies them into requests.
// Resources.Pids has no per-pod field: the kubelet's podPidsLimit bounds
// every pod of a node alike.
func resourcesOf(r backends.Resources) corev1.ResourceRequirements {
	limits := corev1.ResourceList{}
	if r.MilliCPU > 0 {
		limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(r.MilliCPU, resource.DecimalSI)
	}
	if r.MemoryBytes > 0 {
		// The memory-backed workspace root is charged against this limit,
		// as the Docker backend's tmpfs is against its own: the model
		// decides whether the limit includes the root, not the backend.
		limits[corev1.ResourceMemory] = *resource.NewQuantity(r.MemoryBytes, resource.BinarySI)
	}
	if r.GPUs > 0 {
		limits[ResourceGPU] = *resource.NewQuantity(int64(r.GPUs), resource.DecimalSI)
	}
	if len(limits) == 0 {
		return corev1.ResourceRequirements{}
	}
	return corev1.ResourceRequirements{Limits: limits}
}

func capabilitiesOf(sec backends.Security) *corev1.Capabilities {
	if !sec.DropAllCapabilities {
		return nil
	}
	return &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
}

// ownerRef makes the FLJob the controller of an object, so that garbage
// collection removes the object with the FLJob.
func ownerRef(w *backends.Workload) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion:         fljobv1.GroupVersion.String(),
		Kind:               fljobv1.Kind,
		Name:               w.Ref.Name,
		UID:                types.UID(w.Ref.UID),
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}
}

// serviceSelector selects every attempt's pod of one FLJob, and no pod of
// an earlier FLJob of the same name.
func serviceSelector(w *backends.Workload) map[string]string {
	l := backends.SelectorLabels(w.Ref.Key)
	l[backends.LabelUID] = w.Ref.UID
	return l
}

// graceSeconds rounds a grace period up to whole seconds.
func graceSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(math.Ceil(d.Seconds()))
}
