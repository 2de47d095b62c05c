package crd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/fljob-dev/fljob/test/envtest"
	"github.com/fljob-dev/fljob/test/manifests"
)

func decode(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatalf("decode manifest: %v", err)
	}
	return u
}

// apply creates the case's manifest, or, when the case has a base, creates
// the base and updates it to the manifest. Unknown fields are refused as
// kubectl does by default (strict field validation).
func apply(ctx context.Context, t *testing.T, c client.Client, mc manifests.Case) error {
	t.Helper()
	obj := decode(t, mc.YAML)
	strict := client.FieldValidation("Strict")
	if mc.Base == "" {
		return c.Create(ctx, obj, strict)
	}
	base := decode(t, mc.Base)
	if err := c.Create(ctx, base, strict); err != nil {
		t.Fatalf("create base of %q: %v", mc.Name, err)
	}
	obj.SetResourceVersion(base.GetResourceVersion())
	return c.Update(ctx, obj, strict)
}

func cleanup(ctx context.Context, t *testing.T, c client.Client, mc manifests.Case) {
	obj := decode(t, mc.YAML)
	if obj.GetName() == "" {
		return
	}
	if err := client.IgnoreNotFound(c.Delete(ctx, obj)); err != nil {
		t.Fatalf("delete %s: %v", obj.GetName(), err)
	}
}

func TestCRDOnRealAPIServer(t *testing.T) {
	env := envtest.StartEnv(t)
	ctx := context.Background()

	t.Run("valid manifests are accepted", func(t *testing.T) {
		for _, mc := range manifests.Valid {
			if err := apply(ctx, t, env.Client, mc); err != nil {
				t.Errorf("%s: rejected: %v", mc.Name, err)
			}
			cleanup(ctx, t, env.Client, mc)
		}
	})

	t.Run("invalid manifests are rejected naming the field", func(t *testing.T) {
		if len(manifests.Invalid) < 20 {
			t.Fatalf("the shared table has %d invalid manifests, want at least 20", len(manifests.Invalid))
		}
		for _, mc := range manifests.Invalid {
			err := apply(ctx, t, env.Client, mc)
			if cerr := mc.Check(err); cerr != nil {
				t.Error(cerr)
			} else {
				t.Logf("%-40s %v", mc.Name, err)
			}
			cleanup(ctx, t, env.Client, mc)
		}
	})

	t.Run("the shipped manifests are accepted as they are", func(t *testing.T) {
		root, err := envtest.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		var files []string
		for _, glob := range []string{"config/samples/*.yaml", "examples/fedavg/manifests/*.yaml"} {
			m, _ := filepath.Glob(filepath.Join(root, glob))
			files = append(files, m...)
		}
		if len(files) < 5 {
			t.Fatalf("found %d shipped manifests, want the 2 samples and the 3 demo manifests", len(files))
		}
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			obj := decode(t, string(raw))
			obj.SetNamespace("default")
			if err := env.Client.Create(ctx, obj, client.FieldValidation("Strict")); err != nil {
				t.Errorf("%s: rejected by the API server: %v", f, err)
				continue
			}
			if err := env.Client.Delete(ctx, obj); err != nil {
				t.Fatalf("delete %s: %v", obj.GetName(), err)
			}
		}
	})

	t.Run("kubectl explain documents every spec field", func(t *testing.T) {
		out := env.Kubectl(t, "explain", "fljob.spec", "--recursive")
		for _, field := range []string{"jobID", "role", "site", "image", "imagePullPolicy", "command",
			"args", "env", "ports", "workspace", "mountPath", "sizeLimit", "source", "hostPath",
			"volume", "resources", "cpu", "memory", "gpus", "runAsUser", "runAsGroup", "backoffLimit",
			"activeDeadlineSeconds", "pendingDeadlineSeconds", "ttlSecondsAfterFinished",
			"terminationGracePeriodSeconds"} {
			if !strings.Contains(out, field) {
				t.Errorf("kubectl explain fljob.spec --recursive lacks %s", field)
			}
		}
		doc := env.Kubectl(t, "explain", "fljob.spec.jobID")
		if !strings.Contains(doc, "safe path segment") {
			t.Errorf("kubectl explain fljob.spec.jobID shows no description:\n%s", doc)
		}
	})
}
