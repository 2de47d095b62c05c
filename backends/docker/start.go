package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
)

// Reasons of waiting observations the backend reports.
const (
	// ReasonImageNotFound: the image is absent and may not, or could not,
	// be pulled.
	ReasonImageNotFound = "ImageNotFound"
	// ReasonImagePullFailed: pulling the image, as imagePullPolicy Always
	// asks, failed.
	ReasonImagePullFailed = "ImagePullFailed"
	// ReasonSecretNotFound: a Secret an environment variable refers to does
	// not exist (yet).
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonInsufficientGPU: fewer of the host's GPUs are free than the
	// job asks for.
	ReasonInsufficientGPU = "InsufficientGPU"
	// ReasonHostnameInUse: an unfinished FLJob of the same name in another
	// namespace holds the network alias.
	ReasonHostnameInUse = "HostnameInUse"
	// ReasonNameConflict: a container of the attempt's name exists but
	// does not belong to this FLJob.
	ReasonNameConflict = "NameConflict"
	// ReasonContainerCreated: the container exists and is being started.
	ReasonContainerCreated = "ContainerCreated"
	// ReasonStartFailed: the engine could not start the container.
	ReasonStartFailed = "StartFailed"
)

// adoptWaitMax bounds the delay between looks for a container whose name
// a concurrent create holds.
const adoptWaitMax = 2 * time.Second

// waiting returns a waiting observation of the named container.
func waiting(name, reason, format string, args ...any) backends.Observation {
	return backends.Observation{State: backends.StateWaiting, Name: name, Reason: reason,
		Message: fmt.Sprintf(format, args...)}
}

// Start creates and starts the container of w.Ref, or adopts the one that
// exists. What may resolve by itself (a missing image, Secret or volume, no
// free GPU, a taken hostname) is a waiting observation; what cannot is a
// *backends.PermanentError.
func (b *Backend) Start(ctx context.Context, w *backends.Workload) (backends.Observation, error) {
	if err := validate(w); err != nil {
		return backends.Observation{}, err
	}
	existing, err := b.find(ctx, w.Ref)
	if err != nil {
		return backends.Observation{}, err
	}
	if existing != nil {
		return b.adopt(ctx, w, existing.ID)
	}

	p, obs, err := b.plan(ctx, w)
	if err != nil || obs != nil {
		return deref(obs), err
	}
	id, obs, err := b.create(ctx, w, p)
	if err != nil || obs != nil {
		return deref(obs), err
	}
	return b.startContainer(ctx, id)
}

func deref(o *backends.Observation) backends.Observation {
	if o == nil {
		return backends.Observation{}
	}
	return *o
}

// plan resolves what the container needs before it can be created.
func (b *Backend) plan(ctx context.Context, w *backends.Workload) (*plan, *backends.Observation, error) {
	name := ContainerName(w.Ref)
	f, err := b.Features(ctx)
	if err != nil {
		return nil, nil, err
	}
	if obs, err := b.checkHostname(ctx, w); err != nil || obs != nil {
		return nil, obs, err
	}
	env, obs, err := b.resolveEnv(ctx, w)
	if err != nil || obs != nil {
		return nil, obs, err
	}
	if obs, err := b.ensureImage(ctx, w); err != nil || obs != nil {
		return nil, obs, err
	}
	sources, obs, err := b.resolveSources(ctx, w, f)
	if err != nil || obs != nil {
		return nil, obs, err
	}
	submounts, err := readOnlySubmounts(w, sources, f)
	if err != nil {
		return nil, nil, err
	}
	if err := b.ensureNetwork(ctx); err != nil {
		return nil, nil, err
	}
	rootVol := rootVolumeName(w.Ref)
	if err := b.ensureRootVolume(ctx, w, rootVol); err != nil {
		return nil, nil, err
	}
	return &plan{
		name: name, rootVolume: rootVol, network: b.opts.Network, features: f,
		sources: sources, submounts: submounts, env: env, gpuDriver: b.opts.GPUDriver,
	}, nil, nil
}

// checkHostname waits while an unfinished FLJob of the same name in
// another namespace holds the network alias.
func (b *Backend) checkHostname(ctx context.Context, w *backends.Workload) (*backends.Observation, error) {
	f := make(client.Filters).
		Add("label", backends.LabelManagedBy+"="+backends.ManagedBy).
		Add("label", backends.LabelName+"="+w.Ref.Name)
	list, err := b.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers named %s: %w", w.Ref.Name, err)
	}
	for _, c := range list.Items {
		ns := c.Labels[backends.LabelNamespace]
		if ns != w.Ref.Namespace && unfinished(c.State) {
			obs := waiting(ContainerName(w.Ref), ReasonHostnameInUse,
				"the FLJob %s/%s is reached by the name %q on network %s, and so is this one: "+
					"on the docker backend FLJob names must be unique across namespaces",
				ns, w.Ref.Name, w.Hostname, b.opts.Network)
			return &obs, nil
		}
	}
	return nil, nil
}

// resolveEnv returns the environment with Secrets resolved.
func (b *Backend) resolveEnv(ctx context.Context,
	w *backends.Workload) ([]string, *backends.Observation, error) {
	env := make([]string, 0, len(w.Env))
	for _, e := range w.Env {
		if e.Secret == nil {
			env = append(env, e.Name+"="+e.Value)
			continue
		}
		if b.opts.Secrets == nil {
			return nil, nil, invalid("variable %s needs Secret %s, and the docker backend was "+
				"given no way to read Secrets", e.Name, e.Secret.Name)
		}
		v, err := b.opts.Secrets(ctx, w.Ref.Namespace, e.Secret.Name, e.Secret.Key)
		if errors.Is(err, ErrSecretNotFound) {
			obs := waiting(ContainerName(w.Ref), ReasonSecretNotFound,
				"variable %s: key %q of Secret %s/%s: %v", e.Name, e.Secret.Key,
				w.Ref.Namespace, e.Secret.Name, err)
			return nil, &obs, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("resolve variable %s: %w", e.Name, err)
		}
		env = append(env, e.Name+"="+v)
	}
	return env, nil, nil
}

// ensureImage makes the image present as the pull policy allows.
func (b *Backend) ensureImage(ctx context.Context, w *backends.Workload) (*backends.Observation, error) {
	name := ContainerName(w.Ref)
	if w.PullPolicy == fljobv1.PullAlways {
		if err := b.pull(ctx, w.Image); err != nil {
			obs := waiting(name, ReasonImagePullFailed, "pull image %s (imagePullPolicy Always): %v",
				w.Image, err)
			return &obs, nil
		}
		return nil, nil
	}
	_, err := b.cli.ImageInspect(ctx, w.Image)
	switch {
	case err == nil:
		return nil, nil
	case !cerrdefs.IsNotFound(err):
		return nil, fmt.Errorf("inspect image %s: %w", w.Image, err)
	case w.PullPolicy == fljobv1.PullNever:
		obs := waiting(name, ReasonImageNotFound,
			"image %s is not present on the Docker host and imagePullPolicy is Never", w.Image)
		return &obs, nil
	}
	if err := b.pull(ctx, w.Image); err != nil {
		obs := waiting(name, ReasonImageNotFound,
			"image %s is not present on the Docker host and pulling it failed: %v", w.Image, err)
		return &obs, nil
	}
	return nil, nil
}

func (b *Backend) pull(ctx context.Context, image string) error {
	b.log.Info("Pulling image", "image", image)
	resp, err := b.cli.ImagePull(ctx, image, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	return resp.Wait(ctx)
}

// ensureNetwork creates the backend's network unless it exists.
func (b *Backend) ensureNetwork(ctx context.Context) error {
	b.netMu.Lock()
	defer b.netMu.Unlock()
	if b.netReady {
		return nil
	}
	_, err := b.cli.NetworkInspect(ctx, b.opts.Network, client.NetworkInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		b.log.Info("Creating network", "network", b.opts.Network)
		_, err = b.cli.NetworkCreate(ctx, b.opts.Network, client.NetworkCreateOptions{
			Driver: "bridge",
			Labels: map[string]string{backends.LabelManagedBy: backends.ManagedBy},
		})
	}
	if err != nil {
		return fmt.Errorf("ensure network %s: %w", b.opts.Network, err)
	}
	b.netReady = true
	return nil
}

// ensureRootVolume creates the attempt's workspace root volume: the local
// driver mounts a tmpfs of the root's size and mode when a container uses
// it. Creating a volume that exists with the same options is no error.
func (b *Backend) ensureRootVolume(ctx context.Context, w *backends.Workload, name string) error {
	labels := make(map[string]string, len(w.Labels))
	for k, v := range backends.SelectorLabels(w.Ref.Key) {
		labels[k] = v
	}
	labels[backends.LabelAttempt] = attemptLabel(w.Ref.Attempt)
	_, err := b.cli.VolumeCreate(ctx, client.VolumeCreateOptions{
		Name: name, Driver: "local", DriverOpts: rootVolumeOptions(w.Mount(backends.MountRoot)),
		Labels: labels,
	})
	if err != nil {
		return fmt.Errorf("create workspace root volume %s: %w", name, err)
	}
	return nil
}

// create allocates GPUs and creates the container. A container of the
// same name that belongs to this attempt is adopted.
func (b *Backend) create(ctx context.Context, w *backends.Workload,
	p *plan) (string, *backends.Observation, error) {
	if n := int(w.Resources.GPUs); n > 0 {
		if n > len(b.opts.GPUs) {
			return "", nil, invalid("the job asks for %d GPUs and this Docker host has %d", n,
				len(b.opts.GPUs))
		}
		b.gpuMu.Lock()
		defer b.gpuMu.Unlock()
		used, err := b.gpusInUse(ctx)
		if err != nil {
			return "", nil, err
		}
		ids, ok := allocateGPUs(b.opts.GPUs, used, n)
		if !ok {
			obs := waiting(p.name, ReasonInsufficientGPU, "the job asks for %d GPUs and %d of "+
				"the host's %d are free", n, len(b.opts.GPUs)-len(used), len(b.opts.GPUs))
			return "", &obs, nil
		}
		p.gpus = ids
	}
	opts, err := createOptions(w, p)
	if err != nil {
		return "", nil, err
	}
	b.log.V(2).Info("Creating container", "container", p.name, "gpus", p.gpus)
	res, err := b.cli.ContainerCreate(ctx, opts)
	if cerrdefs.IsConflict(err) {
		return b.adoptByName(ctx, w, p.name)
	}
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			// The network may have been removed behind the backend's back.
			b.forgetNetwork()
		}
		return "", nil, fmt.Errorf("create container %s: %w", p.name, err)
	}
	return res.ID, nil, nil
}

func (b *Backend) forgetNetwork() {
	b.netMu.Lock()
	b.netReady = false
	b.netMu.Unlock()
}

// adoptByName takes over the container that holds the attempt's name, if
// it belongs to the attempt.
func (b *Backend) adoptByName(ctx context.Context, w *backends.Workload,
	name string) (string, *backends.Observation, error) {
	// A concurrent create holds the name before the container can be
	// inspected: give it a moment.
	var res client.ContainerInspectResult
	var err error
	for delay := 50 * time.Millisecond; ; delay *= 2 {
		res, err = b.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
		if !cerrdefs.IsNotFound(err) || delay > adoptWaitMax {
			break
		}
		select {
		case <-ctx.Done():
			return "", nil, ctx.Err()
		case <-time.After(delay):
		}
	}
	if err != nil {
		return "", nil, fmt.Errorf("inspect container %s: %w", name, err)
	}
	if msg := ownedBy(res.Container.Config, w); msg != "" {
		obs := waiting(name, ReasonNameConflict, "container %s exists and %s", name, msg)
		return "", &obs, nil
	}
	return res.Container.ID, nil, nil
}

// ownedBy says why a container does not run w's attempt, or "" if it does.
func ownedBy(cfg *container.Config, w *backends.Workload) string {
	if cfg == nil {
		return "has no configuration"
	}
	for _, k := range []string{backends.LabelManagedBy, backends.LabelNamespace,
		backends.LabelName, backends.LabelUID, backends.LabelAttempt} {
		if got, want := cfg.Labels[k], w.Labels[k]; got != want {
			return fmt.Sprintf("has label %s=%q, not %q", k, got, want)
		}
	}
	return ""
}

// adopt returns what the existing container of the attempt is doing, and
// starts it if it was created and never started.
func (b *Backend) adopt(ctx context.Context, w *backends.Workload, id string) (backends.Observation, error) {
	res, err := b.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return backends.Observation{}, fmt.Errorf("inspect container %s: %w", id, err)
	}
	c := res.Container
	if msg := ownedBy(c.Config, w); msg != "" {
		return waiting(strings.TrimPrefix(c.Name, "/"), ReasonNameConflict,
			"container %s exists and %s", c.Name, msg), nil
	}
	if c.State != nil && c.State.Status == container.StateCreated {
		return b.startContainer(ctx, c.ID)
	}
	b.log.V(2).Info("Adopting container", "container", c.Name)
	return b.observeContainer(ctx, &c)
}

// startContainer starts a created container and observes it. A start the
// engine refuses leaves the container waiting with the engine's reason.
func (b *Backend) startContainer(ctx context.Context, id string) (backends.Observation, error) {
	b.log.V(2).Info("Starting container", "container", id)
	_, startErr := b.cli.ContainerStart(ctx, id, client.ContainerStartOptions{})
	if startErr != nil && cerrdefs.IsNotFound(startErr) {
		return backends.Observation{}, fmt.Errorf("start container %s: %w", id, startErr)
	}
	res, err := b.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return backends.Observation{}, fmt.Errorf("inspect container %s: %w", id, err)
	}
	obs, err := b.observeContainer(ctx, &res.Container)
	if err != nil {
		return obs, err
	}
	if startErr != nil && obs.State == backends.StateWaiting {
		obs.Reason = ReasonStartFailed
		obs.Message = startErr.Error()
	}
	return obs, nil
}
