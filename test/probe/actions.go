package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cmdWrite writes one file.
func cmdWrite(args []string, _ io.Writer) error {
	fs := newFlags("write")
	file := fs.String("file", "", "`path` of the file to write")
	data := fs.String("data", "", "content to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" || fs.NArg() > 0 {
		return errors.New("want --file PATH [--data STR] and no arguments")
	}
	return writeFile(*file, *data)
}

// writeFile writes data to path, replacing what was there.
func writeFile(path, data string) error {
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		return fmt.Errorf("write file: %w", err)
	}
	return nil
}

// cmdSleep sleeps for the duration given as the only argument.
func cmdSleep(args []string, _ io.Writer) error {
	fs := newFlags("sleep")
	ignoreTerm := fs.Bool("ignore-term", false, "keep sleeping on SIGTERM (to test kill)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one DURATION argument")
	}
	d, err := time.ParseDuration(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("parse duration: %w", err)
	}
	return sleep(d, *ignoreTerm)
}

// sleep waits for d. SIGTERM and SIGINT end the wait with exit code
// 128+signal, as a shell would report, unless ignoreTerm keeps the process
// asleep on SIGTERM. A container's first process has no default signal
// handling, so without this it would sleep through "docker stop".
func sleep(d time.Duration, ignoreTerm bool) error {
	sigs := make(chan os.Signal, 1)
	if ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
		signal.Notify(sigs, syscall.SIGINT)
	} else {
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	}
	defer signal.Stop(sigs)
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case s := <-sigs:
		fmt.Fprintf(os.Stderr, "probe: received %v while sleeping\n", s)
		return exitError{code: 128 + int(s.(syscall.Signal))}
	}
}

// cmdExit exits with the code given as the only argument.
func cmdExit(args []string, _ io.Writer) error {
	if len(args) != 1 {
		return errors.New("want one CODE argument")
	}
	code, err := parseCode(args[0])
	if err != nil {
		return err
	}
	return exitError{code: code}
}

// parseCode parses a process exit code.
func parseCode(s string) (int, error) {
	code, err := strconv.Atoi(s)
	if err != nil || code < 0 || code > 255 {
		return 0, fmt.Errorf("exit code %q is not in 0..255", s)
	}
	return code, nil
}

// cmdServe answers TCP connections with one line until it has served
// --count of them or receives SIGTERM.
func cmdServe(args []string, _ io.Writer) error {
	fs := newFlags("serve")
	port := fs.Int("port", 8002, "TCP `port` to listen on")
	reply := fs.String("reply", "", "line to send (default: \"probe <hostname>\")")
	count := fs.Int("count", 0, "exit after this many connections (0: never)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *reply == "" {
		host, _ := os.Hostname()
		*reply = "probe " + host
	}
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", *port))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(os.Stderr, "probe: listening on %v\n", ln.Addr())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		ln.Close()
	}()
	return serve(ln, *reply, *count)
}

// serve writes reply and a newline to each connection accepted on ln.
// It returns nil when ln is closed or count connections were served.
func serve(ln net.Listener, reply string, count int) error {
	defer ln.Close()
	for n := 0; count == 0 || n < count; n++ {
		conn, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		_, werr := io.WriteString(conn, reply+"\n")
		if err := errors.Join(werr, conn.Close()); err != nil {
			fmt.Fprintf(os.Stderr, "probe: reply to %v: %v\n", conn.RemoteAddr(), err)
		}
	}
	return nil
}

// runOptions are the steps of "probe run", executed in field order.
type runOptions struct {
	inspect    inspectOptions
	doInspect  bool
	inspectOut string
	writes     stringList
	rcFile     string
	rc         int
	sleep      time.Duration
	ignoreTerm bool
	exit       int
}

// cmdRun inspects, writes files, writes the return-code file, sleeps and
// exits, each step only when asked for. The first failing step ends the run
// with code 1.
func cmdRun(args []string, stdout io.Writer) error {
	fs := newFlags("run")
	var o runOptions
	o.inspect.bind(fs)
	fs.BoolVar(&o.doInspect, "inspect", false, "print the inspection report")
	fs.StringVar(&o.inspectOut, "inspect-out", "",
		"print the report and also write it to `file` (implies --inspect)")
	fs.Var(&o.writes, "write", "write `path=data` (repeatable)")
	fs.StringVar(&o.rcFile, "rc-file", "", "write the --rc code to this `file` (_process_rc.txt)")
	fs.IntVar(&o.rc, "rc", 0, "code written to --rc-file")
	fs.DurationVar(&o.sleep, "sleep", 0, "sleep this long before exiting")
	fs.BoolVar(&o.ignoreTerm, "ignore-term", false, "keep sleeping on SIGTERM")
	fs.IntVar(&o.exit, "exit", 0, "exit `code`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.exit < 0 || o.exit > 255 {
		return fmt.Errorf("exit code %d is not in 0..255", o.exit)
	}
	return o.run(stdout)
}

// run executes the steps.
func (o *runOptions) run(stdout io.Writer) error {
	if o.doInspect || o.inspectOut != "" {
		if err := emit(inspect(o.inspect), stdout, o.inspectOut); err != nil {
			return err
		}
	}
	for _, w := range o.writes {
		path, data, ok := strings.Cut(w, "=")
		if !ok || path == "" {
			return fmt.Errorf("--write %q is not PATH=DATA", w)
		}
		if err := writeFile(path, data); err != nil {
			return err
		}
	}
	if o.rcFile != "" {
		if err := writeFile(o.rcFile, strconv.Itoa(o.rc)); err != nil {
			return fmt.Errorf("return code file: %w", err)
		}
	}
	if o.sleep > 0 {
		if err := sleep(o.sleep, o.ignoreTerm); err != nil {
			return err
		}
	}
	if o.exit != 0 {
		return exitError{code: o.exit}
	}
	return nil
}
