package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/backends/docker"
	"github.com/fljob-dev/fljob/controllers"
	"github.com/fljob-dev/fljob/localstore"
)

// pingTimeout bounds the first request to the Docker Engine.
const pingTimeout = 10 * time.Second

// dockerOptions configure the docker backend.
type dockerOptions struct {
	network string
	gpus    []string
}

// connectDocker returns the docker backend of the engine DOCKER_HOST names,
// after checking that the engine answers, and a function that closes it.
func connectDocker(ctx context.Context, s *localstore.Store, o dockerOptions, log logr.Logger) (*docker.Backend, func(), error) {
	cli, err := docker.NewClientFromEnv()
	if err != nil {
		return nil, nil, fmt.Errorf("docker: %w", err)
	}
	b := docker.New(cli, docker.Options{
		Network: o.network,
		GPUs:    o.gpus,
		Secrets: storeSecrets(s),
		Log:     log.WithName("docker"),
	})
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if _, err := b.Features(pctx); err != nil {
		cli.Close()
		host := os.Getenv("DOCKER_HOST")
		if host == "" {
			host = "the default socket"
		}
		return nil, nil, fmt.Errorf("cannot reach the Docker Engine at %s: %w", host, err)
	}
	return b, func() { cli.Close() }, nil
}

// storeSecrets resolves secretKeyRef variables from the store's Secrets.
func storeSecrets(s *localstore.Store) docker.SecretResolver {
	return func(ctx context.Context, namespace, name, key string) (string, error) {
		v, err := s.SecretValue(ctx, namespace, name, key)
		if errors.Is(err, controllers.ErrNotFound) {
			return "", fmt.Errorf("%w: %w", docker.ErrSecretNotFound, err)
		}
		return v, err
	}
}

// controllerOptions tune the local controller.
type controllerOptions struct {
	workers int
	resync  time.Duration
}

// runController runs the reconciler on the store and backend until ctx
// ends: the same reconcile logic as the Kubernetes controller, driven by a
// rate-limited work queue fed by the store's changes, the backend's events
// and a periodic list.
func runController(ctx context.Context, s *localstore.Store, b backends.Backend, o controllerOptions,
	log logr.Logger) error {
	r := &controllers.QueueRunner{
		Reconciler: &controllers.Reconciler{
			Store:    s,
			Backend:  b,
			Recorder: s,
			Policy:   controllers.DefaultPolicy,
			Clock:    clock.RealClock{},
			Resync:   o.resync,
		},
		List:    s.Keys,
		Sources: []controllers.Source{s.Watch},
		Workers: o.workers,
	}
	return r.Run(ctrllog.IntoContext(ctx, log))
}
