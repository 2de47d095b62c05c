package docker

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/fljob-dev/fljob/backends"
)

// Logs copies the attempt's output, stdout and stderr interleaved, to out.
// With opts.Follow it keeps copying until the container exits or ctx ends.
func (b *Backend) Logs(ctx context.Context, ref backends.Ref, opts backends.LogOptions, out io.Writer) error {
	c, err := b.find(ctx, ref)
	if err != nil {
		return err
	}
	if c == nil {
		return fmt.Errorf("logs of %s attempt %d: %w", ref.Key, ref.Attempt, ErrNotFound)
	}
	lo := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow}
	if opts.Tail > 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	rc, err := b.cli.ContainerLogs(ctx, c.ID, lo)
	if err != nil {
		return fmt.Errorf("logs of container %s: %w", c.ID, err)
	}
	defer rc.Close()
	// Containers run without a terminal, so the engine multiplexes both
	// streams into one with frame headers.
	if _, err := stdcopy.StdCopy(out, out, rc); err != nil && ctx.Err() == nil {
		return fmt.Errorf("copy logs of container %s: %w", c.ID, err)
	}
	return nil
}
