package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/spf13/cobra"

	"github.com/fljob-dev/fljob/localstore"
)

// errReported says the command already printed why it failed.
var errReported = errors.New("reported")

// exitError ends the program with a code after printing its error, if any.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code. Errors are
// printed as one line, prefixed "error: ".
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if !errors.Is(err, errReported) {
		fmt.Fprintf(stderr, "error: %s\n", oneLine(err.Error()))
	}
	return code
}

// oneLine folds a message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// globals are the flags every command shares.
type globals struct {
	stateDir  string
	namespace string
	verbosity int
	stdout    io.Writer
	stderr    io.Writer
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "fljob",
		Short: "Run NVIDIA FLARE job processes as FLJobs, on Docker or Kubernetes",
		Long: `fljob runs FLJobs, one NVIDIA FLARE job process each (a server job or a
client job), under one isolation model.

On a single host it keeps FLJobs in a local store and runs them as Docker
containers; "fljob run -f DIR" applies manifests, runs them to their end and
summarizes. "fljob operator" is the long-running controller, also against a
Kubernetes cluster.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.stateDir, "state-dir", "",
		"Directory of the local store (default $FLJOB_STATE_DIR, else $XDG_STATE_HOME/fljob, else ~/.local/state/fljob).")
	pf.StringVarP(&g.namespace, "namespace", "n", "default", "Namespace of the FLJobs.")
	pf.IntVarP(&g.verbosity, "v", "v", -1, "Log verbosity of the embedded controller: -1 errors only, 0 info, 2 changes.")
	root.AddCommand(
		newRunCommand(g), newApplyCommand(g), newGetCommand(g), newDescribeCommand(g),
		newLogsCommand(g), newDeleteCommand(g), newWaitCommand(g), newOperatorCommand(g),
	)
	return root
}

// openStore opens the local store of --state-dir or the default one.
func (g *globals) openStore() (*localstore.Store, error) {
	dir := g.stateDir
	if dir == "" {
		var err error
		if dir, err = localstore.DefaultDir(); err != nil {
			return nil, err
		}
	}
	return localstore.Open(dir, localstore.Options{Log: g.logger().WithName("store")})
}

// logger writes log lines to stderr up to the configured verbosity;
// errors always.
func (g *globals) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		if prefix != "" {
			fmt.Fprintf(g.stderr, "%s: %s\n", prefix, args)
			return
		}
		fmt.Fprintln(g.stderr, args)
	}, funcr.Options{Verbosity: g.verbosity})
}
