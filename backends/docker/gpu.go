package docker

import (
	"context"
	"fmt"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/fljob-dev/fljob/backends"
)

// allocateGPUs picks n GPUs of host, in host order, that are not in used.
// It returns false when fewer than n are free.
func allocateGPUs(host []string, used map[string]bool, n int) ([]string, bool) {
	if n <= 0 {
		return nil, true
	}
	picked := make([]string, 0, n)
	for _, id := range host {
		if len(picked) == n {
			break
		}
		if !used[id] && !contains(picked, id) {
			picked = append(picked, id)
		}
	}
	if len(picked) < n {
		return nil, false
	}
	return picked, true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// unfinished says whether a container in state s may still run. Such a
// container keeps its GPUs and its network alias.
func unfinished(s container.ContainerState) bool {
	switch s {
	case container.StateExited, container.StateDead, container.StateRemoving:
		return false
	default:
		return true
	}
}

// formatGPUs and parseGPUs convert the value of LabelGPUs.
func formatGPUs(ids []string) string { return strings.Join(ids, ",") }

func parseGPUs(v string) []string {
	var out []string
	for _, id := range strings.Split(v, ",") {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	return out
}

// gpusInUse returns the GPU ids held by the backend's containers that have
// not ended, read from their labels: the engine, not memory, is the record.
func (b *Backend) gpusInUse(ctx context.Context) (map[string]bool, error) {
	f := make(client.Filters).
		Add("label", backends.LabelManagedBy+"="+backends.ManagedBy).
		Add("label", LabelGPUs)
	list, err := b.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers holding GPUs: %w", err)
	}
	used := make(map[string]bool)
	for _, c := range list.Items {
		if !unfinished(c.State) {
			continue
		}
		for _, id := range parseGPUs(c.Labels[LabelGPUs]) {
			used[id] = true
		}
	}
	return used, nil
}
