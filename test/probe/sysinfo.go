package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/fljob-dev/fljob/test/probe/report"
)

// formatMode prints the permission, setuid, setgid and sticky bits of a raw
// st_mode as four octal digits, the way chmod takes them ("1777").
func formatMode(mode uint32) string {
	return fmt.Sprintf("%04o", mode&0o7777)
}

// unixMode converts Go's portable file mode back to the kernel's bits.
func unixMode(m fs.FileMode) uint32 {
	bits := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		bits |= syscall.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		bits |= syscall.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		bits |= syscall.S_ISVTX
	}
	return bits
}

// modeOf returns the kernel mode bits of fi, read from its stat data when
// there is some.
func modeOf(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Mode
	}
	return unixMode(fi.Mode())
}

// errnoNames names the errors the probe expects to meet.
var errnoNames = map[syscall.Errno]string{
	syscall.EACCES:       "EACCES",
	syscall.EPERM:        "EPERM",
	syscall.EROFS:        "EROFS",
	syscall.ENOSPC:       "ENOSPC",
	syscall.EDQUOT:       "EDQUOT",
	syscall.ENOENT:       "ENOENT",
	syscall.EEXIST:       "EEXIST",
	syscall.ENOTDIR:      "ENOTDIR",
	syscall.EISDIR:       "EISDIR",
	syscall.EINVAL:       "EINVAL",
	syscall.ECONNREFUSED: "ECONNREFUSED",
	syscall.ETIMEDOUT:    "ETIMEDOUT",
	syscall.EHOSTUNREACH: "EHOSTUNREACH",
	syscall.ENETUNREACH:  "ENETUNREACH",
}

// errnoName names the system error inside err, or returns "" when err
// carries none.
func errnoName(err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return ""
	}
	if name, ok := errnoNames[errno]; ok {
		return name
	}
	return fmt.Sprintf("errno %d", int(errno))
}

// attempt turns the outcome of an operation into its report form.
func attempt(err error) report.Attempt {
	if err == nil {
		return report.Attempt{OK: true}
	}
	return report.Attempt{Errno: errnoName(err), Error: err.Error()}
}

// parseMountinfo reads the mount table in the format of
// /proc/<pid>/mountinfo (proc(5)), in the kernel's order.
func parseMountinfo(r io.Reader) ([]report.Mount, error) {
	var mounts []report.Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		m, err := parseMountLine(text)
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", line, err)
		}
		mounts = append(mounts, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return mounts, nil
}

// parseMountLine parses one mountinfo line: six fixed fields, optional
// fields ended by "-", then type, source and super options.
func parseMountLine(text string) (report.Mount, error) {
	fields := strings.Fields(text)
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || len(fields) < sep+3 {
		return report.Mount{}, fmt.Errorf("malformed entry %q", text)
	}
	m := report.Mount{
		MountPoint: unescapeMount(fields[4]),
		FSType:     fields[sep+1],
		Source:     unescapeMount(fields[sep+2]),
		Options:    strings.Split(fields[5], ","),
	}
	if len(fields) > sep+3 {
		m.SuperOptions = strings.Split(fields[sep+3], ",")
	}
	for _, o := range m.Options {
		if o == "ro" {
			m.ReadOnly = true
		}
	}
	return m, nil
}

// unescapeMount undoes the kernel's octal escapes of space, tab, newline
// and backslash in mount paths ("\040").
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// findMount returns the mount that holds path: the longest mount point that
// is path or one of its parents, and of equal ones the last mounted, which
// hides the others. path must be absolute, clean and free of symbolic links.
func findMount(mounts []report.Mount, path string) (report.Mount, bool) {
	best := -1
	for i, m := range mounts {
		if !under(path, m.MountPoint) {
			continue
		}
		if best < 0 || len(m.MountPoint) >= len(mounts[best].MountPoint) {
			best = i
		}
	}
	if best < 0 {
		return report.Mount{}, false
	}
	return mounts[best], true
}

// under reports whether path is dir or lies beneath it.
func under(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// resolve makes p absolute and resolves its symbolic links, so that it
// compares with mount points.
func resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("absolute path of %s: %w", p, err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", abs, err)
	}
	return resolved, nil
}

// statusFields are the /proc/<pid>/status fields the probe reports.
var statusFields = []string{
	"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
}

// parseStatus reads the capability sets, NoNewPrivs and Seccomp from the
// format of /proc/<pid>/status. It fails when any of them is missing.
func parseStatus(r io.Reader) (report.Process, error) {
	var p report.Process
	hex := map[string]*string{
		"CapInh": &p.CapInh, "CapPrm": &p.CapPrm, "CapEff": &p.CapEff,
		"CapBnd": &p.CapBnd, "CapAmb": &p.CapAmb,
	}
	num := map[string]*int{"NoNewPrivs": &p.NoNewPrivs, "Seccomp": &p.Seccomp}
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		if dst, ok := hex[key]; ok {
			if _, err := strconv.ParseUint(value, 16, 64); err != nil {
				return p, fmt.Errorf("status field %s: %w", key, err)
			}
			*dst, seen[key] = value, true
		}
		if dst, ok := num[key]; ok {
			n, err := strconv.Atoi(value)
			if err != nil {
				return p, fmt.Errorf("status field %s: %w", key, err)
			}
			*dst, seen[key] = n, true
		}
	}
	if err := sc.Err(); err != nil {
		return p, fmt.Errorf("read status: %w", err)
	}
	var missing []string
	for _, k := range statusFields {
		if !seen[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return p, fmt.Errorf("status lacks %s", strings.Join(missing, ", "))
	}
	return p, nil
}
