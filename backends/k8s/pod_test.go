package k8s

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/test/builder"
)

func workloadOf(t *testing.T, job *fljobv1.FLJob) *backends.Workload {
	t.Helper()
	w, err := backends.FromFLJob(job, 1)
	if err != nil {
		t.Fatalf("FromFLJob: %v", err)
	}
	return w
}

const ws = "/var/tmp/nvflare/workspace"

// clientPod is the whole Pod expected for builder.FLJob("c1"), written out
// field by field: the reference the other cases change.
func clientPod(job *fljobv1.FLJob) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "c1-1",
			Namespace: "default",
			Labels: map[string]string{
				"app.kubernetes.io/managed-by": "fljob",
				"fljob.dev/namespace":          "default",
				"fljob.dev/name":               "c1",
				"fljob.dev/uid":                "uid-c1",
				"fljob.dev/job-id":             "job-1",
				"fljob.dev/role":               "Client",
				"fljob.dev/site":               "site-1",
				"fljob.dev/attempt":            "1",
				"fljob.dev/spec-hash":          backends.SpecHash(&job.Spec),
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "fljob.dev/v1", Kind: "FLJob", Name: "c1", UID: "uid-c1",
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			Hostname:                      "c1",
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsUser:      ptr.To[int64](1000),
				RunAsGroup:     ptr.To[int64](1000),
				RunAsNonRoot:   ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Volumes: []corev1.Volume{
				{Name: "workspace", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
					Medium: corev1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse("64Mi")),
				}}},
				hostPathVolume("startup", "/srv/fljob/site-1/startup"),
				hostPathVolume("local", "/srv/fljob/site-1/local"),
				hostPathVolume("job", "/srv/fljob/site-1/job-1"),
			},
			Containers: []corev1.Container{{
				Name:            "job",
				Image:           "fljob-probe:dev",
				ImagePullPolicy: corev1.PullNever,
				WorkingDir:      ws + "/job-1",
				Env:             []corev1.EnvVar{{Name: "USER", Value: "fljob"}, {Name: "HOME", Value: ws}},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "workspace", MountPath: ws},
					{Name: "startup", MountPath: ws + "/startup", ReadOnly: true,
						RecursiveReadOnly: ptr.To(corev1.RecursiveReadOnlyIfPossible)},
					{Name: "local", MountPath: ws + "/local", ReadOnly: true,
						RecursiveReadOnly: ptr.To(corev1.RecursiveReadOnlyIfPossible)},
					{Name: "job", MountPath: ws + "/job-1"},
				},
				TerminationMessagePath:   ws + "/job-1/_process_rc.txt",
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				SecurityContext: &corev1.SecurityContext{
					RunAsNonRoot:             ptr.To(true),
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

func hostPathVolume(name, p string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
		Path: p, Type: ptr.To(corev1.HostPathDirectory),
	}}}
}

func TestPodFor(t *testing.T) {
	tests := []struct {
		name string
		job  *fljobv1.FLJob
		// want changes clientPod into the expected Pod.
		want func(p *corev1.Pod)
	}{
		{
			name: "client on host path",
			job:  builder.FLJob("c1").Obj(),
			want: func(*corev1.Pod) {},
		},
		{
			name: "volume source mounts one claim through subPath",
			job:  builder.FLJob("c1").Volume("site-ws").Obj(),
			want: func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{p.Spec.Volumes[0], {Name: "source",
					VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
						ClaimName: "site-ws",
					}}}}
				m := p.Spec.Containers[0].VolumeMounts
				m[1].Name, m[1].SubPath = "source", "startup"
				m[2].Name, m[2].SubPath = "source", "local"
				m[3].Name, m[3].SubPath = "source", "job-1"
			},
		},
		{
			name: "limits, user, mount path and job id",
			job: builder.FLJob("c1").CPU("1500m").Memory("2Gi").GPUs(2).User(4242, 4343).
				MountPath("/ws").JobID("7f1c-uuid").SizeLimit("512Mi").Obj(),
			want: func(p *corev1.Pod) {
				p.Labels["fljob.dev/job-id"] = "7f1c-uuid"
				sc := p.Spec.SecurityContext
				sc.RunAsUser, sc.RunAsGroup = ptr.To[int64](4242), ptr.To[int64](4343)
				p.Spec.Volumes[0].EmptyDir.SizeLimit = ptr.To(resource.MustParse("512Mi"))
				p.Spec.Volumes[3].HostPath.Path = "/srv/fljob/site-1/7f1c-uuid"
				c := &p.Spec.Containers[0]
				c.WorkingDir = "/ws/7f1c-uuid"
				c.Env[1].Value = "/ws"
				c.TerminationMessagePath = "/ws/7f1c-uuid/_process_rc.txt"
				c.VolumeMounts[0].MountPath = "/ws"
				c.VolumeMounts[1].MountPath = "/ws/startup"
				c.VolumeMounts[2].MountPath = "/ws/local"
				c.VolumeMounts[3].MountPath = "/ws/7f1c-uuid"
				c.Resources.Limits = corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("1500m"),
					corev1.ResourceMemory: resource.MustParse("2Gi"),
					"nvidia.com/gpu":      resource.MustParse("2"),
				}
			},
		},
		{
			name: "server with port, command, env from a secret and grace",
			job: builder.FLJob("c1").Server().Command("/probe").Args("run", "--exit", "0").
				Env("A", "1").SecretEnv("TOKEN", "job-secret", "token").Grace(5).Obj(),
			want: func(p *corev1.Pod) {
				p.Labels["fljob.dev/role"], p.Labels["fljob.dev/site"] = "Server", "server"
				p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5)
				c := &p.Spec.Containers[0]
				c.Command = []string{"/probe"}
				c.Args = []string{"run", "--exit", "0"}
				c.Env = []corev1.EnvVar{
					{Name: "A", Value: "1"},
					{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "job-secret"}, Key: "token",
					}}},
					{Name: "USER", Value: "fljob"},
					{Name: "HOME", Value: "/var/tmp/nvflare/workspace"},
				}
				c.Ports = []corev1.ContainerPort{{Name: "fl", ContainerPort: 8002, Protocol: corev1.ProtocolTCP}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := clientPod(tt.job)
			tt.want(want)
			got := PodFor(workloadOf(t, tt.job))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("PodFor (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPodForMountsNothingElse checks, apart from the whole-Pod comparison,
// the isolation statements a reader looks for first.
func TestPodForMountsNothingElse(t *testing.T) {
	for name, job := range map[string]*fljobv1.FLJob{
		"host path": builder.FLJob("c1").Obj(),
		"volume":    builder.FLJob("c1").Volume("site-ws").Obj(),
	} {
		t.Run(name, func(t *testing.T) {
			pod := PodFor(workloadOf(t, job))
			type mount struct {
				Source   string
				ReadOnly bool
			}
			got := map[string]mount{}
			vols := map[string]corev1.Volume{}
			for _, v := range pod.Spec.Volumes {
				vols[v.Name] = v
			}
			for _, m := range pod.Spec.Containers[0].VolumeMounts {
				v := vols[m.Name]
				var src string
				switch {
				case v.EmptyDir != nil:
					src = "emptyDir:" + string(v.EmptyDir.Medium)
				case v.HostPath != nil:
					src = v.HostPath.Path
				case v.PersistentVolumeClaim != nil:
					src = v.PersistentVolumeClaim.ClaimName + ":" + m.SubPath
				}
				got[m.MountPath] = mount{src, m.ReadOnly}
			}
			prefix := "/srv/fljob/site-1/"
			if job.Spec.Workspace.Source.Volume != nil {
				prefix = "site-ws:"
			}
			want := map[string]mount{
				ws:              {"emptyDir:Memory", false},
				ws + "/startup": {prefix + "startup", true},
				ws + "/local":   {prefix + "local", true},
				ws + "/job-1":   {prefix + "job-1", false},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("mounts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServiceFor(t *testing.T) {
	selector := map[string]string{
		"app.kubernetes.io/managed-by": "fljob",
		"fljob.dev/namespace":          "default",
		"fljob.dev/name":               "s1",
		"fljob.dev/uid":                "uid-s1",
	}
	service := func(ports ...corev1.ServicePort) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{
				Name: "s1", Namespace: "default", Labels: selector,
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: "fljob.dev/v1", Kind: "FLJob", Name: "s1", UID: "uid-s1",
					Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
				}},
			},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: selector, Ports: ports},
		}
	}
	withPorts := func(ports ...fljobv1.Port) *fljobv1.FLJob {
		job := builder.FLJob("s1").Server().Obj()
		job.Spec.Ports = ports
		return job
	}
	tests := []struct {
		name string
		job  *fljobv1.FLJob
		want *corev1.Service
	}{
		{"no ports, no service", builder.FLJob("s1").Obj(), nil},
		{"one named port", builder.FLJob("s1").Server().Obj(), service(corev1.ServicePort{
			Name: "fl", Protocol: corev1.ProtocolTCP, Port: 8002, TargetPort: intstr.FromInt32(8002)})},
		{"one unnamed port stays unnamed", withPorts(fljobv1.Port{ContainerPort: 8002}),
			service(corev1.ServicePort{Protocol: corev1.ProtocolTCP, Port: 8002, TargetPort: intstr.FromInt32(8002)})},
		{"several unnamed ports get names", withPorts(
			fljobv1.Port{ContainerPort: 8002}, fljobv1.Port{Name: "admin", ContainerPort: 8003},
			fljobv1.Port{ContainerPort: 9000, Protocol: "UDP"}),
			service(
				corev1.ServicePort{Name: "tcp-8002", Protocol: corev1.ProtocolTCP, Port: 8002,
					TargetPort: intstr.FromInt32(8002)},
				corev1.ServicePort{Name: "admin", Protocol: corev1.ProtocolTCP, Port: 8003,
					TargetPort: intstr.FromInt32(8003)},
				corev1.ServicePort{Name: "udp-9000", Protocol: corev1.ProtocolUDP, Port: 9000,
					TargetPort: intstr.FromInt32(9000)})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ServiceFor(workloadOf(t, tt.job))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ServiceFor (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(w *backends.Workload)
		want   string // the PermanentError's message; "" for none
	}{
		{"model as built", func(*backends.Workload) {}, ""},
		{"no root", func(w *backends.Workload) { w.Mounts = w.Mounts[1:] },
			"the workload has no workspace root"},
		{"other root mode", func(w *backends.Workload) { w.Mounts[0].Mode = 0o777 },
			"the workspace root mode 0777 is not supported on Kubernetes (only 01777)"},
		{"runtime socket", func(w *backends.Workload) { w.Security.RuntimeSocket = true },
			"the kubernetes backend never mounts a container runtime socket"},
		{"two sources", func(w *backends.Workload) { w.Mounts[1].Source.Volume = "v" },
			"mount " + ws + "/startup needs exactly one of a host path or a volume"},
		{"escaping sub-path", func(w *backends.Workload) { w.Mounts[3].SubPath = "a/../../etc" },
			`mount ` + ws + `/job-1 has an unsafe sub-path "a/../../etc"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := workloadOf(t, builder.FLJob("c1").Obj())
			tt.change(w)
			err := Validate(w)
			var got string
			if err != nil {
				p, ok := backends.AsPermanent(err)
				if !ok || p.Reason != fljobv1.ReasonInvalidWorkload {
					t.Fatalf("Validate = %v, want a PermanentError with reason InvalidWorkload", err)
				}
				got = p.Message
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGraceSeconds(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want int64
	}{
		{0, 0}, {-time.Second, 0}, {time.Millisecond, 1}, {time.Second, 1},
		{1500 * time.Millisecond, 2}, {30 * time.Second, 30},
	}
	for _, tt := range tests {
		if got := graceSeconds(tt.in); got != tt.want {
			t.Errorf("graceSeconds(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
