package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/fljob-dev/fljob/test/probe/report"
)

// defaultRoot is the workspace root NVFlare's launchers give a job process.
const defaultRoot = "/var/tmp/nvflare/workspace"

// runtimePaths are sockets and credentials a job process should not see.
var runtimePaths = []string{
	"/var/run/docker.sock",
	"/run/docker.sock",
	"/run/containerd/containerd.sock",
	"/var/run/secrets/kubernetes.io/serviceaccount/token",
}

// fillChunk is the size of each write of the disk-filling test.
const fillChunk = 1 << 20

// inspectOptions says what an inspection looks at.
type inspectOptions struct {
	root           string
	jobDir         string
	checkDirs      stringList
	mkdirName      string
	connect        string
	connectTimeout time.Duration
	fillRoot       int64
}

// bind registers the inspection flags on fs.
func (o *inspectOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.root, "root", defaultRoot, "workspace `dir` to inspect (\"\" skips it)")
	fs.StringVar(&o.jobDir, "job-dir", "", "job `dir` whose writability to test")
	fs.Var(&o.checkDirs, "check-dir", "further `dir` to inspect (repeatable)")
	fs.StringVar(&o.mkdirName, "mkdir", "snapshot-storage",
		"directory `name` to create (and remove) in the root")
	fs.StringVar(&o.connect, "connect", "", "TCP `host:port` to dial")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 5*time.Second, "dial timeout")
	fs.Int64Var(&o.fillRoot, "fill-root", 0,
		"write this many `bytes` into the root to find its size limit, then remove them")
}

// inspector gathers a report, collecting the errors it meets on the way.
type inspector struct {
	opts   inspectOptions
	mounts []report.Mount
	rep    *report.Report
}

// inspect observes the process and its file systems as opts ask.
func inspect(opts inspectOptions) *report.Report {
	in := &inspector{opts: opts, rep: &report.Report{Time: time.Now().UTC(), PID: os.Getpid()}}
	in.identity()
	in.process()
	if err := in.loadMounts(); err != nil {
		in.fail(err)
	}
	if opts.root != "" {
		in.root()
		in.rep.Startup = in.dirAndChild(filepath.Join(opts.root, "startup"))
		in.rep.Local = in.dirAndChild(filepath.Join(opts.root, "local"))
	}
	if opts.jobDir != "" {
		p := in.path(opts.jobDir)
		in.rep.JobDir = &p
	}
	for _, d := range opts.checkDirs {
		in.rep.Checks = append(in.rep.Checks, in.path(d))
	}
	for _, p := range runtimePaths {
		_, err := os.Stat(p)
		in.rep.Sockets = append(in.rep.Sockets, report.Socket{Path: p, Exists: err == nil})
	}
	if opts.connect != "" {
		in.rep.Connect = dial(opts.connect, opts.connectTimeout)
	}
	if opts.root != "" && opts.fillRoot > 0 {
		in.rep.Fill = fill(filepath.Join(opts.root, fmt.Sprintf(".probe-fill-%d", os.Getpid())),
			opts.fillRoot)
	}
	return in.rep
}

// fail records something the probe could not inspect.
func (in *inspector) fail(err error) {
	in.rep.Errors = append(in.rep.Errors, err.Error())
}

// identity records who and where the process is.
func (in *inspector) identity() {
	r := in.rep
	r.UID, r.GID = os.Getuid(), os.Getgid()
	groups, err := os.Getgroups()
	if err != nil {
		in.fail(fmt.Errorf("get groups: %w", err))
	}
	r.Groups = append([]int{}, groups...)
	if r.Cwd, err = os.Getwd(); err != nil {
		in.fail(fmt.Errorf("get working directory: %w", err))
	}
	if r.Hostname, err = os.Hostname(); err != nil {
		in.fail(fmt.Errorf("get host name: %w", err))
	}
	r.Env = map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		r.Env[k] = v
	}
}

// process records capabilities, no_new_privs and seccomp.
func (in *inspector) process() {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		in.fail(fmt.Errorf("open status: %w", err))
		return
	}
	defer f.Close()
	p, err := parseStatus(f)
	if err != nil {
		in.fail(err)
	}
	in.rep.Process = p
}

// loadMounts reads the process's mount table.
func (in *inspector) loadMounts() error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("open mountinfo: %w", err)
	}
	defer f.Close()
	in.mounts, err = parseMountinfo(f)
	return err
}

// root inspects the workspace root: the directory itself, a directory
// created in it and its listing.
func (in *inspector) root() {
	root := &report.Root{Path: in.path(in.opts.root), MkdirName: in.opts.mkdirName}
	in.rep.Root = root
	if !root.Exists {
		return
	}
	if fi, err := os.Stat(in.opts.root); err == nil {
		root.Sticky = modeOf(fi)&syscall.S_ISVTX != 0
	}
	if root.MkdirName != "" {
		dir := filepath.Join(in.opts.root, root.MkdirName)
		err := os.Mkdir(dir, 0o755)
		root.Mkdir = attempt(err)
		if err == nil {
			if err := os.Remove(dir); err != nil {
				in.fail(fmt.Errorf("remove %s: %w", dir, err))
			}
		}
	}
	entries, err := os.ReadDir(in.opts.root)
	if err != nil {
		in.fail(fmt.Errorf("list root: %w", err))
	}
	root.Entries = []report.Entry{}
	for _, e := range entries {
		entry := report.Entry{Name: e.Name(), IsDir: e.IsDir()}
		if fi, err := e.Info(); err == nil {
			entry.Mode = formatMode(modeOf(fi))
		}
		root.Entries = append(root.Entries, entry)
	}
}

// dirAndChild inspects dir and, if it has any, its first subdirectory in
// name order.
func (in *inspector) dirAndChild(dir string) []report.Path {
	out := []report.Path{in.path(dir)}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		if e.IsDir() {
			return append(out, in.path(filepath.Join(dir, e.Name())))
		}
	}
	return out
}

// path inspects one path: existence, mode, owner, mount, and for a
// directory whether a file can be created in it.
func (in *inspector) path(p string) report.Path {
	out := report.Path{Path: p}
	fi, err := os.Stat(p)
	if err != nil {
		out.Write = attempt(err)
		return out
	}
	out.Exists, out.IsDir = true, fi.IsDir()
	out.Mode = formatMode(modeOf(fi))
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		out.UID, out.GID = int(st.Uid), int(st.Gid)
	}
	if resolved, err := resolve(p); err != nil {
		in.fail(err)
	} else if m, ok := findMount(in.mounts, resolved); ok {
		out.Mount = &m
	}
	if out.IsDir {
		out.Write = attempt(tryWrite(p))
	} else {
		out.Write = attempt(fmt.Errorf("write %s: %w", p, syscall.ENOTDIR))
	}
	return out
}

// tryWrite creates, writes and removes a file in dir.
func tryWrite(dir string) error {
	name := filepath.Join(dir, fmt.Sprintf(".probe-write-%d", os.Getpid()))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.WriteString("probe\n")
	cerr := f.Close()
	rerr := os.Remove(name)
	return errors.Join(werr, cerr, rerr)
}

// dial connects to addr and reads the first line the peer sends.
func dial(addr string, timeout time.Duration) *report.Connect {
	start := time.Now()
	c := &report.Connect{Address: addr}
	conn, err := net.DialTimeout("tcp", addr, timeout)
	c.Millis = time.Since(start).Milliseconds()
	c.Attempt = attempt(err)
	if err != nil {
		return c
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(time.Second)); err == nil {
		if line, err := bufio.NewReader(conn).ReadString('\n'); err == nil || line != "" {
			c.Reply = strings.TrimRight(line, "\n")
		}
	}
	return c
}

// fill writes up to size bytes into file, then removes it. A size limit on
// the file system shows as a short count and ENOSPC.
func fill(file string, size int64) *report.Fill {
	out := &report.Fill{File: file, Requested: size}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		out.Write = attempt(err)
		return out
	}
	buf := make([]byte, fillChunk)
	for out.Written < size && err == nil {
		n := min(int64(len(buf)), size-out.Written)
		var w int
		w, err = f.Write(buf[:n])
		out.Written += int64(w)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	out.Write = attempt(err)
	out.Removed = os.Remove(file) == nil
	return out
}

// stringList is a repeatable string flag.
type stringList []string

// String joins the values.
func (l *stringList) String() string { return strings.Join(*l, ",") }

// Set appends one value.
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}
