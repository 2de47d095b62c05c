package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fljob-dev/fljob/test/probe/report"
)

// workspace builds a root with startup/, local/ and one job directory.
func workspace(t *testing.T) (root, jobDir string) {
	t.Helper()
	root = t.TempDir()
	for _, d := range []string{"startup/site", "local", "job-1"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "local", "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	return root, filepath.Join(root, "job-1")
}

func TestInspect(t *testing.T) {
	root, jobDir := workspace(t)
	notDir := filepath.Join(root, "local", "f")
	out := filepath.Join(t.TempDir(), "report.json")
	var stdout bytes.Buffer
	code := run([]string{"inspect", "--root", root, "--job-dir", jobDir,
		"--check-dir", notDir, "--fill-root", "3145729", "--out", out}, &stdout, os.Stderr)
	if code != 0 {
		t.Fatalf("probe inspect exited %d", code)
	}
	rep, err := report.Decode(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := report.Decode(bytes.NewReader(stored)); err != nil {
		t.Errorf("stored report: %v", err)
	}

	if len(rep.Errors) > 0 {
		t.Errorf("report errors: %v", rep.Errors)
	}
	if rep.UID != os.Getuid() || rep.Env["PATH"] != os.Getenv("PATH") {
		t.Errorf("identity: uid %d, PATH %q", rep.UID, rep.Env["PATH"])
	}
	gotRoot := struct {
		Mode    string
		Sticky  bool
		Mkdir   report.Attempt
		Entries []report.Entry
	}{rep.Root.Mode, rep.Root.Sticky, rep.Root.Mkdir, rep.Root.Entries}
	wantRoot := gotRoot
	wantRoot.Mode, wantRoot.Sticky, wantRoot.Mkdir = "1777", true, report.Attempt{OK: true}
	wantRoot.Entries = []report.Entry{
		{Name: "job-1", Mode: "0755", IsDir: true},
		{Name: "local", Mode: "0755", IsDir: true},
		{Name: "startup", Mode: "0755", IsDir: true},
	}
	if diff := cmp.Diff(wantRoot, gotRoot); diff != "" {
		t.Errorf("root (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(root, "snapshot-storage")); !os.IsNotExist(err) {
		t.Errorf("snapshot-storage left behind: %v", err)
	}

	var gotPaths []string
	for _, p := range append(append(rep.Startup, rep.Local...), *rep.JobDir) {
		gotPaths = append(gotPaths, p.Path)
		if !p.Write.OK || p.Mount == nil {
			t.Errorf("%s: write %+v, mount %v", p.Path, p.Write, p.Mount)
		}
	}
	wantPaths := []string{filepath.Join(root, "startup"), filepath.Join(root, "startup", "site"),
		filepath.Join(root, "local"), jobDir}
	if diff := cmp.Diff(wantPaths, gotPaths); diff != "" {
		t.Errorf("inspected paths (-want +got):\n%s", diff)
	}
	check, ok := rep.Lookup(notDir)
	if !ok || check.Write.Errno != "ENOTDIR" {
		t.Errorf("check of a file: %+v, found %v", check, ok)
	}

	wantFill := &report.Fill{File: rep.Fill.File, Requested: 3145729, Written: 3145729,
		Write: report.Attempt{OK: true}, Removed: true}
	if diff := cmp.Diff(wantFill, rep.Fill); diff != "" {
		t.Errorf("fill (-want +got):\n%s", diff)
	}
}

func TestInspectMissingRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "absent")
	var stdout bytes.Buffer
	if code := run([]string{"inspect", "--root", root}, &stdout, os.Stderr); code != 0 {
		t.Fatalf("probe inspect exited %d", code)
	}
	rep, err := report.Decode(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	want := report.Path{Path: root, Write: report.Attempt{Errno: "ENOENT",
		Error: "stat " + root + ": no such file or directory"}}
	if diff := cmp.Diff(want, rep.Root.Path); diff != "" {
		t.Errorf("root (-want +got):\n%s", diff)
	}
}

func TestRunSteps(t *testing.T) {
	dir := t.TempDir()
	result := filepath.Join(dir, "result.txt")
	rcFile := filepath.Join(dir, "_process_rc.txt")
	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantFiles map[string]string
	}{
		{"exit code", []string{"exit", "7"}, 7, nil},
		{"exit code out of range", []string{"exit", "300"}, 1, nil},
		{"unknown command", []string{"bogus"}, 2, nil},
		{"write", []string{"write", "--file", result, "--data", "hello"}, 0,
			map[string]string{result: "hello"}},
		{"write into a missing dir", []string{"write", "--file", dir + "/no/f", "--data", "x"}, 1,
			nil},
		{"sleep", []string{"sleep", "10ms"}, 0, nil},
		{"run chain", []string{"run", "--root", "", "--write", result + "=a=b",
			"--rc-file", rcFile, "--rc", "9", "--sleep", "1ms", "--exit", "3"}, 3,
			map[string]string{result: "a=b", rcFile: "9"}},
		{"run stops at a failing write", []string{"run", "--write", dir + "/no/f=x",
			"--rc-file", rcFile, "--exit", "4"}, 1, nil},
		{"run rejects a write without =", []string{"run", "--write", result}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(result)
			os.Remove(rcFile)
			var stdout, stderr bytes.Buffer
			if got := run(tt.args, &stdout, &stderr); got != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr %q)", got, tt.wantCode, stderr.String())
			}
			got := map[string]string{}
			for _, f := range []string{result, rcFile} {
				if data, err := os.ReadFile(f); err == nil {
					got[f] = string(data)
				}
			}
			want := tt.wantFiles
			if want == nil {
				want = map[string]string{}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServeAndConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(ln, "hello from probe", 1) }()
	got := dial(ln.Addr().String(), time.Second)
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
	want := &report.Connect{Address: ln.Addr().String(), Attempt: report.Attempt{OK: true},
		Reply: "hello from probe", Millis: got.Millis}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dial (-want +got):\n%s", diff)
	}

	refused := dial(ln.Addr().String(), time.Second)
	if refused.OK || refused.Errno != "ECONNREFUSED" {
		t.Errorf("dial after serve ended = %+v, want ECONNREFUSED", refused)
	}
}
