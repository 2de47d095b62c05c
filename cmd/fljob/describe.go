package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/backends"
	"github.com/fljob-dev/fljob/controllers"
	"github.com/fljob-dev/fljob/localstore"
)

func newDescribeCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME...",
		Short: "Show an FLJob's spec, status, conditions and recent events",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, names []string) error {
			s, err := g.openStore()
			if err != nil {
				return err
			}
			for i, n := range names {
				key := backends.Key{Namespace: g.namespace, Name: n}
				job, err := s.Get(cmd.Context(), key)
				if err != nil {
					return err
				}
				evs, err := s.Events(cmd.Context(), key)
				if err != nil {
					return err
				}
				if i > 0 {
					fmt.Fprintln(g.stdout)
				}
				describe(g.stdout, job, evs, time.Now())
			}
			return nil
		},
	}
}

// describe prints an FLJob for a person, in kubectl describe's layout.
func describe(w io.Writer, j *fljobv1.FLJob, evs []localstore.Event, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	defer tw.Flush()
	p := func(indent int, label, format string, args ...any) {
		fmt.Fprintf(tw, "%s%s:\t%s\n", strings.Repeat("  ", indent), label, fmt.Sprintf(format, args...))
	}
	p(0, "Name", "%s", j.Name)
	p(0, "Namespace", "%s", j.Namespace)
	p(0, "Labels", "%s", mapText(j.Labels))
	p(0, "Created", "%s (%s ago)", j.CreationTimestamp.UTC().Format(time.RFC3339), age(j.CreationTimestamp, now))
	if j.DeletionTimestamp != nil {
		p(0, "Deleting since", "%s", j.DeletionTimestamp.UTC().Format(time.RFC3339))
	}
	sp := &j.Spec
	fmt.Fprintln(tw, "Spec:")
	p(1, "Role", "%s", sp.Role)
	p(1, "Site", "%s", sp.Site)
	p(1, "Job ID", "%s", sp.JobID)
	p(1, "Image", "%s (pull %s)", sp.Image, sp.ImagePullPolicy)
	p(1, "Command", "%s", orNone(strings.Join(sp.Command, " ")))
	p(1, "Args", "%s", orNone(strings.Join(sp.Args, " ")))
	p(1, "Env", "%s", envText(sp.Env))
	p(1, "Ports", "%s", portsText(sp.Ports))
	p(1, "Workspace", "%s at %s (root limit %s)", sourceText(sp.Workspace.Source), sp.Workspace.MountPath,
		quantityText(sp.Workspace.SizeLimit))
	p(1, "User", "%d:%d", sp.RunAsUser, sp.RunAsGroup)
	p(1, "Resources", "cpu %s, memory %s, gpus %d", quantityText(sp.Resources.CPU),
		quantityText(sp.Resources.Memory), sp.Resources.GPUs)
	p(1, "Backoff limit", "%s", int32Text(sp.BackoffLimit))
	p(1, "Deadlines", "active %s, pending %s, grace %s", secondsText(sp.ActiveDeadlineSeconds),
		secondsText(sp.PendingDeadlineSeconds), secondsText(sp.TerminationGracePeriodSeconds))
	p(1, "TTL after finished", "%s", int32Text(sp.TTLSecondsAfterFinished))

	st := &j.Status
	fmt.Fprintln(tw, "Status:")
	p(1, "Phase", "%s", orNone(string(phaseOf(j))))
	p(1, "Reason", "%s", orNone(st.Reason))
	p(1, "Message", "%s", orNone(st.Message))
	p(1, "Attempts", "%d (%d failed)", st.Attempts, st.Failed)
	p(1, "Exit code", "%s", intOrNone(st.ExitCode))
	rc := intOrNone(st.ReturnCode)
	if st.ReturnCode != nil {
		rc += " (" + controllers.ReturnCodeText(*st.ReturnCode) + ")"
	}
	p(1, "Return code", "%s", rc)
	p(1, "Started", "%s", timeText(st.StartTime))
	p(1, "Completed", "%s", timeText(st.CompletionTime))
	if wl := st.Workload; wl != nil {
		p(1, "Workload", "%s %s (attempt %d, id %s)", wl.Backend, wl.Name, wl.Attempt, shortID(wl.ID))
	} else {
		p(1, "Workload", "<none>")
	}
	p(1, "Job directory", "%s", resultsText(j))
	tw.Flush()

	fmt.Fprintln(w, "Conditions:")
	if len(st.Conditions) == 0 {
		fmt.Fprintln(w, "  <none>")
	} else {
		ct := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(ct, "  Type\tStatus\tReason\tLast Transition\tMessage")
		for _, c := range st.Conditions {
			fmt.Fprintf(ct, "  %s\t%s\t%s\t%s ago\t%s\n", c.Type, c.Status, c.Reason,
				age(c.LastTransitionTime, now), c.Message)
		}
		ct.Flush()
	}
	fmt.Fprintln(w, "Events:")
	if len(evs) == 0 {
		fmt.Fprintln(w, "  <none>")
		return
	}
	et := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(et, "  Type\tReason\tAge\tCount\tMessage")
	for _, e := range evs {
		fmt.Fprintf(et, "  %s\t%s\t%s\t%d\t%s\n", e.Type, e.Reason, age(e.Last, now), e.Count, e.Note)
	}
	et.Flush()
}

func mapText(m map[string]string) string {
	if len(m) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

func envText(env []fljobv1.EnvVar) string {
	parts := make([]string, 0, len(env))
	for _, e := range env {
		if e.ValueFrom != nil {
			ref := e.ValueFrom.SecretKeyRef
			parts = append(parts, fmt.Sprintf("%s from secret %s[%s]", e.Name, ref.Name, ref.Key))
			continue
		}
		parts = append(parts, e.Name+"="+e.Value)
	}
	return orNone(strings.Join(parts, ", "))
}

func portsText(ports []fljobv1.Port) string {
	parts := make([]string, 0, len(ports))
	for _, p := range ports {
		s := fmt.Sprintf("%d/%s", p.ContainerPort, p.Protocol)
		if p.Name != "" {
			s += " (" + p.Name + ")"
		}
		parts = append(parts, s)
	}
	return orNone(strings.Join(parts, ", "))
}

func sourceText(src fljobv1.WorkspaceSource) string {
	switch {
	case src.HostPath != nil:
		return "host path " + src.HostPath.Path
	case src.Volume != nil:
		return "volume " + src.Volume.Name
	}
	return "<none>"
}

// resultsText says where the job's directory, and so its results, live.
func resultsText(j *fljobv1.FLJob) string {
	src := j.Spec.Workspace.Source
	switch {
	case src.HostPath != nil:
		return strings.TrimSuffix(src.HostPath.Path, "/") + "/" + j.Spec.JobID
	case src.Volume != nil:
		return fmt.Sprintf("%s/ in volume %s", j.Spec.JobID, src.Volume.Name)
	}
	return "<none>"
}

func quantityText(q *resource.Quantity) string {
	if q == nil {
		return "<none>"
	}
	return q.String()
}

func int32Text(p *int32) string {
	if p == nil {
		return "<none>"
	}
	return fmt.Sprint(*p)
}

func secondsText(p *int64) string {
	if p == nil {
		return "<none>"
	}
	return fmt.Sprintf("%ds", *p)
}

func timeText(t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "<none>"
	}
	return t.UTC().Format(time.RFC3339)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return orNone(id)
}
