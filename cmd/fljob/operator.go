package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/fljob-dev/fljob/cmd/internal/operator"
)

// Stores the operator can run on.
const (
	storeLocal      = "local"
	storeKubernetes = "kubernetes"
)

func newOperatorCommand(g *globals) *cobra.Command {
	var store, backend string
	cmd := &cobra.Command{
		Use:   "operator [--store local|kubernetes] [--backend docker|kubernetes]",
		Short: "Run the FLJob controller until interrupted",
		Long: `Operator runs the FLJob controller until it receives SIGINT or SIGTERM.

With --store local (the default) it reconciles the FLJobs of the local store
(--state-dir) into containers of the Docker Engine that DOCKER_HOST names:
a single host, no Kubernetes. Only one controller runs per store; killed,
it is simply started again: it adopts the containers that run and finishes
their bookkeeping.

With --store kubernetes it is the cluster operator: FLJobs come from the
API server of --kubeconfig and run as Pods (--backend kubernetes) or as
containers of one Docker Engine (--backend docker). The metrics, probe and
leader-election flags apply to that mode only.`,
		Args: cobra.NoArgs,
	}
	o := operator.BindFlags(cmd.Flags())
	cmd.Flags().StringVar(&store, "store", storeLocal, "Where FLJobs live: local or kubernetes.")
	cmd.Flags().StringVar(&backend, "backend", operator.BackendDocker, "Where jobs run: docker or kubernetes.")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		switch store {
		case storeKubernetes:
			return operator.Run(cmd.Context(), o, backend)
		case storeLocal:
			if backend != operator.BackendDocker {
				return fmt.Errorf("--store local runs jobs on docker only, not %q", backend)
			}
			return runLocalOperator(cmd, g, o)
		}
		return fmt.Errorf("unknown store %q: want %s or %s", store, storeLocal, storeKubernetes)
	}
	return cmd
}

// runLocalOperator runs the controller on the local store and the docker
// backend until the command's context ends.
func runLocalOperator(cmd *cobra.Command, g *globals, o *operator.Options) error {
	log := zap.New(zap.UseFlagOptions(&o.Zap)).WithName("fljob")
	s, err := g.openStore()
	if err != nil {
		return err
	}
	release, err := s.LockController()
	if err != nil {
		return fmt.Errorf("%w; stop it first", err)
	}
	defer release()
	ctx := cmd.Context()
	b, closeB, err := connectDocker(ctx, s, dockerOptions{network: o.DockerNetwork, gpus: o.GPUs}, log)
	if err != nil {
		return err
	}
	defer closeB()
	log.Info("Starting the controller", "stateDir", s.Dir(), "backend", b.Name(), "workers", o.Workers)
	err = runController(ctx, s, b, controllerOptions{workers: o.Workers, resync: o.Resync}, log)
	if err != nil && !errors.Is(err, ctx.Err()) {
		return err
	}
	log.Info("Stopped the controller")
	return nil
}
