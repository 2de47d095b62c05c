package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fljob-dev/fljob/backends"
)

func newLogsCommand(g *globals) *cobra.Command {
	var follow bool
	var tail int
	var attempt int32
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print the output of an FLJob's latest attempt",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openStore()
			if err != nil {
				return err
			}
			key := backends.Key{Namespace: g.namespace, Name: args[0]}
			job, err := s.Get(cmd.Context(), key)
			if err != nil {
				return err
			}
			n := job.Status.Attempts
			if attempt > 0 {
				n = attempt
			}
			if n == 0 || attempt > job.Status.Attempts {
				return fmt.Errorf("fljob %q has no attempt %d yet (%d started)", key.Name, n, job.Status.Attempts)
			}
			b, closeB, err := connectDocker(cmd.Context(), s, dockerOptions{}, g.logger())
			if err != nil {
				return err
			}
			defer closeB()
			return b.Logs(cmd.Context(), backends.Ref{Key: key, Attempt: n},
				backends.LogOptions{Follow: follow, Tail: tail}, g.stdout)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "Keep printing until the attempt's process exits.")
	cmd.Flags().IntVar(&tail, "tail", -1, "Lines of recent output to print; -1 prints all.")
	cmd.Flags().Int32Var(&attempt, "attempt", 0, "Attempt to print (default: the latest).")
	return cmd
}
