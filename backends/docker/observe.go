package docker

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/fljob-dev/fljob/backends"
)

// rcFileMax bounds how much of a return code file is read.
const rcFileMax = 64

// rcSlack is how much older than its container a return code file may be
// and still count as written by it: file times come from a coarse clock.
const rcSlack = time.Second

// find returns the container of an attempt, found by its labels, or nil.
func (b *Backend) find(ctx context.Context, ref backends.Ref) (*container.Summary, error) {
	list, err := b.cli.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: refFilters(ref),
	})
	if err != nil {
		return nil, fmt.Errorf("list containers of %s attempt %d: %w", ref.Key, ref.Attempt, err)
	}
	if len(list.Items) == 0 {
		return nil, nil
	}
	// Only one container can hold the attempt's name; should another
	// carry the labels too, the named one is the attempt's.
	want := "/" + ContainerName(ref)
	for i := range list.Items {
		for _, n := range list.Items[i].Names {
			if n == want {
				return &list.Items[i], nil
			}
		}
	}
	return &list.Items[0], nil
}

// Observe looks at the container of one attempt.
func (b *Backend) Observe(ctx context.Context, ref backends.Ref) (backends.Observation, error) {
	c, err := b.find(ctx, ref)
	if err != nil {
		return backends.Observation{}, err
	}
	if c == nil {
		return backends.Observation{State: backends.StateAbsent, Name: ContainerName(ref)}, nil
	}
	res, err := b.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return backends.Observation{State: backends.StateAbsent, Name: ContainerName(ref)}, nil
	}
	if err != nil {
		return backends.Observation{}, fmt.Errorf("inspect container %s: %w", c.ID, err)
	}
	return b.observeContainer(ctx, &res.Container)
}

// observeContainer maps an inspected container and, once it exited, reads
// the job's return code from it.
func (b *Backend) observeContainer(ctx context.Context,
	c *container.InspectResponse) (backends.Observation, error) {
	obs := observation(c)
	if obs.State != backends.StateExited {
		return obs, nil
	}
	rc, err := b.returnCode(ctx, c)
	if err != nil {
		return obs, err
	}
	obs.ReturnCode = rc
	return obs, nil
}

// observation maps the engine's view of a container onto the model's.
func observation(c *container.InspectResponse) backends.Observation {
	obs := backends.Observation{
		Name:      strings.TrimPrefix(c.Name, "/"),
		ID:        c.ID,
		CreatedAt: parseTime(c.Created),
	}
	st := c.State
	if st == nil {
		obs.State = backends.StateWaiting
		return obs
	}
	obs.StartedAt = parseTime(st.StartedAt)
	obs.FinishedAt = parseTime(st.FinishedAt)
	if !obs.FinishedAt.IsZero() && obs.FinishedAt.Before(obs.StartedAt) {
		// The engine records the start after runc returns; a process
		// that exits at once can finish "before" it started.
		obs.StartedAt = obs.FinishedAt
	}
	switch st.Status {
	case container.StateCreated:
		obs.State = backends.StateWaiting
		obs.Reason = ReasonContainerCreated
		if st.Error != "" {
			obs.Reason, obs.Message = ReasonStartFailed, st.Error
		}
	case container.StateRunning, container.StatePaused, container.StateRestarting:
		obs.State = backends.StateRunning
	default: // exited, dead, removing
		code := int32(st.ExitCode)
		obs.State = backends.StateExited
		obs.ExitCode = &code
		obs.Message = st.Error
		switch {
		case st.OOMKilled:
			obs.Reason = "OOMKilled"
		case st.Status == container.StateDead:
			obs.Reason = "Dead"
		case st.Error != "":
			obs.Reason = "Error"
		}
	}
	return obs
}

// returnCode reads NVFlare's return code file through the engine's archive
// API, which also works on a stopped container. A missing file, one older
// than the container (left by an earlier attempt) and one that holds no
// integer give nil.
func (b *Backend) returnCode(ctx context.Context, c *container.InspectResponse) (*int32, error) {
	p := ""
	if c.Config != nil {
		p = c.Config.Labels[LabelReturnCodePath]
		if p == "" && c.Config.WorkingDir != "" {
			p = path.Join(c.Config.WorkingDir, backends.ReturnCodeFile)
		}
	}
	if p == "" {
		return nil, nil
	}
	res, err := b.cli.CopyFromContainer(ctx, c.ID, client.CopyFromContainerOptions{SourcePath: p})
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s from container %s: %w", p, c.ID, err)
	}
	defer res.Content.Close()
	if created := parseTime(c.Created); !created.IsZero() && res.Stat.Mtime.Before(created.Add(-rcSlack)) {
		return nil, nil
	}
	if !res.Stat.Mode.IsRegular() {
		return nil, nil
	}
	return readReturnCode(res.Content)
}

// readReturnCode parses the single file of a tar stream as an integer.
func readReturnCode(r io.Reader) (*int32, error) {
	tr := tar.NewReader(r)
	if _, err := tr.Next(); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("read return code archive: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(tr, rcFileMax))
	if err != nil {
		return nil, fmt.Errorf("read return code file: %w", err)
	}
	return parseReturnCode(data), nil
}

// parseReturnCode reads an integer return code; anything else is nil.
func parseReturnCode(data []byte) *int32 {
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 32)
	if err != nil {
		return nil
	}
	rc := int32(n)
	return &rc
}
