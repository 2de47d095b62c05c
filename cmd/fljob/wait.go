package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/controllers"
	"github.com/fljob-dev/fljob/localstore"
)

// waitFor is a parsed --for: a condition with the status it must reach,
// or the FLJob's deletion.
type waitFor struct {
	condition string
	status    metav1.ConditionStatus
	deletion  bool
}

func parseWaitFor(s string) (waitFor, error) {
	if s == "delete" {
		return waitFor{deletion: true}, nil
	}
	cond, ok := strings.CutPrefix(s, "condition=")
	if !ok || cond == "" {
		return waitFor{}, fmt.Errorf("unrecognized condition %q: want condition=NAME[=VALUE] or delete", s)
	}
	w := waitFor{status: metav1.ConditionTrue}
	name, value, hasValue := strings.Cut(cond, "=")
	w.condition = name
	if hasValue {
		switch strings.ToLower(value) {
		case "true":
		case "false":
			w.status = metav1.ConditionFalse
		default:
			return waitFor{}, fmt.Errorf("unrecognized condition value %q: want True or False", value)
		}
	}
	return w, nil
}

// met reports whether the FLJob (nil when gone) meets the wait, and an
// error when it never can: a finished FLJob keeps its conditions.
func (w waitFor) met(job *fljobv1.FLJob) (bool, error) {
	if w.deletion {
		return job == nil, nil
	}
	if job == nil {
		return false, errors.New("it was deleted")
	}
	c := meta.FindStatusCondition(job.Status.Conditions, w.condition)
	if c != nil && strings.EqualFold(c.Type, w.condition) && c.Status == w.status {
		return true, nil
	}
	if job.Status.Phase.Finished() {
		return false, fmt.Errorf("it finished %s (%s: %s) without condition %s=%s",
			job.Status.Phase, job.Status.Reason, job.Status.Message, w.condition, w.status)
	}
	return false, nil
}

func newWaitCommand(g *globals) *cobra.Command {
	var forFlag string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait NAME... --for=condition=Complete [--timeout=30s]",
		Short: "Wait until FLJobs meet a condition or are deleted",
		Long: `Wait blocks until each named FLJob has the condition (Running, Complete or
Failed; True unless =False is given) or, with --for=delete, is gone. It
fails at once when a finished FLJob can no longer meet the condition, and
after --timeout with "timed out waiting for the condition".`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, names []string) error {
			w, err := parseWaitFor(forFlag)
			if err != nil {
				return err
			}
			s, err := g.openStore()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			for _, n := range names {
				key := backends.Key{Namespace: g.namespace, Name: n}
				if err := waitOne(ctx, s, key, w); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "fljob.fljob.dev/%s condition met\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&forFlag, "for", "", "condition=NAME[=VALUE] or delete.")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "How long to wait; 0 checks once.")
	_ = cmd.MarkFlagRequired("for")
	return cmd
}

// waitOne polls the FLJob until it meets w, never can, or ctx ends.
func waitOne(ctx context.Context, s *localstore.Store, key backends.Key, w waitFor) error {
	t := time.NewTicker(localstore.DefaultPollInterval)
	defer t.Stop()
	for {
		job, err := s.Get(ctx, key)
		switch {
		case errors.Is(err, controllers.ErrNotFound):
			job = nil
			if !w.deletion {
				return fmt.Errorf("fljobs.fljob.dev %q not found", key.Name)
			}
		case err != nil:
			return err
		}
		ok, err := w.met(job)
		if err != nil {
			return fmt.Errorf("fljobs/%s: %w", key.Name, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("timed out waiting for the condition on fljobs/%s", key.Name)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}
