package docker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"

	"github.com/fljob-dev/fljob/backends"
)

// BackendName is the backend's name as written in an FLJob's status.
const BackendName = "docker"

// DefaultNetwork is the user-defined bridge network jobs join when
// Options.Network is empty.
const DefaultNetwork = "fljob"

// Labels the backend adds to what the model labels a container with.
const (
	// LabelGPUs holds the comma-separated GPU ids a container was given.
	LabelGPUs = "fljob.dev/gpus"
	// LabelReturnCodePath holds the path, inside the container, of the
	// job's return code file.
	LabelReturnCodePath = "fljob.dev/return-code-path"
)

// API versions that enable features of the translation.
const (
	// apiForceRecursiveRO adds BindOptions.ReadOnlyForceRecursive.
	apiForceRecursiveRO = "1.44"
	// apiVolumeSubpath adds VolumeOptions.Subpath.
	apiVolumeSubpath = "1.45"
)

// ErrSecretNotFound is what a SecretResolver returns, wrapped or not, when
// the Secret or its key does not exist (yet). The attempt then waits with
// reason SecretNotFound instead of failing.
var ErrSecretNotFound = errors.New("secret not found")

// ErrNotFound says no container exists for an attempt.
var ErrNotFound = errors.New("no container for the attempt")

// SecretResolver returns the value of one key of a Secret in a namespace.
type SecretResolver func(ctx context.Context, namespace, name, key string) (string, error)

// Options configure a Backend.
type Options struct {
	// Network is the user-defined bridge network every job joins, created
	// when missing. Defaults to DefaultNetwork.
	Network string
	// GPUs are the ids of the host's GPUs as the device driver knows them
	// ("0", "1" or UUIDs), from configuration. Jobs get whole GPUs from
	// this list, each GPU to one unfinished container at a time.
	GPUs []string
	// GPUDriver is the device driver of GPU requests. Empty lets the engine
	// pick the driver that offers the "gpu" capability.
	GPUDriver string
	// Secrets resolves environment variables taken from Secrets. Without
	// it, a workload that needs a Secret fails as invalid.
	Secrets SecretResolver
	// Log receives what the backend does. Defaults to a logger that
	// discards.
	Log logr.Logger
}

// Backend runs workloads as Docker containers. Its methods are safe for
// concurrent use.
type Backend struct {
	cli  client.APIClient
	opts Options
	log  logr.Logger

	// netMu serializes creating the network: engines before API 1.44
	// accept two networks of one name.
	netMu    sync.Mutex
	netReady bool
	// gpuMu serializes allocating GPUs and creating the container that
	// holds them.
	gpuMu sync.Mutex
	// featMu guards feat, which is probed once.
	featMu sync.Mutex
	feat   *Features
}

var (
	_ backends.Backend   = (*Backend)(nil)
	_ backends.Watcher   = (*Backend)(nil)
	_ backends.LogReader = (*Backend)(nil)
)

// New returns a Backend that talks to the engine through cli.
func New(cli client.APIClient, opts Options) *Backend {
	if opts.Network == "" {
		opts.Network = DefaultNetwork
	}
	log := opts.Log
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	return &Backend{cli: cli, opts: opts, log: log}
}

// NewClientFromEnv returns a moby client configured from DOCKER_HOST,
// DOCKER_API_VERSION, DOCKER_CERT_PATH and DOCKER_TLS_VERIFY. Unless
// DOCKER_API_VERSION fixes it, the client negotiates the API version with
// the engine on its first request.
func NewClientFromEnv() (*client.Client, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("create docker client: %w", err)
	}
	return cli, nil
}

// Name returns "docker".
func (b *Backend) Name() string { return BackendName }

// Features are what the connected engine can do for the translation.
type Features struct {
	// APIVersion is the API version negotiated with the engine.
	APIVersion string
	// RecursiveReadOnly is true when read-only binds are made read-only
	// recursively or not at all (API 1.44 and later). When false, the
	// engine makes only the top of a bind read-only: the backend then binds
	// each file system mounted below a read-only source, as found when the
	// container is created, read-only on its own.
	RecursiveReadOnly bool
	// VolumeSubpath is true when a named volume can be mounted by
	// subdirectory (API 1.45 and later).
	VolumeSubpath bool
}

// Features negotiates the API version with the engine, once, and returns
// what it enables.
func (b *Backend) Features(ctx context.Context) (Features, error) {
	b.featMu.Lock()
	defer b.featMu.Unlock()
	if b.feat != nil {
		return *b.feat, nil
	}
	if _, err := b.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return Features{}, fmt.Errorf("ping docker engine: %w", err)
	}
	v := b.cli.ClientVersion()
	f := Features{
		APIVersion:        v,
		RecursiveReadOnly: versions.GreaterThanOrEqualTo(v, apiForceRecursiveRO),
		VolumeSubpath:     versions.GreaterThanOrEqualTo(v, apiVolumeSubpath),
	}
	if !f.RecursiveReadOnly {
		b.log.Info("Read-only binds are not recursive on this engine: binding the file systems "+
			"below them read-only one by one", "apiVersion", v, "recursiveSince", apiForceRecursiveRO)
	}
	b.feat = &f
	return f, nil
}
