package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// usage is printed for a missing or unknown subcommand.
const usage = `Usage: probe COMMAND [FLAGS]

Commands:
  inspect  print what this process sees as JSON (see "probe inspect -h")
  write    write a file: probe write --file PATH --data STR
  sleep    sleep: probe sleep [--ignore-term] DURATION
  exit     exit with a code: probe exit CODE
  serve    answer TCP connections with a line: probe serve --port N
  run      chain inspect, writes, a return-code file, sleep and exit
`

// exitError ends the program with a chosen code and no further message.
type exitError struct{ code int }

// Error describes the code.
func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches one command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	commands := map[string]func([]string, io.Writer) error{
		"inspect": cmdInspect,
		"write":   cmdWrite,
		"sleep":   cmdSleep,
		"exit":    cmdExit,
		"serve":   cmdServe,
		"run":     cmdRun,
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "probe: unknown command %q\n%s", args[0], usage)
		return 2
	}
	err := cmd(args[1:], stdout)
	var exit exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.code
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "probe %s: %v\n", args[0], err)
		return 1
	}
}

// newFlags returns a flag set for one command that reports its errors
// through the returned error.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("probe "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

// cmdInspect prints the inspection report and optionally stores it.
func cmdInspect(args []string, stdout io.Writer) error {
	fs := newFlags("inspect")
	var opts inspectOptions
	opts.bind(fs)
	out := fs.String("out", "", "also write the JSON report to `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return emit(inspect(opts), stdout, *out)
}

// emit prints the report as indented JSON and writes it to file unless
// file is empty.
func emit(rep any, stdout io.Writer, file string) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	data = append(data, '\n')
	if _, err := stdout.Write(data); err != nil {
		return fmt.Errorf("print report: %w", err)
	}
	if file == "" {
		return nil
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return fmt.Errorf("store report: %w", err)
	}
	return nil
}
