package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/backends/docker"
	"github.com/fljob-dev/fljob/controllers"
	"github.com/fljob-dev/fljob/localstore"
)

// Timings of run.
const (
	// logDrain is how long run waits for the last log lines of finished
	// jobs before it prints the summary.
	logDrain = 10 * time.Second
	// progressTick bounds the wait between two looks at the jobs.
	progressTick = time.Second
)

// exitInterrupted is the exit code of a run stopped by a signal.
const exitInterrupted = 130

type runOptions struct {
	files   []string
	timeout time.Duration
	logs    bool
	docker  dockerOptions
	workers int
}

func newRunCommand(g *globals) *cobra.Command {
	o := runOptions{}
	cmd := &cobra.Command{
		Use:   "run -f FILENAME",
		Short: "Apply FLJobs, run them to their end with their logs, and summarize",
		Long: `Run applies the manifests (FLJobs and Secrets), runs the FLJobs on the Docker
Engine that DOCKER_HOST names, streams their output with a prefix per job and
their progress, waits until every one finished, and prints a summary. It
exits 1 when an FLJob failed.

It embeds a controller unless "fljob operator" already runs on the same
store. Interrupted, it leaves the FLJobs as they are: "fljob run" or
"fljob operator" finishes them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runJobs(cmd, g, o) },
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "filename", "f", nil, "Manifest file or directory; - reads standard input.")
	f.DurationVar(&o.timeout, "timeout", 0, "Fail when the FLJobs have not finished after this long; 0 waits forever.")
	f.BoolVar(&o.logs, "logs", true, "Stream the jobs' output.")
	f.StringVar(&o.docker.network, "docker-network", docker.DefaultNetwork, "Docker network the jobs join.")
	f.StringSliceVar(&o.docker.gpus, "gpus", nil, "Ids of the host's GPUs that jobs may use.")
	f.IntVar(&o.workers, "workers", controllers.DefaultWorkers, "FLJobs the embedded controller reconciles at once.")
	return cmd
}

func runJobs(cmd *cobra.Command, g *globals, o runOptions) error {
	ctx := cmd.Context()
	s, err := g.openStore()
	if err != nil {
		return err
	}
	objs, err := g.load(cmd, s, o.files)
	if err != nil {
		return err
	}
	if !hasFLJob(objs) {
		return errNoObjects
	}
	log := g.logger()
	b, closeB, err := connectDocker(ctx, s, o.docker, log)
	if err != nil {
		return err
	}
	defer closeB()
	out := &lineWriter{w: g.stdout}
	jobs, err := applyObjects(ctx, s, objs, false, out, g.stderr)
	if err != nil {
		return err
	}

	stopController, err := startController(ctx, g, s, b, o)
	if err != nil {
		return err
	}
	waitCtx := ctx
	if o.timeout > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	t := newTracker(s, b, jobs, out, o.logs)
	final, waitErr := t.run(waitCtx)
	stopController()
	printSummary(g.stdout, final)
	switch {
	case ctx.Err() != nil:
		return &exitError{code: exitInterrupted, err: errors.New(
			"interrupted: the FLJobs keep their state; \"fljob run\" or \"fljob operator\" finishes them")}
	case waitErr != nil:
		return waitErr
	}
	return failedError(final)
}

func hasFLJob(objs []*object) bool {
	for _, o := range objs {
		if o.fljob != nil {
			return true
		}
	}
	return false
}

// startController runs a controller on the store unless one runs already,
// and returns the function that stops it.
func startController(ctx context.Context, g *globals, s *localstore.Store, b backends.Backend,
	o runOptions) (func(), error) {
	release, err := s.LockController()
	if errors.Is(err, localstore.ErrControllerRunning) {
		fmt.Fprintf(g.stderr, "Using the controller that already runs on %s (pid %d)\n", s.Dir(), s.ControllerPID())
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := runController(cctx, s, b, controllerOptions{workers: o.workers,
			resync: controllers.DefaultResync}, g.logger()); err != nil {
			fmt.Fprintf(g.stderr, "error: controller: %s\n", oneLine(err.Error()))
		}
	}()
	return func() {
		cancel()
		<-done
		release()
	}, nil
}

// jobResult is what run last saw of one FLJob.
type jobResult struct {
	key  backends.Key
	job  *fljobv1.FLJob
	gone bool
}

// failed reports whether the FLJob did not succeed; one deleted after it
// succeeded (a TTL of 0) did.
func (r jobResult) failed() bool {
	return r.job.Status.Phase != fljobv1.PhaseSucceeded
}

// tracker follows FLJobs to their end: it prints their phase changes and
// streams their logs.
type tracker struct {
	s       *localstore.Store
	logs    backends.LogReader
	out     *lineWriter
	follow  bool
	width   int
	results []jobResult
	seen    map[backends.Key]string
	logging map[backends.Ref]bool
	logWG   sync.WaitGroup
}

func newTracker(s *localstore.Store, b backends.LogReader, jobs []*fljobv1.FLJob, out *lineWriter, follow bool) *tracker {
	t := &tracker{s: s, logs: b, out: out, follow: follow,
		seen: map[backends.Key]string{}, logging: map[backends.Ref]bool{}}
	for _, j := range jobs {
		k := backends.Key{Namespace: j.Namespace, Name: j.Name}
		t.results = append(t.results, jobResult{key: k, job: j})
		t.width = max(t.width, len(j.Name))
	}
	return t
}

// run follows the jobs until all finished or ctx ends, and returns what
// it saw last.
func (t *tracker) run(ctx context.Context) ([]jobResult, error) {
	logCtx, stopLogs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLogs()
	kick := make(chan struct{}, 1)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go t.s.Watch(wctx, func(backends.Key) { //nolint:errcheck // the ticker below covers a failed watch
		select {
		case kick <- struct{}{}:
		default:
		}
	})
	tick := time.NewTicker(progressTick)
	defer tick.Stop()
	for {
		done, err := t.look(ctx, logCtx)
		if err != nil {
			return t.results, err
		}
		if done {
			break
		}
		select {
		case <-ctx.Done():
			stopLogs()
			t.logWG.Wait()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return t.results, fmt.Errorf("timed out waiting for %s to finish", strings.Join(t.pending(), ", "))
			}
			return t.results, nil
		case <-kick:
		case <-tick.C:
		}
	}
	drained := make(chan struct{})
	go func() { t.logWG.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(logDrain):
		stopLogs()
		<-drained
	}
	return t.results, nil
}

// look reads every job once, reports changes, starts log streams, and says
// whether all finished.
func (t *tracker) look(ctx, logCtx context.Context) (bool, error) {
	type change struct{ name, phase, msg string }
	var changes []change
	for i := range t.results {
		r := &t.results[i]
		if r.gone {
			continue
		}
		job, err := t.s.Get(ctx, r.key)
		if errors.Is(err, controllers.ErrNotFound) {
			r.gone = true
			changes = append(changes, change{r.key.Name, "Deleted", "the FLJob was deleted"})
			continue
		}
		if err != nil {
			return false, err
		}
		r.job = job
		t.startLogs(logCtx, job)
		state := string(phaseOf(job)) + "|" + job.Status.Message
		if t.seen[r.key] != state && job.Status.Phase != "" {
			t.seen[r.key] = state
			changes = append(changes, change{job.Name, string(phaseOf(job)), job.Status.Message})
		}
	}
	finished := len(t.results) - len(t.pending())
	for _, c := range changes {
		t.out.line(fmt.Sprintf("> %-*s  %-10s %s  [%d/%d finished]", t.width, c.name, c.phase, c.msg,
			finished, len(t.results)))
	}
	return finished == len(t.results), nil
}

// startLogs streams the output of the job's current attempt once its
// process started.
func (t *tracker) startLogs(ctx context.Context, job *fljobv1.FLJob) {
	wl := job.Status.Workload
	if !t.follow || wl == nil || wl.Attempt == 0 || job.Status.Phase == fljobv1.PhasePending && wl.ID == "" {
		return
	}
	ref := backends.Ref{Key: backends.Key{Namespace: job.Namespace, Name: job.Name}, Attempt: wl.Attempt}
	if t.logging[ref] {
		return
	}
	t.logging[ref] = true
	prefix := fmt.Sprintf("%-*s | ", t.width, job.Name)
	t.logWG.Go(func() {
		w := &prefixWriter{out: t.out, prefix: prefix}
		//nolint:errcheck // a job without a container has no logs to show
		t.logs.Logs(ctx, ref, backends.LogOptions{Follow: true}, w)
		w.flush()
	})
}

func (t *tracker) pending() []string {
	var names []string
	for _, r := range t.results {
		if !r.gone && (r.job == nil || !r.job.Status.Phase.Finished()) {
			names = append(names, r.key.Name)
		}
	}
	return names
}

// printSummary prints one row per FLJob and where its results are.
func printSummary(w io.Writer, results []jobResult) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tSITE\tPHASE\tEXIT\tRC\tDURATION\tJOB DIRECTORY")
	for _, r := range results {
		j := r.job
		phase := string(j.Status.Phase)
		if r.gone {
			phase = "Deleted"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.Name, j.Spec.Role, j.Spec.Site, orNone(phase),
			intOrNone(j.Status.ExitCode), intOrNone(j.Status.ReturnCode), durationText(j), resultsText(j))
	}
	tw.Flush()
}

func durationText(j *fljobv1.FLJob) string {
	st := j.Status
	if st.StartTime == nil || st.CompletionTime == nil {
		return "<none>"
	}
	return st.CompletionTime.Sub(st.StartTime.Time).Round(100 * time.Millisecond).String()
}

// failedError names the FLJobs that did not succeed, or is nil.
func failedError(results []jobResult) error {
	var failed []string
	for _, r := range results {
		if r.failed() {
			reason := r.job.Status.Reason
			if r.gone {
				reason = "deleted"
			}
			failed = append(failed, fmt.Sprintf("%s (%s)", r.key.Name, orNone(reason)))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d FLJobs failed: %s", len(failed), len(results), strings.Join(failed, ", "))
}

// lineWriter writes whole lines from several goroutines without
// interleaving them.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lineWriter) line(s string) {
	l.Write([]byte(s + "\n")) //nolint:errcheck // progress output is best effort
}

// prefixWriter prefixes every line written to it.
type prefixWriter struct {
	out    *lineWriter
	prefix string
	buf    bytes.Buffer
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf.Write(b)
	for {
		i := bytes.IndexByte(p.buf.Bytes(), '\n')
		if i < 0 {
			// An incomplete line waits for its end.
			return len(b), nil
		}
		line := string(p.buf.Next(i + 1))
		p.out.line(p.prefix + strings.TrimRight(line, "\r\n"))
	}
}

func (p *prefixWriter) flush() {
	if p.buf.Len() > 0 {
		p.out.line(p.prefix + p.buf.String())
		p.buf.Reset()
	}
}
