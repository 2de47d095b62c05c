package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fljob-dev/fljob/validation"
)

func TestParseWaitFor(t *testing.T) {
	cases := []struct {
		in      string
		want    waitFor
		wantErr bool
	}{
		{"condition=Complete", waitFor{condition: "Complete", status: metav1.ConditionTrue}, false},
		{"condition=Running=false", waitFor{condition: "Running", status: metav1.ConditionFalse}, false},
		{"condition=Failed=True", waitFor{condition: "Failed", status: metav1.ConditionTrue}, false},
		{"delete", waitFor{deletion: true}, false},
		{"condition=", waitFor{}, true},
		{"condition=Complete=maybe", waitFor{}, true},
		{"phase=Running", waitFor{}, true},
	}
	for _, c := range cases {
		got, err := parseWaitFor(c.in)
		if (err != nil) != c.wantErr {
			t.Errorf("parseWaitFor(%q) error = %v, want error %v", c.in, err, c.wantErr)
			continue
		}
		if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(waitFor{})); diff != "" {
			t.Errorf("parseWaitFor(%q) (-want +got):\n%s", c.in, diff)
		}
	}
}

func TestPrefixWriterKeepsLinesWhole(t *testing.T) {
	var buf bytes.Buffer
	out := &lineWriter{w: &buf}
	w := &prefixWriter{out: out, prefix: "job | "}
	for _, chunk := range []string{"first li", "ne\nsecond\r\nthi", "rd"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	w.flush()
	want := "job | first line\njob | second\njob | third\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

func TestReadDocuments(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a.yaml":     "# comment only\n---\nkind: A\n---\n\n---\nkind: B\n",
		"b.json":     `{"kind": "C"}`,
		"notes.txt":  "kind: ignored\n",
		"sub/c.yaml": "kind: ignored too\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	docs, err := readDocuments([]string{dir}, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range docs {
		got = append(got, strings.TrimPrefix(d.source, dir+"/")+": "+strings.TrimSpace(string(d.data)))
	}
	want := []string{
		"a.yaml (document 1): kind: A",
		"a.yaml (document 2): kind: B",
		`b.json: {"kind": "C"}`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("documents (-want +got):\n%s", diff)
	}
	stdin, err := readDocuments([]string{"-"}, strings.NewReader("kind: D\n"))
	if err != nil || len(stdin) != 1 || stdin[0].source != "<stdin>" {
		t.Errorf("stdin: %v, %v", stdin, err)
	}
	if _, err := readDocuments([]string{filepath.Join(dir, "sub", "missing.yaml")}, nil); err == nil ||
		!strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file: %v", err)
	}
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, []byte("# nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readDocuments([]string{empty}, nil); err == nil {
		t.Errorf("a file without documents was accepted")
	}
}

func TestDecodeSetsTheNamespace(t *testing.T) {
	v, err := validation.Default()
	if err != nil {
		t.Fatal(err)
	}
	job := func(ns string) document {
		meta := "metadata:\n  name: a\n"
		if ns != "" {
			meta += "  namespace: " + ns + "\n"
		}
		return document{source: "m.yaml", data: []byte("apiVersion: fljob.dev/v1\nkind: FLJob\n" + meta)}
	}
	cases := []struct {
		name   string
		doc    document
		policy nsPolicy
		want   string
		err    string
	}{
		{"missing: the flag's", job(""), nsPolicy{namespace: "team"}, "team", ""},
		{"set: kept", job("own"), nsPolicy{namespace: "default"}, "own", ""},
		{"set and the same as an explicit flag", job("own"), nsPolicy{namespace: "own", enforce: true}, "own", ""},
		{"set and not the explicit flag's", job("own"), nsPolicy{namespace: "team", enforce: true}, "",
			"does not match the namespace \"team\""},
		{"a secret", document{source: "s.yaml", data: []byte("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n")},
			nsPolicy{namespace: "team"}, "team", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := decode(c.doc, v, c.policy)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Errorf("decode() = %v, want an error holding %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := o.key().Namespace; got != c.want {
				t.Errorf("namespace = %q, want %q", got, c.want)
			}
		})
	}
}
