package conformance

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/test/probe/report"
)

// verdict is how an observation compares with the model.
type verdict int

const (
	// holds: the invariant was observed to hold.
	holds verdict = iota
	// violated: the invariant was observed not to hold; the test fails.
	violated
	// gap: the invariant does not hold for a reason of the runtime that the
	// backend states (documented in docs/parity.md); the test does not fail.
	gap
	// notObserved: the scenario could not look (not run, not prepared).
	notObserved
	// info: not an invariant of the model, a difference worth knowing.
	info
)

// cell is what one column observed for one row.
type cell struct {
	text    string
	verdict verdict
}

// invariant is one row of docs/parity.md.
type invariant struct {
	id    string
	title string
	// by says which job and which report fields observe it.
	by    string
	check func(o *observed) cell
}

// invariants are the rows: every statement of the isolation model that a
// job process can observe, then observations outside the model.
var invariants = []invariant{
	{"root-mode", "Workspace root: mode 1777 with the sticky bit, size-limited tmpfs",
		"inspect: `root.mode`, `root.sticky`, `root.mount`", checkRootMode},
	{"root-writable", "Workspace root writable by the job user",
		"inspect: `root.write` (create and remove a file)", checkRootWritable},
	{"root-mkdir", "Storage directory creatable in the root",
		"inspect: `root.mkdir` (`snapshot-storage`)", checkRootMkdir},
	{"root-entries", "Root holds only `startup/`, `local/` and the job's directory",
		"inspect: `root.entries`", checkRootEntries},
	{"startup-ro", "`startup/` read-only", "inspect: `startup[0].write`",
		checkReadOnly("startup", "")},
	{"startup-sub-ro", "`startup/` subdirectory read-only", "inspect: `checks[startup/plain]`",
		checkReadOnly("startup", plainSub)},
	{"startup-mount-ro", "`startup/`: a file system mounted below it read-only (recursive)",
		"inspect: `checks[startup/mounted]` (a tmpfs mounted on the node)",
		checkReadOnly("startup", mountedSub)},
	{"local-ro", "`local/` read-only", "inspect: `local[0].write`", checkReadOnly("local", "")},
	{"local-sub-ro", "`local/` subdirectory read-only", "inspect: `checks[local/plain]`",
		checkReadOnly("local", plainSub)},
	{"local-mount-ro", "`local/`: a file system mounted below it read-only (recursive)",
		"inspect: `checks[local/mounted]` (a tmpfs mounted on the node)",
		checkReadOnly("local", mountedSub)},
	{"jobdir-writable", "Job directory writable", "inspect: `jobDir`", checkJobDirWritable},
	{"jobdir-persisted", "Job directory's files persist after the job",
		"inspect writes `persisted.txt`; the node reads it after the job; reader: " +
			"`checks[persisted.txt]`", checkPersisted},
	{"other-job", "No other job's directory visible",
		"inspect: `checks[other-job]`, `root.entries` (`other-job/` exists in the source)",
		checkOtherJob},
	{"uid-gid", "uid and gid from the FLJob (1001:1002)", "inspect: `uid`, `gid`, `groups`",
		checkUser},
	{"caps", "No capabilities", "inspect: `process.cap*` (/proc/self/status)", checkCaps},
	{"nnp", "no-new-privileges", "inspect: `process.noNewPrivs`", checkNoNewPrivs},
	{"seccomp", "Runtime's default seccomp profile", "inspect: `process.seccomp`", checkSeccomp},
	{"sa-token", "No service-account token", "inspect: `sockets` (token path)", checkToken},
	{"runtime-socket", "No container runtime socket", "inspect: `sockets` (docker, containerd)",
		checkRuntimeSockets},
	{"workdir", "Working directory is the job directory", "inspect: `cwd`", checkWorkDir},
	{"env", "Plain environment value present", "inspect: `env." + plainEnv + "`", checkEnv},
	{"secret", "Secret value present", "inspect: `env." + secretEnv + "` against the Secret",
		checkSecret},
	{"size-limit", "Root size limit enforced (16Mi)", "inspect: `fill` (writes 32 MiB)",
		checkSizeLimit},
	{"env-defaults", "`USER=fljob` and `HOME` = the workspace root when the FLJob sets neither",
		"inspect: `env.USER`, `env.HOME`", checkEnvDefaults},
	{"hostname", "Host name is the FLJob's name", "inspect: `hostname`", checkHostname},
	{"server-reachable", "Server reachable by its FLJob name from a client job",
		"client: `connect` to `<server FLJob name>:8002`", checkReachable},
	{"return-code", "NVFlare's return code (the job writes `0` into `_process_rc.txt`)",
		"inspect: `--rc-file`; the FLJob's `status.returnCode`; the file read on the node",
		checkReturnCode},
	{"missing-jobdir", "Job directory missing when the job starts",
		"missing: the site has no `conf-missing/`; `pendingDeadlineSeconds: 10`",
		checkMissingJobDir},
}

// checkAll evaluates every row and fails the test for each violated one.
func checkAll(t *testing.T, o *observed) map[string]cell {
	t.Helper()
	cells := make(map[string]cell, len(invariants))
	for _, inv := range invariants {
		c := inv.check(o)
		cells[inv.id] = c
		switch c.verdict {
		case violated:
			t.Errorf("%s: %s", inv.title, c.text)
		case gap:
			t.Logf("known gap: %s: %s", inv.title, c.text)
		}
	}
	return cells
}

func cellIf(ok bool, text string) cell {
	if ok {
		return cell{text: text, verdict: holds}
	}
	return cell{text: text, verdict: violated}
}

// mountText describes a mount as the job saw it: type, ro or rw, size.
func mountText(m *report.Mount) string {
	if m == nil {
		return "mount unknown"
	}
	mode := "rw"
	if m.ReadOnly {
		mode = "ro"
	}
	s := m.FSType + " " + mode
	for _, o := range m.SuperOptions {
		if strings.HasPrefix(o, "size=") {
			s += " " + o
		}
	}
	return s
}

// attemptText describes an attempt: "ok" or its errno.
func attemptText(a report.Attempt) string {
	switch {
	case a.OK:
		return "ok"
	case a.Errno != "":
		return a.Errno
	}
	return a.Error
}

func checkRootMode(o *observed) cell {
	r := o.inspect.Root
	if r == nil || !r.Exists {
		return cell{text: "no workspace root", verdict: violated}
	}
	sticky := "no sticky bit"
	if r.Sticky {
		sticky = "sticky"
	}
	return cellIf(r.Mode == "1777" && r.Sticky,
		fmt.Sprintf("%s (%s), %s", r.Mode, sticky, mountText(r.Mount)))
}

func checkRootWritable(o *observed) cell {
	r := o.inspect.Root
	if r == nil {
		return cell{text: "no workspace root", verdict: violated}
	}
	return cellIf(r.Write.OK, fmt.Sprintf("create a file as %d: %s", o.inspect.UID,
		attemptText(r.Write)))
}

func checkRootMkdir(o *observed) cell {
	r := o.inspect.Root
	if r == nil {
		return cell{text: "no workspace root", verdict: violated}
	}
	return cellIf(r.Mkdir.OK, fmt.Sprintf("mkdir %s: %s", r.MkdirName, attemptText(r.Mkdir)))
}

func rootNames(o *observed) []string {
	var names []string
	if o.inspect.Root != nil {
		for _, e := range o.inspect.Root.Entries {
			n := e.Name
			if e.IsDir {
				n += "/"
			}
			names = append(names, n)
		}
	}
	return names
}

func checkRootEntries(o *observed) cell {
	got := rootNames(o)
	want := []string{inspectJobID + "/", "local/", "startup/"}
	return cellIf(slices.Equal(got, want), strings.Join(got, ", "))
}

// lookup returns the inspected path below the root.
func lookup(r *report.Report, rel ...string) (report.Path, bool) {
	return r.Lookup(path.Join(append([]string{root}, rel...)...))
}

// checkReadOnly checks that a directory of the workspace refuses writes.
// Below a read-only mount, a file system mounted on the node stays
// writable unless the runtime makes the mount read-only recursively: when
// the runtime says it cannot, that is a gap, not a violation.
func checkReadOnly(top, sub string) func(o *observed) cell {
	return func(o *observed) cell {
		if sub == mountedSub && !o.submounts {
			return cell{text: "not observed: mounting below startup/ and local/ needs root on " +
				"the node", verdict: notObserved}
		}
		p, ok := lookup(o.inspect, top, sub)
		if !ok || !p.Exists {
			return cell{text: "not found in the job", verdict: violated}
		}
		text := fmt.Sprintf("write: %s; %s", attemptText(p.Write), mountText(p.Mount))
		switch {
		case p.Write.Errno == "EROFS":
			return cell{text: text, verdict: holds}
		case sub == mountedSub && p.Write.OK && !o.recursiveRO:
			return cell{text: text + " — the runtime cannot make it read-only: " +
				o.recursiveROWhy, verdict: gap}
		}
		return cell{text: text, verdict: violated}
	}
}

func checkJobDirWritable(o *observed) cell {
	j := o.inspect.JobDir
	if j == nil || !j.Exists {
		return cell{text: "no job directory", verdict: violated}
	}
	return cellIf(j.Write.OK, fmt.Sprintf("write: %s; owner %d:%d, mode %s, %s",
		attemptText(j.Write), j.UID, j.GID, j.Mode, mountText(j.Mount)))
}

func checkPersisted(o *observed) cell {
	p, ok := o.reader.Lookup(path.Join(root, inspectJobID, persisted))
	seen := ok && p.Exists && !p.IsDir
	onNode := o.hostPersisted == o.token
	text := fmt.Sprintf("node read %q after the job; second FLJob of the job ID: ", o.hostPersisted)
	if seen {
		text += fmt.Sprintf("file present (%d:%d, %s)", p.UID, p.GID, p.Mode)
	} else {
		text += "file missing"
	}
	return cellIf(seen && onNode, text)
}

func checkOtherJob(o *observed) cell {
	p, ok := lookup(o.inspect, otherJobID)
	listed := slices.Contains(rootNames(o), otherJobID+"/")
	if !ok {
		return cell{text: "not inspected", verdict: violated}
	}
	text := fmt.Sprintf("%s: %s", otherJobID+"/", attemptText(p.Write))
	if p.Exists {
		text = otherJobID + "/ exists in the job"
	}
	if listed {
		text += "; listed in the root"
	} else {
		text += "; not listed in the root"
	}
	return cellIf(!p.Exists && !listed, text)
}

func checkUser(o *observed) cell {
	r := o.inspect
	return cellIf(r.UID == jobUID && r.GID == jobGID,
		fmt.Sprintf("%d:%d, groups %v", r.UID, r.GID, r.Groups))
}

const noCaps = "0000000000000000"

func checkCaps(o *observed) cell {
	p := o.inspect.Process
	all := []string{p.CapInh, p.CapPrm, p.CapEff, p.CapBnd, p.CapAmb}
	if slices.IndexFunc(all, func(s string) bool { return s != noCaps }) < 0 {
		return cell{text: "all five sets 0 (inh, prm, eff, bnd, amb)", verdict: holds}
	}
	return cellIf(p.CapEff == noCaps && p.CapPrm == noCaps && p.CapAmb == noCaps,
		fmt.Sprintf("eff %s, prm %s, bnd %s, inh %s, amb %s", p.CapEff, p.CapPrm, p.CapBnd,
			p.CapInh, p.CapAmb))
}

func checkNoNewPrivs(o *observed) cell {
	n := o.inspect.Process.NoNewPrivs
	return cellIf(n == 1, fmt.Sprintf("NoNewPrivs %d", n))
}

func checkSeccomp(o *observed) cell {
	s := o.inspect.Process.Seccomp
	names := map[int]string{0: "off", 1: "strict", 2: "filter"}
	return cellIf(s == 2, fmt.Sprintf("Seccomp %d (%s)", s, names[s]))
}

const tokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

func checkToken(o *observed) cell {
	for _, s := range o.inspect.Sockets {
		if s.Path == tokenPath {
			if s.Exists {
				return cell{text: tokenPath + " exists", verdict: violated}
			}
			return cell{text: "no " + tokenPath, verdict: holds}
		}
	}
	return cell{text: "token path not inspected", verdict: violated}
}

func checkRuntimeSockets(o *observed) cell {
	var absent, present []string
	for _, s := range o.inspect.Sockets {
		if s.Path == tokenPath {
			continue
		}
		if s.Exists {
			present = append(present, s.Path)
		} else {
			absent = append(absent, s.Path)
		}
	}
	if len(present) > 0 {
		return cell{text: "present: " + strings.Join(present, ", "), verdict: violated}
	}
	return cellIf(len(absent) > 0, "none of "+strings.Join(absent, ", "))
}

func checkWorkDir(o *observed) cell {
	want := path.Join(root, inspectJobID)
	return cellIf(o.inspect.Cwd == want, o.inspect.Cwd)
}

func checkEnv(o *observed) cell {
	v, ok := o.inspect.Env[plainEnv]
	return cellIf(ok && v == plainValue, fmt.Sprintf("%s=%q", plainEnv, v))
}

func checkSecret(o *observed) cell {
	v, ok := o.inspect.Env[secretEnv]
	switch {
	case !ok:
		return cell{text: secretEnv + " unset", verdict: violated}
	case v != o.secret:
		return cell{text: secretEnv + " differs from the Secret's value", verdict: violated}
	}
	return cell{text: fmt.Sprintf("%s equals the Secret's value (%d bytes)", secretEnv, len(v)),
		verdict: holds}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func checkSizeLimit(o *observed) cell {
	f := o.inspect.Fill
	if f == nil {
		return cell{text: "not filled", verdict: violated}
	}
	text := fmt.Sprintf("wrote %s of %s: %s", mib(f.Written), mib(f.Requested),
		attemptText(f.Write))
	if f.Removed {
		text += "; removed"
	}
	// The limit is the root's size, less what its directories use.
	ok := f.Write.Errno == "ENOSPC" && f.Written <= rootSizeBytes && f.Written > rootSizeBytes/2
	return cellIf(ok, text)
}

func checkHostname(o *observed) cell {
	return cellIf(o.inspect.Hostname == o.inspectName, o.inspect.Hostname)
}

func checkReachable(o *observed) cell {
	c := o.client.Connect
	if c == nil {
		return cell{text: "no connection tried", verdict: violated}
	}
	want := "probe " + o.serverName
	text := fmt.Sprintf("%s: %s in %d ms, reply %q (client try %d of %d)", c.Address,
		attemptText(c.Attempt), c.Millis, c.Reply, o.clientTries, clientTries)
	return cellIf(c.OK && c.Reply == want, text)
}

func checkEnvDefaults(o *observed) cell {
	var parts []string
	for _, k := range []string{"USER", "HOME"} {
		if v, ok := o.inspect.Env[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%s", k, v))
		} else {
			parts = append(parts, k+" unset")
		}
	}
	ok := o.inspect.Env["USER"] == "fljob" && o.inspect.Env["HOME"] == root
	return cellIf(ok, strings.Join(parts, ", "))
}

func checkReturnCode(o *observed) cell {
	rc := "no status.returnCode"
	if r := o.inspectStatus.ReturnCode; r != nil {
		rc = fmt.Sprintf("status.returnCode %d", *r)
	}
	file := fmt.Sprintf("the file on the node holds %q", o.hostRC)
	switch {
	case o.hostRCErr != nil:
		file = "no file on the node"
	case o.hostRC == "":
		file = "the file on the node is empty"
	}
	return cell{text: rc + "; " + file, verdict: info}
}

func checkMissingJobDir(o *observed) cell {
	st := o.missing.Status
	if st.Phase != fljobv1.PhaseSucceeded {
		return cell{text: fmt.Sprintf("%s, %s: %s", st.Phase, st.Reason, st.Message), verdict: info}
	}
	j := o.missingReport.JobDir
	if j == nil || !j.Exists {
		return cell{text: "Succeeded, but the job saw no job directory", verdict: info}
	}
	return cell{text: fmt.Sprintf("%s; the directory was created: owner %d:%d, mode %s, "+
		"write: %s", st.Phase, j.UID, j.GID, j.Mode, attemptText(j.Write)), verdict: info}
}
