package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
)

func newGetCommand(g *globals) *cobra.Command {
	var output string
	var all bool
	cmd := &cobra.Command{
		Use:     "get [NAME...]",
		Aliases: []string{"list"},
		Short:   "List FLJobs",
		Long: `Get prints FLJobs as a table (NAME ROLE SITE JOB-ID PHASE AGE; -o wide adds
ATTEMPTS RC REASON), or as YAML, JSON or names.`,
		RunE: func(cmd *cobra.Command, names []string) error {
			switch output {
			case "", "wide", "yaml", "json", "name":
			default:
				return fmt.Errorf("unknown output format %q: want wide, yaml, json or name", output)
			}
			s, err := g.openStore()
			if err != nil {
				return err
			}
			var jobs []fljobv1.FLJob
			if len(names) == 0 {
				ns := g.namespace
				if all {
					ns = ""
				}
				if jobs, err = s.List(cmd.Context(), ns); err != nil {
					return err
				}
				if len(jobs) == 0 && output == "" || len(jobs) == 0 && output == "wide" {
					if all {
						fmt.Fprintln(g.stderr, "No resources found")
					} else {
						fmt.Fprintf(g.stderr, "No resources found in %s namespace.\n", g.namespace)
					}
					return nil
				}
			}
			for _, n := range names {
				job, err := s.Get(cmd.Context(), backends.Key{Namespace: g.namespace, Name: n})
				if err != nil {
					return err
				}
				jobs = append(jobs, *job)
			}
			return printJobs(g.stdout, jobs, output, all, len(names) == 1)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Output format: wide, yaml, json or name.")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "List the FLJobs of every namespace.")
	return cmd
}

// printJobs prints jobs in the output format; single prints one object
// rather than a list for yaml and json.
func printJobs(w io.Writer, jobs []fljobv1.FLJob, output string, withNamespace, single bool) error {
	switch output {
	case "yaml", "json":
		var obj any = &fljobv1.FLJobList{
			TypeMeta: metav1.TypeMeta{APIVersion: fljobv1.GroupVersion.String(), Kind: "FLJobList"},
			Items:    jobs,
		}
		if single {
			obj = &jobs[0]
		}
		return printObject(w, obj, output)
	case "name":
		for _, j := range jobs {
			fmt.Fprintf(w, "fljob.fljob.dev/%s\n", j.Name)
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	header := "NAME\tROLE\tSITE\tJOB-ID\tPHASE\tAGE"
	if withNamespace {
		header = "NAMESPACE\t" + header
	}
	if output == "wide" {
		header += "\tATTEMPTS\tRC\tREASON"
	}
	fmt.Fprintln(tw, header)
	now := time.Now()
	for _, j := range jobs {
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", j.Name, j.Spec.Role, j.Spec.Site, j.Spec.JobID,
			orNone(string(phaseOf(&j))), age(j.CreationTimestamp, now))
		if withNamespace {
			row = j.Namespace + "\t" + row
		}
		if output == "wide" {
			row += fmt.Sprintf("\t%d\t%s\t%s", j.Status.Attempts, intOrNone(j.Status.ReturnCode),
				orNone(j.Status.Reason))
		}
		fmt.Fprintln(tw, row)
	}
	return tw.Flush()
}

// phaseOf is the phase to show: Terminating while a deletion is pending.
func phaseOf(j *fljobv1.FLJob) fljobv1.Phase {
	if j.DeletionTimestamp != nil {
		return "Terminating"
	}
	return j.Status.Phase
}

func printObject(w io.Writer, obj any, format string) error {
	if format == "json" {
		data, err := json.MarshalIndent(obj, "", "    ")
		if err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", data)
		return err
	}
	data, err := yaml.Marshal(obj)
	if err != nil {
		return fmt.Errorf("encode YAML: %w", err)
	}
	_, err = w.Write(data)
	return err
}

func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func intOrNone(p *int32) string {
	if p == nil {
		return "<none>"
	}
	return strconv.Itoa(int(*p))
}
