package report

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Report is what one probe inspection observed from inside its process.
type Report struct {
	// Time is when the inspection started.
	Time time.Time `json:"time"`
	// Hostname is the kernel host name of the process's UTS namespace.
	Hostname string `json:"hostname"`
	// PID is the probe's process ID (1 when it is a container's first process).
	PID int `json:"pid"`
	// UID and GID are the real user and group IDs.
	UID int `json:"uid"`
	GID int `json:"gid"`
	// Groups are the supplementary group IDs.
	Groups []int `json:"groups"`
	// Cwd is the working directory.
	Cwd string `json:"cwd"`
	// Env is the whole environment.
	Env map[string]string `json:"env"`
	// Root describes the workspace root, when one was given.
	Root *Root `json:"root,omitempty"`
	// Startup holds the root's startup/ directory and, if it has one, its
	// first subdirectory.
	Startup []Path `json:"startup,omitempty"`
	// Local holds the root's local/ directory and its first subdirectory.
	Local []Path `json:"local,omitempty"`
	// JobDir describes the job directory, when one was given.
	JobDir *Path `json:"jobDir,omitempty"`
	// Checks describe further directories asked for on the command line.
	Checks []Path `json:"checks,omitempty"`
	// Process holds the security fields of /proc/self/status.
	Process Process `json:"process"`
	// Sockets tells which well-known runtime and credential paths exist.
	Sockets []Socket `json:"sockets"`
	// Connect is the result of the TCP connection attempt, when one was asked.
	Connect *Connect `json:"connect,omitempty"`
	// Fill is the result of the disk-filling test, when one was asked.
	Fill *Fill `json:"fill,omitempty"`
	// Errors lists what the probe could not inspect.
	Errors []string `json:"errors,omitempty"`
}

// Path describes one file system path and whether the process can write in it.
type Path struct {
	// Path is the absolute path inspected.
	Path string `json:"path"`
	// Exists is false when the path could not be found.
	Exists bool `json:"exists"`
	// IsDir is true for directories.
	IsDir bool `json:"isDir,omitempty"`
	// Mode is the permission bits with setuid, setgid and sticky, as four
	// octal digits ("1777", "0755").
	Mode string `json:"mode,omitempty"`
	// UID and GID own the path.
	UID int `json:"uid"`
	GID int `json:"gid"`
	// Mount is the mount the path lives on.
	Mount *Mount `json:"mount,omitempty"`
	// Write is the outcome of creating and removing a file in the directory.
	Write Attempt `json:"write"`
}

// Attempt is the outcome of one operation.
type Attempt struct {
	// OK is true when the operation succeeded.
	OK bool `json:"ok"`
	// Errno names the system error ("EROFS", "EACCES", "ENOSPC"), if any.
	Errno string `json:"errno,omitempty"`
	// Error is the full error text, if any.
	Error string `json:"error,omitempty"`
}

// Mount is one entry of /proc/self/mountinfo.
type Mount struct {
	// MountPoint is where the file system is mounted.
	MountPoint string `json:"mountPoint"`
	// FSType is the file system type ("tmpfs", "overlay").
	FSType string `json:"fsType"`
	// Source is the mount source.
	Source string `json:"source"`
	// Options are the per-mount options ("ro", "nosuid").
	Options []string `json:"options"`
	// SuperOptions are the file system's options ("size=65536k", "mode=1777").
	SuperOptions []string `json:"superOptions"`
	// ReadOnly is true when the per-mount options contain "ro".
	ReadOnly bool `json:"readOnly"`
}

// Root describes the workspace root directory.
type Root struct {
	Path
	// Sticky is true when the sticky bit is set.
	Sticky bool `json:"sticky"`
	// MkdirName is the directory the probe tried to create in the root.
	MkdirName string `json:"mkdirName"`
	// Mkdir is the outcome of creating MkdirName; the probe removes the
	// directory again if it created it.
	Mkdir Attempt `json:"mkdir"`
	// Entries are the names in the root, sorted.
	Entries []Entry `json:"entries"`
}

// Entry is one name in a directory listing.
type Entry struct {
	// Name is the entry's base name.
	Name string `json:"name"`
	// Mode is the entry's mode as four octal digits.
	Mode string `json:"mode"`
	// IsDir is true for directories.
	IsDir bool `json:"isDir"`
}

// Process holds the security-relevant fields of /proc/self/status.
type Process struct {
	// CapInh, CapPrm, CapEff, CapBnd and CapAmb are the capability sets as
	// the kernel prints them: 16 hex digits.
	CapInh string `json:"capInh"`
	CapPrm string `json:"capPrm"`
	CapEff string `json:"capEff"`
	CapBnd string `json:"capBnd"`
	CapAmb string `json:"capAmb"`
	// NoNewPrivs is 1 when the no_new_privs bit is set.
	NoNewPrivs int `json:"noNewPrivs"`
	// Seccomp is 0 (off), 1 (strict) or 2 (filter).
	Seccomp int `json:"seccomp"`
}

// Socket tells whether a path exists.
type Socket struct {
	// Path is the path looked at.
	Path string `json:"path"`
	// Exists is true when stat found it.
	Exists bool `json:"exists"`
}

// Connect is the outcome of a TCP connection attempt.
type Connect struct {
	// Address is the host:port dialed.
	Address string `json:"address"`
	Attempt
	// Reply is the first line the peer sent, if any arrived within a second.
	Reply string `json:"reply,omitempty"`
	// Millis is how long the attempt took.
	Millis int64 `json:"millis"`
}

// Fill is the outcome of writing a large file into the workspace root.
type Fill struct {
	// File is the file written; it is removed afterwards.
	File string `json:"file"`
	// Requested is the number of bytes the probe tried to write.
	Requested int64 `json:"requested"`
	// Written is the number of bytes the kernel accepted.
	Written int64 `json:"written"`
	// Write is the outcome; an error names where writing stopped.
	Write Attempt `json:"write"`
	// Removed is true when the file was deleted afterwards.
	Removed bool `json:"removed"`
}

// Decode reads one report.
func Decode(r io.Reader) (*Report, error) {
	var rep Report
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		return nil, fmt.Errorf("decode probe report: %w", err)
	}
	return &rep, nil
}

// Lookup returns the inspected path named p, searching the root, startup/,
// local/, the job directory and the extra checks.
func (r *Report) Lookup(p string) (Path, bool) {
	var all []Path
	if r.Root != nil {
		all = append(all, r.Root.Path)
	}
	all = append(all, r.Startup...)
	all = append(all, r.Local...)
	if r.JobDir != nil {
		all = append(all, *r.JobDir)
	}
	all = append(all, r.Checks...)
	for _, c := range all {
		if c.Path == p {
			return c, true
		}
	}
	return Path{}, false
}
