package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/controllers"
	"github.com/fljob-dev/fljob/localstore"
)

func newDeleteCommand(g *globals) *cobra.Command {
	var files []string
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "delete (NAME... | -f FILENAME)",
		Short: "Delete FLJobs: the controller stops and removes their workloads first",
		Long: `Delete marks an FLJob deleted. The controller then stops its process (SIGTERM,
then SIGKILL after terminationGracePeriodSeconds), removes its container and
lets the FLJob go. When a controller runs, delete waits for that (--wait);
without one, the FLJob stays marked until the next "fljob operator" or
"fljob run" finishes the deletion. An FLJob no controller has seen yet is
deleted at once. -f also deletes the Secrets of the manifests.`,
		RunE: func(cmd *cobra.Command, names []string) error {
			if len(names) > 0 == (len(files) > 0) {
				return errors.New("name the FLJobs to delete or give -f, not both")
			}
			s, err := g.openStore()
			if err != nil {
				return err
			}
			var targets []*object
			if len(files) > 0 {
				if targets, err = g.load(cmd, s, files); err != nil {
					return err
				}
			}
			for _, n := range names {
				targets = append(targets, &object{fljob: nameOnly(g.namespace, n)})
			}
			return deleteObjects(cmd.Context(), g, s, targets, wait, timeout)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "Manifests naming what to delete.")
	cmd.Flags().BoolVar(&wait, "wait", true, "Wait until a running controller removed the FLJobs.")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "How long --wait waits.")
	return cmd
}

func deleteObjects(ctx context.Context, g *globals, s *localstore.Store, targets []*object, wait bool,
	timeout time.Duration) error {
	var marked []backends.Key
	for _, o := range targets {
		key := o.key()
		var res localstore.DeleteResult
		var err error
		if o.secret != nil {
			res, err = s.DeleteSecret(ctx, key.Namespace, key.Name)
		} else {
			res, err = s.DeleteKey(ctx, key)
		}
		if err != nil {
			return err
		}
		if res == localstore.NotFound {
			return fmt.Errorf("%s %q not found", o.kind(), key.Name)
		}
		if res == localstore.MarkedDeleted {
			marked = append(marked, key)
			continue
		}
		fmt.Fprintf(g.stdout, "%s %q deleted\n", o.kind(), key.Name)
	}
	if len(marked) == 0 {
		return nil
	}
	pid := s.ControllerPID()
	if !wait || pid == 0 {
		for _, k := range marked {
			fmt.Fprintf(g.stdout, "fljob.fljob.dev %q marked for deletion\n", k.Name)
		}
		if pid == 0 {
			fmt.Fprintf(g.stderr, "No controller runs on %s: the next \"fljob operator\" or \"fljob run\" "+
				"stops the workloads and finishes the deletion.\n", s.Dir())
		}
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, k := range marked {
		if err := waitGone(wctx, s, k); err != nil {
			return fmt.Errorf("fljob %q is still being deleted: %w", k.Name, err)
		}
		fmt.Fprintf(g.stdout, "fljob.fljob.dev %q deleted\n", k.Name)
	}
	return nil
}

// waitGone polls until the FLJob is gone or ctx ends.
func waitGone(ctx context.Context, s *localstore.Store, key backends.Key) error {
	t := time.NewTicker(localstore.DefaultPollInterval)
	defer t.Stop()
	for {
		if _, err := s.Get(ctx, key); errors.Is(err, controllers.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
