package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fljob-dev/fljob/test/manifests"
)

// checkRejected checks a rejection: a non-zero exit, one line on stderr
// starting "error: " that holds want, nothing on stdout, and a store as
// before.
func (e *env) checkRejected(r result, want string, before map[string]string) {
	e.t.Helper()
	if r.code == 0 {
		e.t.Errorf("exit 0, want a failure:\n%s", r)
	}
	if !strings.HasPrefix(r.stderr, "error: ") || strings.Count(r.stderr, "\n") != 1 ||
		!strings.Contains(r.stderr, want) {
		e.t.Errorf("stderr is not one error line holding %q:\n%s", want, r)
	}
	if r.stdout != "" {
		e.t.Errorf("stdout = %q, want nothing", r.stdout)
	}
	if diff := cmp.Diff(before, e.snapshot()); diff != "" {
		e.t.Errorf("the rejected command changed the store (-before +after):\n%s", diff)
	}
}

// TestBadInput feeds the CLI malformed, unknown and invalid manifests,
// missing files and an unreachable Docker Engine.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	valid := e.probeJob("good", "job-1", "run")
	e.mustFljob("apply", "-f", filepath.Join(e.writeManifests(map[string]string{"v.yaml": valid}), "v.yaml"))
	file := func(doc string) string {
		return filepath.Join(e.writeManifests(map[string]string{"m.yaml": doc}), "m.yaml")
	}
	cases := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"malformed YAML", []string{"apply", "-f", file("apiVersion: fljob.dev/v1\nkind: FLJob\nspec: [oops\n")},
			nil, "malformed YAML"},
		{"unknown field", []string{"apply", "-f", file(strings.Replace(valid, "spec:\n", "spec:\n  colour: red\n", 1))},
			nil, `strict decoding error: unknown field "spec.colour"`},
		{"unknown kind", []string{"apply", "-f", file("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")},
			nil, `no kind "ConfigMap" is registered for version "v1"`},
		{"no kind", []string{"apply", "-f", file("metadata:\n  name: x\n")}, nil, "apiVersion and kind must be set"},
		{"missing file", []string{"apply", "-f", "/nonexistent/fljob.yaml"}, nil,
			`the path "/nonexistent/fljob.yaml" does not exist`},
		{"no -f", []string{"apply"}, nil, "must specify one of -f or --filename"},
		{"invalid job in run", []string{"run", "-f", file(strings.Replace(valid, "jobID: job-1", "jobID: ../x", 1))},
			nil, `spec.jobID: Invalid value: "../x": must be one path segment`},
		{"immutable jobID", []string{"apply", "-f", file(strings.Replace(valid, "jobID: job-1", "jobID: job-2", 1))},
			nil, `spec.jobID: Invalid value: "job-2": jobID is immutable`},
		{"one bad document among good ones", []string{"apply", "-f", e.writeManifests(map[string]string{
			"a.yaml": e.probeJob("other", "job-3", "run"),
			"b.yaml": strings.Replace(e.probeJob("other-2", "job-4", "run"), "runAsUser", "x", 1) +
				"  runAsUser: 0\n",
		})}, nil, "spec.runAsUser: Invalid value: 0: must be a non-root uid"},
		{"namespace mismatch", []string{"apply", "-f", file(strings.Replace(valid, "metadata:\n",
			"metadata:\n  namespace: elsewhere\n", 1))}, nil, "does not match the namespace"},
		{"unreachable docker on run", []string{"run", "-f", file(e.probeJob("new", "job-5", "run"))},
			[]string{"DOCKER_HOST=unix:///nonexistent"}, "cannot reach the Docker Engine at unix:///nonexistent"},
		{"unreachable docker on logs", []string{"logs", "good"},
			[]string{"DOCKER_HOST=unix:///nonexistent"}, "fljob \"good\" has no attempt 0 yet"},
		{"unreachable docker on operator", []string{"operator"},
			[]string{"DOCKER_HOST=unix:///nonexistent"}, "cannot reach the Docker Engine at unix:///nonexistent"},
		{"unknown output", []string{"get", "-o", "table"}, nil, `unknown output format "table"`},
		{"delete of a missing FLJob", []string{"delete", "missing"}, nil, `fljob.fljob.dev "missing" not found`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			e.extraEnv = c.env
			before := e.snapshot()
			e.checkRejected(e.fljob(c.args...), c.want, before)
		})
	}
	e.t = t
	e.extraEnv = nil
	// Several bad files: one line for each, and nothing applied.
	before := e.snapshot()
	r := e.fljob("apply", "-f", e.writeManifests(map[string]string{
		"a.yaml": "kind: [",
		"b.yaml": strings.Replace(valid, "image: ", "image: \"\"\n  imagx: ", 1),
	}))
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if r.code == 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "error: ") ||
		!strings.HasPrefix(lines[1], "error: ") {
		t.Errorf("two bad files, want two error lines:\n%s", r)
	}
	if diff := cmp.Diff(before, e.snapshot()); diff != "" {
		t.Errorf("the store changed (-before +after):\n%s", diff)
	}
}

// TestSharedTableThroughTheCLI applies every manifest of the table the
// envtest suite runs against a real API server: the CLI must reject the
// same manifests naming the same fields, and change nothing.
func TestSharedTableThroughTheCLI(t *testing.T) {
	requireE2E(t)
	for _, c := range manifests.Invalid {
		t.Run(c.Name, func(t *testing.T) {
			e := &env{t: t, stateDir: t.TempDir()}
			dir := t.TempDir()
			if c.Base != "" {
				base := filepath.Join(dir, "base.yaml")
				if err := os.WriteFile(base, []byte(c.Base), 0o644); err != nil {
					t.Fatal(err)
				}
				if r := e.fljobIn("", "apply", "-f", base); r.code != 0 {
					t.Fatalf("base:\n%s", r)
				}
			}
			f := filepath.Join(dir, "m.yaml")
			if err := os.WriteFile(f, []byte(c.YAML), 0o644); err != nil {
				t.Fatal(err)
			}
			before := e.snapshot()
			r := e.fljobIn("", "apply", "-f", f)
			want := c.WantMsg
			if c.WantField != "<nil>" {
				want = c.WantField + ": "
				if strings.HasPrefix(c.WantMsg, "unknown field") {
					want = c.WantMsg
				}
			}
			e.checkRejected(r, want, before)
			if !strings.Contains(r.stderr, c.WantMsg) {
				t.Errorf("stderr lacks %q:\n%s", c.WantMsg, r.stderr)
			}
		})
	}
	for _, c := range manifests.Valid {
		t.Run(c.Name, func(t *testing.T) {
			e := &env{t: t, stateDir: t.TempDir()}
			dir := t.TempDir()
			for i, doc := range []string{c.Base, c.YAML} {
				if doc == "" {
					continue
				}
				f := filepath.Join(dir, "m.yaml")
				if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
					t.Fatal(err)
				}
				if r := e.fljobIn("", "apply", "-f", f); r.code != 0 {
					t.Fatalf("document %d rejected:\n%s", i, r)
				}
			}
		})
	}
}
