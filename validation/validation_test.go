package validation_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/config/crd"
	"github.com/fljob-dev/fljob/test/manifests"
	"github.com/fljob-dev/fljob/validation"
)

// apply decodes a case's manifest and validates it as a create, or as an
// update of its base.
func apply(t *testing.T, v *validation.Validator, c manifests.Case) (*unstructured.Unstructured, error) {
	t.Helper()
	ctx := context.Background()
	var old *unstructured.Unstructured
	if c.Base != "" {
		base, err := v.Decode([]byte(c.Base))
		if err != nil {
			t.Fatalf("decode base: %v", err)
		}
		if err := v.Create(ctx, base); err != nil {
			t.Fatalf("create base: %v", err)
		}
		base.SetResourceVersion("1")
		old = base
	}
	u, err := v.Decode([]byte(c.YAML))
	if err != nil {
		return nil, err
	}
	if old != nil {
		return u, v.Update(ctx, u, old)
	}
	return u, v.Create(ctx, u)
}

func TestInvalidManifests(t *testing.T) {
	v, err := validation.Default()
	if err != nil {
		t.Fatal(err)
	}
	if len(manifests.Invalid) < 20 {
		t.Fatalf("the shared table has %d invalid manifests, want at least 20", len(manifests.Invalid))
	}
	for _, c := range manifests.Invalid {
		t.Run(c.Name, func(t *testing.T) {
			_, err := apply(t, v, c)
			if cerr := c.Check(err); cerr != nil {
				t.Error(cerr)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			t.Logf("%v", err)
		})
	}
}

func TestValidManifests(t *testing.T) {
	v, err := validation.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range manifests.Valid {
		t.Run(c.Name, func(t *testing.T) {
			u, err := apply(t, v, c)
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if _, err := validation.ToFLJob(u); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDecodeAppliesDefaults(t *testing.T) {
	v, err := validation.Default()
	if err != nil {
		t.Fatal(err)
	}
	u, err := v.Decode([]byte(manifests.Valid[1].YAML))
	if err != nil {
		t.Fatal(err)
	}
	job, err := validation.ToFLJob(u)
	if err != nil {
		t.Fatal(err)
	}
	type defaults struct {
		PullPolicy         fljobv1.PullPolicy
		MountPath          string
		SizeLimit          string
		User, Group        int64
		Backoff            *int32
		Pending, Grace     *int64
		Protocol           fljobv1.Protocol
		TTL                *int32
		ActiveDeadline     *int64
		StatusPhase        fljobv1.Phase
		ResourceLimitsZero bool
	}
	got := defaults{
		PullPolicy: job.Spec.ImagePullPolicy, MountPath: job.Spec.Workspace.MountPath,
		SizeLimit: job.Spec.Workspace.SizeLimit.String(),
		User:      job.Spec.RunAsUser, Group: job.Spec.RunAsGroup,
		Backoff: job.Spec.BackoffLimit, Pending: job.Spec.PendingDeadlineSeconds,
		Grace: job.Spec.TerminationGracePeriodSeconds, Protocol: job.Spec.Ports[0].Protocol,
		TTL: job.Spec.TTLSecondsAfterFinished, ActiveDeadline: job.Spec.ActiveDeadlineSeconds,
		ResourceLimitsZero: job.Spec.Resources.CPU == nil && job.Spec.Resources.Memory == nil,
	}
	want := defaults{
		PullPolicy: fljobv1.PullIfNotPresent, MountPath: fljobv1.DefaultMountPath, SizeLimit: "1Gi",
		User: 1000, Group: 1000, Backoff: ptr.To[int32](0), Pending: ptr.To[int64](120),
		Grace: ptr.To[int64](30), Protocol: "TCP", ResourceLimitsZero: true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestCreateDropsStatusAndUpdateKeepsIt(t *testing.T) {
	v, err := validation.Default()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	doc := manifests.Valid[0].YAML + "status:\n  phase: Succeeded\n"
	u, err := v.Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	u.SetResourceVersion("7")
	if _, ok := u.Object["status"]; ok {
		t.Errorf("create kept the manifest's status: %v", u.Object["status"])
	}
	u.Object["status"] = map[string]any{"phase": "Running"}
	next, err := v.Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Update(ctx, next, u); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"phase": "Running"}, next.Object["status"]); diff != "" {
		t.Errorf("status after update (-want +got):\n%s", diff)
	}
	if rv := next.GetResourceVersion(); rv != "7" {
		t.Errorf("resourceVersion after update = %q, want the stored 7", rv)
	}
}

func TestStatusUpdateValidatesStatus(t *testing.T) {
	v, err := validation.Default()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old, err := v.Decode([]byte(manifests.Valid[0].YAML))
	if err != nil {
		t.Fatal(err)
	}
	old.SetResourceVersion("3")
	cases := []struct {
		name   string
		status map[string]any
		want   string
	}{
		{"valid", map[string]any{"phase": "Running", "attempts": int64(1)}, ""},
		{"unknown phase", map[string]any{"phase": "Lost"},
			`status.phase: Unsupported value: "Lost"`},
		{"reason too long", map[string]any{"reason": strings.Repeat("r", 129)},
			"status.reason: Too long: may not be more than 128 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := old.DeepCopy()
			u.Object["status"] = c.status
			err := v.StatusUpdate(ctx, u, old)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if c.want == "" && err != nil || !strings.Contains(got, c.want) {
				t.Errorf("StatusUpdate() = %v, want an error holding %q", err, c.want)
			}
		})
	}
}

func TestDecodeRejectsMalformedDocuments(t *testing.T) {
	v, err := validation.Default()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, doc, want string }{
		{"not YAML", "spec: [unclosed", "malformed YAML"},
		{"duplicate key", "apiVersion: fljob.dev/v1\nkind: FLJob\nkind: FLJob\n", "malformed YAML"},
		{"a list", "- a\n- b\n", "malformed manifest"},
		{"another kind", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n", "cannot be handled as a FLJob"},
		{"metadata of the wrong type", "apiVersion: fljob.dev/v1\nkind: FLJob\nmetadata:\n  name: 5\n",
			"cannot be handled as a FLJob"},
		{"unknown metadata field", "apiVersion: fljob.dev/v1\nkind: FLJob\nmetadata:\n  name: a\n  colour: b\n",
			`unknown field "metadata.colour"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Decode([]byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Decode() = %v, want an error holding %q", err, c.want)
			}
		})
	}
}

// BenchmarkDecodeAndCreate measures validating one manifest for create.
func BenchmarkDecodeAndCreate(b *testing.B) {
	v, err := validation.Default()
	if err != nil {
		b.Fatal(err)
	}
	doc := []byte(manifests.Valid[2].YAML)
	for b.Loop() {
		u, err := v.Decode(doc)
		if err != nil {
			b.Fatal(err)
		}
		if err := v.Create(context.Background(), u); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNewRefusesWhatTheServerRefuses checks that a CRD the API server
// would not install is refused: here a CEL rule calling sign() as a member
// of a quantity, which the server's compiler rejects.
func TestNewRefusesWhatTheServerRefuses(t *testing.T) {
	if _, err := validation.New(crd.FLJobCRD, "v1"); err != nil {
		t.Fatalf("the embedded CRD is refused: %v", err)
	}
	bad := strings.Replace(string(crd.FLJobCRD), "rule: self >= 1", "rule: self.sign() >= 1", 1)
	if bad == string(crd.FLJobCRD) {
		t.Fatal("the CRD has no rule to break")
	}
	_, err := validation.New([]byte(bad), "v1")
	if err == nil || !strings.Contains(err.Error(), "the API server would refuse the CRD") ||
		!strings.Contains(err.Error(), "rule compile error") {
		t.Errorf("New() with a rule that does not compile = %v", err)
	}
	if _, err := validation.New(crd.FLJobCRD, "v2"); err == nil {
		t.Errorf("New() of a version the CRD lacks succeeded")
	}
}

// TestExampleManifestsAreValid validates the manifests shipped with the
// project, unchanged but for the namespace kubectl would give them.
func TestExampleManifestsAreValid(t *testing.T) {
	v, err := validation.Default()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, pattern := range []string{"../examples/*/manifests/*.yaml", "../config/samples/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 3 {
		t.Fatalf("found %d example manifests, want at least the demo's 3", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := validation.DecodeDocument(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if obj["kind"] != "FLJob" {
			continue
		}
		u, err := v.Decode(data)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if u.GetNamespace() == "" {
			u.SetNamespace("default")
		}
		if err := v.Create(context.Background(), u); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
