package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Process return codes, as NVFlare's JobReturnCode numbers them.
const (
	rcSuccess = 0
	rcFailed  = 1
	rcAborted = 9
	// rcUsage is the exit code of a bad command line; no rc file is written.
	rcUsage = 2
)

// rcFileName is the file in the job directory that carries the return code.
const rcFileName = "_process_rc.txt"

// defaultWorkspace is the workspace root NVFlare's launchers use.
const defaultWorkspace = "/var/tmp/nvflare/workspace"

// usage is printed for a missing or unknown role.
const usage = `Usage:
  fedavg server [--port 8002] [--clients 2] [--rounds 3] [--workspace DIR] [--job-dir DIR]
  fedavg client --server HOST:PORT --site NAME [--job-dir DIR] [--connect-timeout 60s]
Run "fedavg server -h" or "fedavg client -h" for all flags.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

// run parses the command line, runs the role until it ends or a signal
// aborts it, writes the return-code file and returns the exit code.
func run(args []string) int {
	if len(args) == 0 || (args[0] != "server" && args[0] != "client") {
		fmt.Fprint(os.Stderr, usage)
		return rcUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var (
		job    func(context.Context) error
		jobDir string
		log    *slog.Logger
		err    error
	)
	base := slog.New(slog.NewTextHandler(os.Stdout, nil))
	if args[0] == "server" {
		var cfg serverConfig
		cfg, err = parseServer(args[1:])
		jobDir, log = cfg.jobDir, base.With("role", "server", "job", cfg.jobID)
		job = func(ctx context.Context) error { return serve(ctx, cfg, log) }
	} else {
		var cfg clientConfig
		cfg, err = parseClient(args[1:])
		jobDir, log = cfg.jobDir, base.With("role", "client", "site", cfg.site)
		job = func(ctx context.Context) error {
			_, err := runClient(ctx, cfg, log)
			return err
		}
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "fedavg %s: %v\n", args[0], err)
		}
		return rcUsage
	}

	log.Info("Starting", "jobDir", jobDir)
	rc := rcSuccess
	if err := job(ctx); err != nil {
		rc = rcFailed
		if ctx.Err() != nil {
			rc = rcAborted
		}
		log.Error("Job failed", "rc", rc, "err", err)
	}
	if err := writeRC(jobDir, rc); err != nil {
		log.Error("Cannot write return code", "err", err)
		return rcFailed
	}
	log.Info("Finished", "rc", rc)
	return rc
}

// serve listens on the configured port and runs the server.
func serve(ctx context.Context, cfg serverConfig, log *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	_, err = runServer(ctx, ln, cfg, log)
	return err
}

// writeRC records the process's return code in the job directory.
func writeRC(jobDir string, rc int) error {
	name := filepath.Join(jobDir, rcFileName)
	if err := os.WriteFile(name, []byte(strconv.Itoa(rc)), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", rcFileName, err)
	}
	return nil
}

// parseServer reads the server role's flags.
func parseServer(args []string) (serverConfig, error) {
	fs := flag.NewFlagSet("fedavg server", flag.ContinueOnError)
	port := fs.Int("port", 8002, "TCP `port` to listen on")
	var cfg serverConfig
	fs.IntVar(&cfg.clients, "clients", 2, "number of clients to wait for")
	fs.IntVar(&cfg.rounds, "rounds", 3, "number of rounds")
	fs.StringVar(&cfg.workspace, "workspace", defaultWorkspace,
		"workspace root `dir` that receives snapshot-storage/ and jobs-storage/")
	fs.StringVar(&cfg.jobDir, "job-dir", "", "job `dir` for results (default: working directory)")
	fs.StringVar(&cfg.jobID, "job-id", "", "job ID (default: base name of the job directory)")
	fs.DurationVar(&cfg.registerWait, "register-timeout", 2*time.Minute,
		"how long to wait for all clients")
	fs.DurationVar(&cfg.roundTimeout, "round-timeout", time.Minute,
		"how long to wait for a client's update")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *port < 0 || *port > 65535 || cfg.clients < 1 || cfg.rounds < 1 {
		return cfg, errors.New("want --port in 0..65535, --clients and --rounds of at least 1")
	}
	cfg.listen = fmt.Sprintf(":%d", *port)
	var err error
	if cfg.jobDir, err = jobDirOrCwd(cfg.jobDir); err != nil {
		return cfg, err
	}
	if cfg.jobID == "" {
		cfg.jobID = filepath.Base(cfg.jobDir)
	}
	return cfg, nil
}

// parseClient reads the client role's flags.
func parseClient(args []string) (clientConfig, error) {
	fs := flag.NewFlagSet("fedavg client", flag.ContinueOnError)
	var cfg clientConfig
	fs.StringVar(&cfg.server, "server", "", "server `host:port`")
	fs.StringVar(&cfg.site, "site", "", "site `name`; seeds the local data")
	fs.StringVar(&cfg.jobDir, "job-dir", "", "job `dir` for results (default: working directory)")
	fs.DurationVar(&cfg.connectTimeout, "connect-timeout", time.Minute,
		"how long to retry connecting to the server")
	fs.DurationVar(&cfg.idleTimeout, "idle-timeout", 5*time.Minute,
		"how long to wait for the server's next message")
	fs.Float64Var(&cfg.lr, "lr", 0.05, "learning rate")
	fs.IntVar(&cfg.steps, "local-steps", 1, "gradient steps per round")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.server == "" || cfg.site == "" || cfg.steps < 1 {
		return cfg, errors.New("want --server HOST:PORT, --site NAME and --local-steps of at least 1")
	}
	var err error
	cfg.jobDir, err = jobDirOrCwd(cfg.jobDir)
	return cfg, err
}

// jobDirOrCwd returns dir made absolute, or the working directory when dir
// is empty: NVFlare starts job processes in their job directory.
func jobDirOrCwd(dir string) (string, error) {
	if dir == "" {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("job directory: %w", err)
	}
	return abs, nil
}
