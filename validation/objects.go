package validation

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
)

// Create readies a decoded object for creation as the server does (create
// cannot set status when the CRD has a status subresource) and validates
// it. A rejection is an *apierrors.StatusError of reason Invalid.
func (v *Validator) Create(ctx context.Context, u *unstructured.Unstructured) error {
	if v.status != nil {
		delete(u.Object, "status")
	}
	return v.Invalid(u.GetName(), v.ValidateCreate(ctx, u))
}

// Update readies u to replace old as the server does when a manifest is
// applied over a stored object, and validates it with old, so that
// transition rules hold. The stored status is kept (an update of the main
// resource cannot set it), and so is the metadata the server owns: uid,
// creation time, resource version (unless u names one), generation,
// finalizers and the deletion mark. Labels and annotations are u's.
func (v *Validator) Update(ctx context.Context, u, old *unstructured.Unstructured) error {
	if u.GetResourceVersion() == "" {
		u.SetResourceVersion(old.GetResourceVersion())
	}
	u.SetUID(old.GetUID())
	u.SetCreationTimestamp(old.GetCreationTimestamp())
	u.SetGeneration(old.GetGeneration())
	u.SetFinalizers(old.GetFinalizers())
	u.SetDeletionTimestamp(old.GetDeletionTimestamp())
	u.SetDeletionGracePeriodSeconds(old.GetDeletionGracePeriodSeconds())
	if v.status != nil {
		if st, ok := old.Object["status"]; ok {
			u.Object["status"] = runtime.DeepCopyJSONValue(st)
		} else {
			delete(u.Object, "status")
		}
	}
	return v.Invalid(u.GetName(), v.ValidateUpdate(ctx, u, old))
}

// StatusUpdate validates a write of u's status over old.
func (v *Validator) StatusUpdate(ctx context.Context, u, old *unstructured.Unstructured) error {
	return v.Invalid(u.GetName(), v.ValidateStatusUpdate(ctx, u, old))
}

// ToFLJob converts a decoded object into an FLJob.
func ToFLJob(u *unstructured.Unstructured) (*fljobv1.FLJob, error) {
	job := &fljobv1.FLJob{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, job); err != nil {
		return nil, fmt.Errorf("convert to FLJob: %w", err)
	}
	return job, nil
}

// FromFLJob converts an FLJob into the unstructured form validation reads.
func FromFLJob(job *fljobv1.FLJob) (*unstructured.Unstructured, error) {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(job)
	if err != nil {
		return nil, fmt.Errorf("convert FLJob: %w", err)
	}
	return &unstructured.Unstructured{Object: obj}, nil
}
