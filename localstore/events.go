package localstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/fljob-dev/fljob/backends"
)

// Event is one recorded event of an FLJob. Repeats of the last event are
// counted instead of stored again, as Kubernetes aggregates events.
type Event struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
	Action string `json:"action,omitempty"`
	Note   string `json:"note"`
	Count  int32  `json:"count"`
	// First and Last are when the event was first and last seen.
	First metav1.Time `json:"first"`
	Last  metav1.Time `json:"last"`
}

// eventList is the events file of one FLJob, tied to its uid so that a
// new FLJob of the same name never shows its predecessor's events.
type eventList struct {
	UID    types.UID `json:"uid"`
	Events []Event   `json:"events"`
}

// Eventf records an event about an FLJob of the store, keeping its last
// MaxEvents events. Events about an FLJob that is gone are dropped.
// Failures are logged: recording an event must not fail a reconcile.
func (s *Store) Eventf(regarding, _ runtime.Object, eventtype, reason, action, note string, args ...any) {
	obj, err := meta.Accessor(regarding)
	if err != nil {
		s.opts.Log.Error(err, "Cannot record event", "reason", reason)
		return
	}
	key := backends.Key{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	now := metav1.Time{Time: s.opts.Clock.Now().Truncate(time.Second)}
	ev := Event{Type: eventtype, Reason: reason, Action: action, Note: fmt.Sprintf(note, args...),
		Count: 1, First: now, Last: now}
	err = s.withLock(func() error {
		job, err := s.read(key)
		if err != nil || job == nil || job.UID != obj.GetUID() {
			return err
		}
		list, err := s.readEvents(key)
		if err != nil {
			return err
		}
		if list.UID != job.UID {
			list = eventList{UID: job.UID}
		}
		list.Events = appendEvent(list.Events, ev, s.opts.MaxEvents)
		data, err := yaml.Marshal(list)
		if err != nil {
			return fmt.Errorf("encode events: %w", err)
		}
		return writeAtomic(s.eventsPath(key), data, fileMode)
	})
	if err != nil {
		s.opts.Log.Error(err, "Cannot record event", "fljob", key.String(), "reason", reason)
	}
}

// appendEvent adds ev, or counts it when it repeats the last event, and
// keeps the last keep events.
func appendEvent(evs []Event, ev Event, keep int) []Event {
	if n := len(evs); n > 0 {
		last := &evs[n-1]
		if last.Type == ev.Type && last.Reason == ev.Reason && last.Note == ev.Note {
			last.Count++
			last.Last = ev.Last
			return evs
		}
	}
	evs = append(evs, ev)
	if len(evs) > keep {
		evs = append([]Event(nil), evs[len(evs)-keep:]...)
	}
	return evs
}

// Events returns the recorded events of the FLJob, oldest first.
func (s *Store) Events(_ context.Context, key backends.Key) ([]Event, error) {
	job, err := s.read(key)
	if err != nil || job == nil {
		return nil, err
	}
	list, err := s.readEvents(key)
	if err != nil || list.UID != job.UID {
		return nil, err
	}
	return list.Events, nil
}

func (s *Store) readEvents(key backends.Key) (eventList, error) {
	var list eventList
	data, err := os.ReadFile(s.eventsPath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return list, nil
	}
	if err != nil {
		return list, fmt.Errorf("read events of %s: %w", key, err)
	}
	if err := yaml.Unmarshal(data, &list); err != nil {
		return list, fmt.Errorf("decode events of %s: %w", key, err)
	}
	return list, nil
}
