package docker

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/fljob-dev/fljob/backends"
)

// Reconnection delays of Watch after the event stream broke.
const (
	watchDelayFirst = time.Second
	watchDelayCap   = 30 * time.Second
)

// watchedActions are the container events that change an observation.
// Others are left out on purpose: reading a return code makes an
// archive-path event, which would otherwise trigger another observation.
var watchedActions = []events.Action{
	events.ActionCreate, events.ActionStart, events.ActionDie, events.ActionOOM,
	events.ActionKill, events.ActionStop, events.ActionPause, events.ActionUnPause,
	events.ActionRestart, events.ActionDestroy,
}

// Watch follows the engine's container events of the backend's containers
// and calls notify with the FLJob a changed container belongs to. When the
// stream breaks it reconnects with a growing delay, replaying from the last
// event it saw. It returns when ctx ends.
func (b *Backend) Watch(ctx context.Context, notify func(backends.Key)) error {
	delay := watchDelayFirst
	var since string
	for {
		got, last, err := b.watchOnce(ctx, since, notify)
		if got {
			delay = watchDelayFirst
			since = last
		}
		if ctx.Err() == nil {
			b.log.Info("Docker event stream broke, reconnecting", "error", err, "delay", delay)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, watchDelayCap)
	}
}

// watchOnce reads one event stream until it fails. It reports whether it
// saw an event and the time of the last one, as the events API takes it.
func (b *Backend) watchOnce(ctx context.Context, since string,
	notify func(backends.Key)) (bool, string, error) {
	f := make(client.Filters).
		Add("type", string(events.ContainerEventType)).
		Add("label", backends.LabelManagedBy+"="+backends.ManagedBy)
	for _, a := range watchedActions {
		f.Add("event", string(a))
	}
	res := b.cli.Events(ctx, client.EventsListOptions{Since: since, Filters: f})
	got, last := false, since
	for {
		select {
		case m := <-res.Messages:
			got = true
			if m.TimeNano != 0 {
				last = fmt.Sprintf("%d.%09d", m.TimeNano/1e9, m.TimeNano%1e9)
			}
			ns, name := m.Actor.Attributes[backends.LabelNamespace], m.Actor.Attributes[backends.LabelName]
			if ns != "" && name != "" {
				notify(backends.Key{Namespace: ns, Name: name})
			}
		case err := <-res.Err:
			return got, last, err
		}
	}
}
