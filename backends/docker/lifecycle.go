package docker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/fljob-dev/fljob/backends"
)

// Stop asks the attempt's process to exit with SIGTERM and kills it after
// grace. A container that was created but never started is removed
// instead, so that it can no longer start and frees its GPUs; the attempt
// is then observed as absent. A missing or exited container is no error.
func (b *Backend) Stop(ctx context.Context, ref backends.Ref, grace time.Duration) error {
	c, err := b.find(ctx, ref)
	if err != nil || c == nil {
		return err
	}
	switch c.State {
	case container.StateExited, container.StateDead, container.StateRemoving:
		return nil
	case container.StateCreated:
		b.log.V(2).Info("Removing container that never started", "container", c.Names)
		return b.removeContainer(ctx, c.ID)
	}
	secs := int(math.Ceil(grace.Seconds()))
	b.log.V(2).Info("Stopping container", "container", c.Names, "grace", grace)
	_, err = b.cli.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &secs})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %s: %w", c.ID, err)
	}
	return nil
}

// Remove deletes every container of the FLJob, of every attempt, and their
// workspace root volumes. The network alias goes with the containers.
func (b *Backend) Remove(ctx context.Context, key backends.Key) error {
	list, err := b.cli.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: keyFilters(key),
	})
	if err != nil {
		return fmt.Errorf("list containers of %s: %w", key, err)
	}
	var errs []error
	for _, c := range list.Items {
		b.log.V(2).Info("Removing container", "container", c.Names)
		errs = append(errs, b.removeContainer(ctx, c.ID))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	vols, err := b.cli.VolumeList(ctx, client.VolumeListOptions{Filters: keyFilters(key)})
	if err != nil {
		return fmt.Errorf("list volumes of %s: %w", key, err)
	}
	for _, v := range vols.Items {
		_, err := b.cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
		}
	}
	return errors.Join(errs...)
}

// removeContainer force-removes a container; one that is gone or already
// being removed is no error.
func (b *Backend) removeContainer(ctx context.Context, id string) error {
	_, err := b.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress"):
		return nil
	}
	return fmt.Errorf("remove container %s: %w", id, err)
}
