package conformance

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path"
	"strings"
	"testing"
	"time"
)

// nodeShell runs shell scripts where a backend's workspace lives: on this
// machine, or through a command prefix (for a kind node, docker exec -i).
type nodeShell struct {
	prefix []string
}

// localShell runs scripts on this machine.
var localShell = nodeShell{}

// shellFromEnv returns the shell FLJOB_CONFORMANCE_NODE_EXEC names, or the
// local one.
func shellFromEnv(v string) nodeShell {
	if f := strings.Fields(v); len(f) > 0 {
		return nodeShell{prefix: f}
	}
	return localShell
}

// run runs script with sh -c and returns its standard output.
func (n nodeShell) run(ctx context.Context, script string) (string, error) {
	args := append(append([]string{}, n.prefix...), "sh", "-c", script)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// read returns a file's content.
func (n nodeShell) read(ctx context.Context, file string) (string, error) {
	return n.run(ctx, "cat "+quote(file))
}

// quote quotes s for sh.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// site is one NVFlare site's workspace source, on the node of a backend:
// startup/ and local/ (each with a plain subdirectory, a file system mounted
// below it when the shell is root, and a file), the job directories of the
// scenario owned by the job's user, and another job's directory that no job
// of the scenario may see.
type site struct {
	shell nodeShell
	dir   string
	// submounts is true when startup/ and local/ hold a tmpfs mounted below
	// them, which tells whether read-only mounts are recursive.
	submounts bool
}

// Names in the site.
const (
	plainSub    = "plain"
	mountedSub  = "mounted"
	otherJobID  = "other-job"
	otherFile   = "result.txt"
	startupFile = "fed_client.json"
)

// newSite lays out a site in a new directory on the node and removes it
// when the test ends.
func newSite(t *testing.T, sh nodeShell, jobIDs []string) *site {
	t.Helper()
	ctx := withTimeout(t, time.Minute)
	dir, err := sh.run(ctx, "mktemp -d /tmp/fljob-conformance-XXXXXX")
	if err != nil {
		t.Fatalf("create site directory: %v", err)
	}
	s := &site{shell: sh, dir: strings.TrimSpace(dir)}
	t.Cleanup(func() { s.remove(t) })

	d := quote(s.dir)
	var b strings.Builder
	fmt.Fprintf(&b, "set -e; cd %s; chmod 0755 .\n", d)
	for _, top := range []string{"startup", "local"} {
		fmt.Fprintf(&b, "mkdir -p %[1]s/%[2]s %[1]s/%[3]s\n", top, plainSub, mountedSub)
		fmt.Fprintf(&b, "echo '{}' > %s/%s\n", top, startupFile)
	}
	fmt.Fprintf(&b, "mkdir -p %s; echo 'not yours' > %s/%s; chmod -R a+rwX %s\n",
		otherJobID, otherJobID, otherFile, otherJobID)
	// The job directories exist before the jobs and belong to the job's
	// user, as NVFlare's parent process leaves them: the Kubernetes backend
	// requires that (docs/kubernetes-backend.md).
	for _, id := range jobIDs {
		fmt.Fprintf(&b, "mkdir -p %[1]s; chmod 0750 %[1]s\n", id)
		fmt.Fprintf(&b, "if [ \"$(id -u)\" = 0 ]; then chown %d:%d %s; else chmod 0777 %s; fi\n",
			jobUID, jobGID, id, id)
	}
	// A file system mounted below a read-only directory stays writable
	// unless the runtime makes the mount read-only recursively.
	fmt.Fprintf(&b, "if [ \"$(id -u)\" = 0 ]; then for top in startup local; do "+
		"mount -t tmpfs -o size=1m,mode=0777 fljob-conformance $top/%s; done; echo mounted; fi\n",
		mountedSub)
	out, err := sh.run(ctx, b.String())
	if err != nil {
		t.Fatalf("lay out site: %v", err)
	}
	s.submounts = strings.Contains(out, "mounted")
	return s
}

// path returns a path inside the site on the node.
func (s *site) path(elem ...string) string {
	return path.Join(append([]string{s.dir}, elem...)...)
}

func (s *site) remove(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	script := fmt.Sprintf("for m in %[1]s/startup/%[2]s %[1]s/local/%[2]s; do "+
		"if grep -q \" $m \" /proc/self/mountinfo; then umount $m; fi; done; rm -rf %[1]s",
		quote(s.dir), mountedSub)
	if _, err := s.shell.run(ctx, script); err != nil {
		t.Errorf("remove site %s: %v", s.dir, err)
	}
}
