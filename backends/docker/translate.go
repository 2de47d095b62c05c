package docker

import (
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
)

// ContainerName is the deterministic name of an attempt's container. The
// '.' cannot occur in a namespace or FLJob name and the attempt has no
// '-', so distinct attempts never share a name.
func ContainerName(ref backends.Ref) string {
	return "fljob-" + ref.Namespace + "." + backends.WorkloadName(ref)
}

// rootVolumeName is the name of the volume that holds an attempt's
// workspace root.
func rootVolumeName(ref backends.Ref) string { return ContainerName(ref) + "-root" }

// keyFilters select every container or volume of an FLJob.
func keyFilters(key backends.Key) client.Filters {
	f := make(client.Filters)
	for k, v := range backends.SelectorLabels(key) {
		f.Add("label", k+"="+v)
	}
	return f
}

// refFilters select the containers of one attempt.
func refFilters(ref backends.Ref) client.Filters {
	f := keyFilters(ref.Key).Add("label", backends.LabelAttempt+"="+attemptLabel(ref.Attempt))
	if ref.UID != "" {
		f = f.Add("label", backends.LabelUID+"="+ref.UID)
	}
	return f
}

func attemptLabel(a int32) string { return strconv.Itoa(int(a)) }

// source is where the persistent mounts of one workspace source come from
// on this engine: a named volume mounted by subpath, or else binds of
// directories on the host.
type source struct {
	// dir is the directory on the host holding startup/, local/ and the
	// job directories, when the backend can reach it. The backend prepares
	// the job directory there, and binds from it when volume is empty.
	dir string
	// volume is the named volume mounted by subpath, if any.
	volume string
}

// plan is what Start resolved for a workload before translating it.
type plan struct {
	name       string
	rootVolume string
	network    string
	features   Features
	sources    map[backends.Source]source
	// submounts are the file systems mounted below each read-only bind's
	// host directory, relative to it, on engines without recursive
	// read-only binds (see readOnlySubmounts).
	submounts map[string][]string
	// env holds NAME=VALUE with Secrets resolved.
	env       []string
	gpus      []string
	gpuDriver string
}

// validate rejects a workload the backend cannot run as the model states.
func validate(w *backends.Workload) error {
	sec := w.Security
	switch {
	case sec.RunAsUser < 1 || sec.RunAsGroup < 1:
		return invalid("the process must run as a non-root uid and gid, not %d:%d",
			sec.RunAsUser, sec.RunAsGroup)
	case sec.RuntimeSocket:
		return invalid("the docker backend never mounts the engine's socket")
	case sec.ServiceAccountToken:
		return invalid("the docker backend has no Kubernetes service account token to mount")
	case w.Hostname == "":
		return invalid("the workload has no hostname to be reached by")
	case w.Image == "":
		return invalid("the workload has no image")
	case w.Mount(backends.MountRoot) == nil:
		return invalid("the workload has no workspace root")
	}
	for _, m := range w.Mounts {
		if m.Kind == backends.MountRoot {
			continue
		}
		if (m.Source.HostPath == "") == (m.Source.Volume == "") {
			return invalid("mount %s needs exactly one of a host path or a volume", m.Target)
		}
		if !filepath.IsLocal(m.SubPath) || strings.Contains(m.SubPath, "/") {
			return invalid("mount %s: subpath %q is not one path segment", m.Target, m.SubPath)
		}
	}
	return nil
}

// invalid returns the PermanentError of a workload that cannot run.
func invalid(format string, args ...any) error {
	return backends.Permanent(fljobv1.ReasonInvalidWorkload, format, args...)
}

// createOptions translates the workload into the container to create.
func createOptions(w *backends.Workload, p *plan) (client.ContainerCreateOptions, error) {
	mounts, err := containerMounts(w, p)
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	stop := int(math.Ceil(w.StopGrace.Seconds()))
	cfg := &container.Config{
		Hostname:     w.Hostname,
		User:         fmt.Sprintf("%d:%d", w.Security.RunAsUser, w.Security.RunAsGroup),
		Env:          p.env,
		Image:        w.Image,
		WorkingDir:   w.WorkingDir,
		Labels:       containerLabels(w, p.gpus),
		ExposedPorts: exposedPorts(w.Ports),
		StopTimeout:  &stop,
	}
	if len(w.Command) > 0 {
		cfg.Entrypoint = w.Command
	}
	if len(w.Args) > 0 {
		cfg.Cmd = w.Args
	}
	host := &container.HostConfig{
		NetworkMode:   container.NetworkMode(p.network),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Mounts:        mounts,
		Resources:     resources(&w.Resources, p.gpus, p.gpuDriver),
	}
	if w.Security.DropAllCapabilities {
		host.CapDrop = []string{"ALL"}
	}
	if w.Security.NoNewPrivileges {
		host.SecurityOpt = []string{"no-new-privileges:true"}
	}
	// The engine's default seccomp profile applies because none is named;
	// the backend never asks for seccomp=unconfined.
	netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		p.network: {Aliases: []string{w.Hostname}},
	}}
	return client.ContainerCreateOptions{
		Name: p.name, Config: cfg, HostConfig: host, NetworkingConfig: netCfg,
	}, nil
}

// containerLabels are the model's labels plus what the backend records.
func containerLabels(w *backends.Workload, gpus []string) map[string]string {
	l := maps.Clone(w.Labels)
	if l == nil {
		l = make(map[string]string)
	}
	l[LabelReturnCodePath] = w.ReturnCodePath
	if len(gpus) > 0 {
		l[LabelGPUs] = formatGPUs(gpus)
	}
	return l
}

// containerMounts translates the workspace: the root from its volume,
// every other mount as a bind of a host directory or a volume subpath.
func containerMounts(w *backends.Workload, p *plan) ([]mount.Mount, error) {
	out := make([]mount.Mount, 0, len(w.Mounts))
	for _, m := range w.Mounts {
		if m.Kind == backends.MountRoot {
			out = append(out, mount.Mount{
				Type: mount.TypeVolume, Source: p.rootVolume, Target: m.Target,
				// The root starts empty: nothing of the image is copied in.
				VolumeOptions: &mount.VolumeOptions{NoCopy: true},
			})
			continue
		}
		src, ok := p.sources[m.Source]
		if !ok {
			return nil, fmt.Errorf("mount %s: source %+v was not resolved", m.Target, m.Source)
		}
		if src.volume == "" {
			bm := mount.Mount{
				Type: mount.TypeBind, Source: filepath.Join(src.dir, m.SubPath),
				Target: m.Target, ReadOnly: m.ReadOnly,
			}
			if m.ReadOnly && p.features.RecursiveReadOnly {
				bm.BindOptions = &mount.BindOptions{ReadOnlyForceRecursive: true}
			}
			out = append(out, bm)
			if m.ReadOnly {
				out = append(out, submountBinds(bm, p.submounts[bm.Source])...)
			}
			continue
		}
		out = append(out, mount.Mount{
			Type: mount.TypeVolume, Source: src.volume, Target: m.Target, ReadOnly: m.ReadOnly,
			VolumeOptions: &mount.VolumeOptions{NoCopy: true, Subpath: m.SubPath},
		})
	}
	return out, nil
}

// rootVolumeOptions are the local driver's options that make the root
// volume a tmpfs of the root's size and mode. The mode is written in
// octal as mount(8) reads it ("1777").
func rootVolumeOptions(m *backends.Mount) map[string]string {
	o := []string{fmt.Sprintf("mode=%o", m.Mode&0o7777), "nosuid", "nodev"}
	if m.SizeBytes > 0 {
		o = append([]string{"size=" + strconv.FormatInt(m.SizeBytes, 10)}, o...)
	}
	return map[string]string{"type": "tmpfs", "device": "tmpfs", "o": strings.Join(o, ",")}
}

// resources translates limits; zero means unlimited.
func resources(r *backends.Resources, gpus []string, driver string) container.Resources {
	var out container.Resources
	out.NanoCPUs = r.MilliCPU * 1_000_000
	if r.MemoryBytes > 0 {
		out.Memory = r.MemoryBytes
		// Equal to Memory: no swap beyond the limit, as on Kubernetes.
		out.MemorySwap = r.MemoryBytes
	}
	if r.Pids > 0 {
		pids := r.Pids
		out.PidsLimit = &pids
	}
	if len(gpus) > 0 {
		out.DeviceRequests = []container.DeviceRequest{{
			Driver: driver, DeviceIDs: gpus, Capabilities: [][]string{{"gpu"}},
		}}
	}
	return out
}

func exposedPorts(ports []backends.Port) network.PortSet {
	if len(ports) == 0 {
		return nil
	}
	set := make(network.PortSet, len(ports))
	for _, p := range ports {
		proto := network.IPProtocol(strings.ToLower(p.Protocol))
		if port, ok := network.PortFrom(uint16(p.Port), proto); ok {
			set[port] = struct{}{}
		}
	}
	return set
}

// parseTime reads an engine timestamp; the engine's zero time and garbage
// are the zero time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.IsZero() {
		return time.Time{}
	}
	return t
}
