package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/localstore"
)

func newApplyCommand(g *globals) *cobra.Command {
	var files []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILENAME",
		Short: "Create or update FLJobs and Secrets from manifests",
		Long: `Apply validates every manifest with the FLJob CRD's schema and rules, as an
API server would, and changes nothing unless all of them are valid. An
applied FLJob replaces the spec, labels and annotations of a stored one;
its status and finalizers are the controller's.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.openStore()
			if err != nil {
				return err
			}
			objs, err := g.load(cmd, s, files)
			if err != nil {
				return err
			}
			_, err = applyObjects(cmd.Context(), s, objs, dryRun, g.stdout, g.stderr)
			return err
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "Manifest file or directory; - reads standard input.")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "Validate and print what would change, without changing it.")
	return cmd
}

// load reads and decodes the manifests of files.
func (g *globals) load(cmd *cobra.Command, s *localstore.Store, files []string) ([]*object, error) {
	docs, err := readDocuments(files, os.Stdin)
	if err != nil {
		return nil, err
	}
	ns := nsPolicy{namespace: g.namespace, enforce: cmd.Flags().Changed("namespace")}
	objs := make([]*object, 0, len(docs))
	var errs []error
	seen := map[string]string{}
	for _, d := range docs {
		o, err := decode(d, s.Validator(), ns)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		id := o.kind() + " " + o.key().String()
		if first, dup := seen[id]; dup {
			errs = append(errs, fmt.Errorf("%s: %s is also in %s", o.source, id, first))
			continue
		}
		seen[id] = o.source
		objs = append(objs, o)
	}
	return objs, report(errs, g.stderr)
}

// report prints one line per error and returns errReported when there
// are several, the error itself when there is one.
func report(errs []error, stderr io.Writer) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	for _, err := range errs {
		fmt.Fprintf(stderr, "error: %s\n", oneLine(err.Error()))
	}
	return errReported
}

// applyObjects validates every object against the store, then applies
// them, Secrets first. Nothing is written unless all are valid. It prints
// one line per object, as kubectl does, and returns the FLJobs applied.
func applyObjects(ctx context.Context, s *localstore.Store, objs []*object, dryRun bool,
	stdout, stderr io.Writer) ([]*fljobv1.FLJob, error) {
	ordered := make([]*object, 0, len(objs))
	for _, o := range objs {
		if o.secret != nil {
			ordered = append(ordered, o)
		}
	}
	for _, o := range objs {
		if o.fljob != nil {
			ordered = append(ordered, o)
		}
	}
	var errs []error
	for _, o := range ordered {
		if _, _, err := applyOne(ctx, s, o, true); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o.source, err))
		}
	}
	if err := report(errs, stderr); err != nil {
		return nil, err
	}
	var jobs []*fljobv1.FLJob
	for _, o := range ordered {
		res, job, err := applyOne(ctx, s, o, dryRun)
		if err != nil {
			return jobs, fmt.Errorf("%s: %w", o.source, err)
		}
		suffix := ""
		if dryRun {
			suffix = " (dry run)"
		}
		fmt.Fprintf(stdout, "%s/%s %s%s\n", o.kind(), o.key().Name, res, suffix)
		if job != nil {
			jobs = append(jobs, job)
		}
	}
	return jobs, nil
}

func applyOne(ctx context.Context, s *localstore.Store, o *object, dryRun bool) (localstore.ApplyResult, *fljobv1.FLJob, error) {
	if o.secret != nil {
		res, err := s.ApplySecret(ctx, o.secret, dryRun)
		return res, nil, err
	}
	// Apply fills in what the server owns; keep the decoded object intact
	// for the real apply after the dry run.
	return s.Apply(ctx, o.fljob.DeepCopy(), dryRun)
}

// errNoObjects is returned when manifests hold no FLJob where one is needed.
var errNoObjects = errors.New("the manifests hold no FLJob")
