package conformance

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/google/go-cmp/cmp"
)

//go:embed parity.md.tmpl
var parityTemplate string

// columnResult is what docs/parity.md says about one column.
type columnResult struct {
	name string
	// notRun says why the column has no observations.
	notRun   string
	facts    []string
	cells    map[string]cell
	duration time.Duration
}

// resultSet gathers the columns' results during the run.
type resultSet struct {
	mu      sync.Mutex
	columns map[string]*columnResult
}

func (r *resultSet) skip(column, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.columns[column] = &columnResult{name: column, notRun: why}
}

// fail notes a column that stopped before it recorded its observations.
func (r *resultSet) fail(column, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.columns[column]; ok && (c.cells != nil || c.notRun != "") {
		return
	}
	r.columns[column] = &columnResult{name: column, notRun: why}
}

func (r *resultSet) record(column string, facts []string, cells map[string]cell, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.columns[column] = &columnResult{name: column, facts: facts, cells: cells, duration: d}
}

// ran says whether TestConformance ran at all in this process.
func (r *resultSet) ran() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.columns) > 0
}

// parityData is what the template renders.
type parityData struct {
	Date    string
	Columns []columnData
	Rows    []rowData
	Info    []rowData
	Jobs    []jobData
	Node    nodeData
}

type columnData struct {
	Name   string
	Status string
	// Detail holds the lines after the first of why a column did not run
	// (a command and its error), shown verbatim.
	Detail   []string
	Facts    []string
	Duration string
}

type rowData struct {
	Title string
	By    string
	Cells []string
}

type jobData struct {
	Role, JobID, Args string
}

type nodeData struct {
	Up, Down string
}

// writeParity renders the collected results into docs/parity.md (or
// FLJOB_PARITY_OUT).
func writeParity() error {
	out := os.Getenv(envParityOut)
	if out == "" {
		out = filepath.Join(repoRoot, "docs", "parity.md")
	}
	var buf bytes.Buffer
	if err := renderParity(&buf, buildParityData(time.Now())); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(out), err)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	fmt.Fprintf(os.Stderr, "conformance: wrote %s\n", out)
	return nil
}

func buildParityData(now time.Time) parityData {
	results.mu.Lock()
	defer results.mu.Unlock()
	d := parityData{Date: now.UTC().Format("2006-01-02 15:04 MST")}
	var cols []*columnResult
	for _, name := range []string{columnDocker, columnKubernetes} {
		c := results.columns[name]
		if c == nil {
			c = &columnResult{name: name, notRun: "did not run"}
		}
		cols = append(cols, c)
		cd := columnData{Name: name, Facts: c.facts, Status: "observed"}
		if c.notRun != "" {
			lines := strings.Split(strings.TrimSpace(c.notRun), "\n")
			cd.Status, cd.Detail = "**not run**: "+lines[0], lines[1:]
		} else {
			cd.Duration = c.duration.Round(100 * time.Millisecond).String()
		}
		d.Columns = append(d.Columns, cd)
	}
	for _, inv := range invariants {
		row := rowData{Title: inv.title, By: inv.by}
		isInfo := false
		for _, c := range cols {
			if c.notRun != "" {
				row.Cells = append(row.Cells, "not run")
				continue
			}
			ce := c.cells[inv.id]
			isInfo = isInfo || ce.verdict == info
			row.Cells = append(row.Cells, cellMarkdown(ce))
		}
		if isInfo {
			d.Info = append(d.Info, row)
		} else {
			d.Rows = append(d.Rows, row)
		}
	}
	for _, j := range scenarioJobs("<token>") {
		d.Jobs = append(d.Jobs, jobData{Role: j.role, JobID: j.jobID,
			Args: strings.Join(j.args, " ")})
	}
	d.Node = nodeData{Up: duration(node.upTime), Down: duration(node.downTime)}
	return d
}

func duration(d time.Duration) string {
	if d == 0 {
		return "not measured in this run"
	}
	return d.Round(100 * time.Millisecond).String()
}

// cellMarkdown renders a cell for a table: a verdict mark, then the text
// with table syntax escaped.
func cellMarkdown(c cell) string {
	marks := map[verdict]string{holds: "✅ ", violated: "❌ ", gap: "⚠️ "}
	text := strings.NewReplacer("|", `\|`, "\n", " ").Replace(c.text)
	return marks[c.verdict] + text
}

func renderParity(buf *bytes.Buffer, d parityData) error {
	tmpl, err := template.New("parity").Funcs(template.FuncMap{
		"join": strings.Join,
	}).Parse(parityTemplate)
	if err != nil {
		return fmt.Errorf("parse parity template: %w", err)
	}
	if err := tmpl.Execute(buf, d); err != nil {
		return fmt.Errorf("render parity table: %w", err)
	}
	return nil
}

func TestCellMarkdown(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   cell
		want string
	}{
		{"holds", cell{"1777 (sticky)", holds}, "✅ 1777 (sticky)"},
		{"violated", cell{"0755", violated}, "❌ 0755"},
		{"gap", cell{"write: ok", gap}, "⚠️ write: ok"},
		{"info escapes pipes", cell{"a|b\nc", info}, `a\|b c`},
		{"not observed", cell{"not observed: no root", notObserved}, "not observed: no root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, cellMarkdown(tc.in)); diff != "" {
				t.Errorf("cellMarkdown (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRenderParity renders a table from made-up results, to keep the
// template working without running any backend.
func TestRenderParity(t *testing.T) {
	cells := map[string]cell{}
	for _, inv := range invariants {
		cells[inv.id] = cell{text: "seen " + inv.id, verdict: holds}
	}
	cells["env-defaults"] = cell{text: "HOME=/tmp", verdict: info}
	d := parityData{
		Date: "2026-01-02 03:04 UTC",
		Columns: []columnData{{Name: columnDocker, Status: "observed", Duration: "1s"},
			{Name: columnKubernetes, Status: "**not run**: forbidden",
				Detail: []string{"command: id -u", "error: uid 65534"}}},
		Node: nodeData{Up: "2s", Down: "3s"},
	}
	d.Rows = []rowData{{Title: "Root mode", By: "inspect", Cells: []string{"✅ 1777", "not run"}}}
	d.Info = []rowData{{Title: "HOME", By: "inspect", Cells: []string{"HOME=/tmp", "not run"}}}
	d.Jobs = []jobData{{Role: "inspect", JobID: inspectJobID, Args: "run --inspect-out x"}}
	var buf bytes.Buffer
	if err := renderParity(&buf, d); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| Root mode | ✅ 1777 | not run | inspect |",
		"| HOME | HOME=/tmp | not run | inspect |",
		"**not run**: forbidden\n  ```\n  command: id -u\n  error: uid 65534\n  ```\n",
		"`run --inspect-out x`",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("rendered table lacks %q:\n%s", want, buf.String())
		}
	}
}
