package kube

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/test/builder"
	"github.com/fljob-dev/fljob/test/kwok"
)

// kubectl runs the real kubectl against the API server as a member of
// system:masters and checks what a user sees of FLJobs: the printer
// columns of get, and the events in describe.
func (s *suite) kubectl(t *testing.T) {
	t.Parallel()
	bin := kwok.RequireBinary(t, "kubectl")
	n := s.namespace(t, "kubectl")
	n.startManager(managerOptions{})
	server := n.create(builder.FLJob("fl-server").Server().Args(run(0, 0, 0)...))
	client := n.create(builder.FLJob("site-1").Args(run(0, 1, fljobv1.ReturnCodeException)...))
	n.waitPhase(server.Name, fljobv1.PhaseSucceeded)
	failed := n.waitPhase(client.Name, fljobv1.PhaseFailed)
	n.waitEvents(failed, event{"Normal", "SuccessfulCreate"},
		event{"Warning", fljobv1.ReasonBackoffLimitExceeded})

	kubeconfig, cache := s.kubeconfig(t), t.TempDir()
	kubectl := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
		defer cancel()
		common := []string{"--kubeconfig=" + kubeconfig, "--cache-dir=" + cache, "--namespace=" + n.name}
		args = append(common, args...)
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args[3:], " "), err, out)
		}
		t.Logf("$ kubectl %s\n%s", strings.Join(args[3:], " "), out)
		return string(out)
	}

	tests := []struct {
		args []string
		want [][]string // the fields of each line, without the age
	}{
		{[]string{"get", "fljobs"}, [][]string{
			{"NAME", "ROLE", "SITE", "JOB", "ID", "PHASE", "AGE"},
			{"fl-server", "Server", "server", "job-1", "Succeeded"},
			{"site-1", "Client", "site-1", "job-1", "Failed"},
		}},
		{[]string{"get", "flj", "-o", "wide"}, [][]string{
			{"NAME", "ROLE", "SITE", "JOB", "ID", "PHASE", "ATTEMPTS", "RC", "REASON", "AGE"},
			{"fl-server", "Server", "server", "job-1", "Succeeded", "1", "0", "Succeeded"},
			{"site-1", "Client", "site-1", "job-1", "Failed", "1", "101", "BackoffLimitExceeded"},
		}},
	}
	for _, tt := range tests {
		var got [][]string
		for i, line := range strings.Split(strings.TrimSpace(kubectl(tt.args...)), "\n") {
			f := strings.Fields(line)
			if i > 0 && len(f) > 0 {
				f = f[:len(f)-1] // the age
			}
			got = append(got, f)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("kubectl %s (-want +got):\n%s", strings.Join(tt.args, " "), diff)
		}
	}

	out := kubectl("describe", "fljob", client.Name)
	i := strings.Index(out, "\nEvents:")
	if i < 0 {
		t.Fatalf("kubectl describe shows no events section:\n%s", out)
	}
	events := out[i:]
	for _, want := range []string{"Normal", "SuccessfulCreate", "Warning",
		fljobv1.ReasonBackoffLimitExceeded, "NVFlare return code 101 (exception)"} {
		if !strings.Contains(events, want) {
			t.Errorf("the events of kubectl describe do not show %q", want)
		}
	}
	if !strings.Contains(out, "Return Code:") {
		t.Error("kubectl describe does not show the return code")
	}
}

// kubeconfig writes a kubeconfig for a new member of system:masters.
func (s *suite) kubeconfig(t *testing.T) string {
	t.Helper()
	user, err := s.env.Environment.AddUser(crenvtest.User{
		Name: "kubectl", Groups: []string{"system:masters"},
	}, nil)
	if err != nil {
		t.Fatalf("add user: %v", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatalf("write kubeconfig: %v", err)
	}
	return p
}
