package validation

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/model"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/operation"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/common"
	"k8s.io/apiserver/pkg/features"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"sigs.k8s.io/yaml"

	fljobv1 "github.com/fljob-dev/fljob/api/v1"
	"github.com/fljob-dev/fljob/config/crd"
)

// Validator validates objects of one CRD version as the API server that
// serves the CRD would. It is safe for concurrent use.
type Validator struct {
	gvk        schema.GroupVersionKind
	namespaced bool
	// structural is the version's structural schema with its defaults
	// pruned, as the server keeps it for pruning and defaulting.
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	status     apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

var (
	defaultOnce      sync.Once
	defaultValidator *Validator
	errDefault       error
)

// Default returns the Validator of the embedded FLJob CRD, built once.
func Default() (*Validator, error) {
	defaultOnce.Do(func() {
		defaultValidator, errDefault = New(crd.FLJobCRD, fljobv1.GroupVersion.Version)
	})
	return defaultValidator, errDefault
}

// New builds the Validator of one version of the CRD in crdYAML.
func New(crdYAML []byte, version string) (*Validator, error) {
	var def apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(crdYAML, &def); err != nil {
		return nil, fmt.Errorf("decode CRD: %w", err)
	}
	if err := validateDefinition(&def); err != nil {
		return nil, err
	}
	var ver *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range def.Spec.Versions {
		if def.Spec.Versions[i].Name == version {
			ver = &def.Spec.Versions[i]
		}
	}
	if ver == nil || ver.Schema == nil || ver.Schema.OpenAPIV3Schema == nil {
		return nil, fmt.Errorf("CRD %s has no schema for version %q", def.Name, version)
	}
	var internal apiextensions.CustomResourceValidation
	err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(
		ver.Schema, &internal, nil)
	if err != nil {
		return nil, fmt.Errorf("convert CRD schema: %w", err)
	}
	props := internal.OpenAPIV3Schema
	s, err := structuralschema.NewStructural(props)
	if err != nil {
		return nil, fmt.Errorf("CRD schema is not structural: %w", err)
	}
	s = s.DeepCopy()
	if err := defaulting.PruneDefaults(s); err != nil {
		return nil, fmt.Errorf("prune CRD defaults: %w", err)
	}
	v := &Validator{
		gvk:        schema.GroupVersionKind{Group: def.Spec.Group, Version: version, Kind: def.Spec.Names.Kind},
		namespaced: def.Spec.Scope == apiextensionsv1.NamespaceScoped,
		structural: s,
		cel:        cel.NewValidator(s, true, celconfig.PerCallLimit),
	}
	if v.schema, _, err = apiservervalidation.NewSchemaValidator(props); err != nil {
		return nil, fmt.Errorf("build schema validator: %w", err)
	}
	if st, ok := props.Properties["status"]; ok && ver.Subresources != nil && ver.Subresources.Status != nil {
		if v.status, _, err = apiservervalidation.NewSchemaValidator(&st); err != nil {
			return nil, fmt.Errorf("build status validator: %w", err)
		}
	}
	return v, nil
}

// validateDefinition checks the CRD as the API server does before it
// accepts it: defaults, then the server's CRD validation, which compiles
// every CEL rule in the environment the server uses for new CRDs. A CRD
// the server would refuse is refused here too, so the single-host mode
// never accepts manifests under rules a cluster could not even install.
func validateDefinition(def *apiextensionsv1.CustomResourceDefinition) error {
	def = def.DeepCopy()
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(def)
	var internal apiextensions.CustomResourceDefinition
	err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(def, &internal, nil)
	if err != nil {
		return fmt.Errorf("convert CRD: %w", err)
	}
	errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), &internal)
	if len(errs) > 0 {
		return fmt.Errorf("the API server would refuse the CRD: %w",
			apierrors.NewInvalid(schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"},
				def.Name, errs))
	}
	return nil
}

// GroupVersionKind returns the kind the Validator validates.
func (v *Validator) GroupVersionKind() schema.GroupVersionKind { return v.gvk }

// GroupKind returns the group and kind, as errors name them.
func (v *Validator) GroupKind() schema.GroupKind { return v.gvk.GroupKind() }

// Decode reads one YAML or JSON document as the API server's decoder reads a
// request body with strict field validation: fields the schema does not know
// are an error naming each of them, null values without defaults are
// dropped, then defaults are applied. The document must be of the
// Validator's kind.
func (v *Validator) Decode(doc []byte) (*unstructured.Unstructured, error) {
	obj, err := DecodeDocument(doc)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: obj}
	if gvk := u.GroupVersionKind(); gvk != v.gvk {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: wrong kind",
			gvk.Kind, gvk.Version, v.gvk.Kind))
	}
	unknown, err := v.coerce(u)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v",
			v.gvk.Kind, v.gvk.Version, v.gvk.Kind, err))
	}
	if len(unknown) > 0 {
		errs := make([]error, 0, len(unknown))
		for _, p := range unknown {
			errs = append(errs, fmt.Errorf("unknown field %q", p))
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v",
			v.gvk.Kind, v.gvk.Version, v.gvk.Kind, runtime.NewStrictDecodingError(errs)))
	}
	defaulting.Default(u.Object, v.structural)
	return u, nil
}

// DecodeDocument turns one YAML or JSON document into a JSON object, with
// numbers as int64 or float64 like the API server's decoder. Duplicate keys
// and documents that are not objects are errors.
func DecodeDocument(doc []byte) (map[string]any, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("malformed YAML: %w", err)
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(js, &obj); err != nil {
		return nil, fmt.Errorf("malformed manifest: %w", err)
	}
	if obj == nil {
		return nil, errors.New("malformed manifest: not an object")
	}
	return obj, nil
}

// coerce prunes what the schema does not know and returns the paths it
// pruned, as the server's schema coercer does before defaulting.
func (v *Validator) coerce(u *unstructured.Unstructured) ([]string, error) {
	apiVersion, kind := u.GetAPIVersion(), u.GetKind()
	meta, found, unknown, err := objectmeta.GetObjectMetaWithOptions(u.Object,
		objectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	if err != nil {
		return nil, err
	}
	unknown = append(unknown, pruning.PruneWithOptions(u.Object, v.structural, true,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})...)
	defaulting.PruneNonNullableNullsWithoutDefaults(u.Object, v.structural)
	ferr, paths := objectmeta.CoerceWithOptions(nil, u.Object, v.structural, false,
		objectmeta.CoerceOptions{ReturnUnknownFieldPaths: true})
	if ferr != nil {
		return nil, ferr
	}
	unknown = append(unknown, paths...)
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	if found {
		if err := objectmeta.SetObjectMeta(u.Object, meta); err != nil {
			return nil, err
		}
	}
	return unknown, nil
}

// ValidateCreate validates a new object, as the server's custom resource
// strategy does on create. The caller has cleared what create ignores
// (status, when the CRD has a status subresource).
func (v *Validator) ValidateCreate(ctx context.Context, u *unstructured.Unstructured) field.ErrorList {
	if errs := v.validateTypeMeta(u); len(errs) > 0 {
		return errs
	}
	meta, errs := objectMetaOf(u)
	if len(errs) > 0 {
		return errs
	}
	errs = append(errs, metavalidation.ValidateObjectMetaDeclaratively(ctx, operation.Create, meta, nil,
		v.namespaced, metavalidation.NameIsDNSSubdomain, field.NewPath("metadata"), betaEnabled())...)
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, u.Object, v.schema)...)
	errs = append(errs, objectmeta.Validate(ctx, nil, u.Object, v.structural, false)...)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, v.structural, u.Object)...)
	if blocked, err := blockingError(errs); blocked {
		return append(errs, err)
	}
	celErrs, _ := v.cel.Validate(ctx, nil, v.structural, u.Object, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}

// ValidateUpdate validates an update of old to u, with transition rules
// and ratcheting, as the server's custom resource strategy does.
func (v *Validator) ValidateUpdate(ctx context.Context, u, old *unstructured.Unstructured) field.ErrorList {
	errs, corr := v.validateUpdateMeta(ctx, u, old)
	if corr == nil {
		return errs
	}
	errs = append(errs, apiservervalidation.ValidateCustomResourceUpdate(nil, u.Object, old.Object, v.schema,
		apiservervalidation.WithRatcheting(corr))...)
	errs = append(errs, objectmeta.Validate(ctx, nil, u.Object, v.structural, false)...)
	if oldErrs := listtype.ValidateListSetsAndMaps(nil, v.structural, old.Object); len(oldErrs) == 0 {
		errs = append(errs, listtype.ValidateListSetsAndMaps(nil, v.structural, u.Object)...)
	}
	if blocked, err := blockingError(errs); blocked {
		return append(errs, err)
	}
	celErrs, _ := v.cel.Validate(ctx, nil, v.structural, u.Object, old.Object,
		celconfig.RuntimeCELCostBudget, cel.WithRatcheting(corr))
	return append(errs, celErrs...)
}

// ValidateStatusUpdate validates a write of u's status over old, as the
// server's status strategy does.
func (v *Validator) ValidateStatusUpdate(ctx context.Context, u, old *unstructured.Unstructured) field.ErrorList {
	errs, corr := v.validateUpdateMeta(ctx, u, old)
	if corr == nil {
		return errs
	}
	if st, ok := u.Object["status"]; ok && v.status != nil {
		errs = append(errs, apiservervalidation.ValidateCustomResourceUpdate(field.NewPath("status"), st,
			old.Object["status"], v.status, apiservervalidation.WithRatcheting(corr.Key("status")))...)
	}
	if newErrs := listtype.ValidateListSetsAndMaps(nil, v.structural, u.Object); len(newErrs) > 0 {
		if oldErrs := listtype.ValidateListSetsAndMaps(nil, v.structural, old.Object); len(oldErrs) == 0 {
			errs = append(errs, newErrs...)
		}
	}
	if blocked, err := blockingError(errs); blocked {
		return append(errs, err)
	}
	celErrs, _ := v.cel.Validate(ctx, nil, v.structural, u.Object, old.Object,
		celconfig.RuntimeCELCostBudget, cel.WithRatcheting(corr))
	return append(errs, celErrs...)
}

// validateUpdateMeta checks the type and the metadata of an update, and
// correlates the new object with the old one for ratcheting. It returns no
// correlation when the objects cannot be read as objects at all.
func (v *Validator) validateUpdateMeta(ctx context.Context, u, old *unstructured.Unstructured) (
	field.ErrorList, *common.CorrelatedObject) {
	if errs := v.validateTypeMeta(u); len(errs) > 0 {
		return errs, nil
	}
	meta, errs := objectMetaOf(u)
	if len(errs) > 0 {
		return errs, nil
	}
	oldMeta, errs := objectMetaOf(old)
	if len(errs) > 0 {
		return errs, nil
	}
	corr := common.NewCorrelatedObject(u.Object, old.Object, &model.Structural{Structural: v.structural})
	return metavalidation.ValidateObjectMetaDeclaratively(ctx, operation.Update, meta, oldMeta,
		v.namespaced, nil, field.NewPath("metadata"), betaEnabled()), corr
}

// Invalid returns the error the API server answers a rejected object with,
// or nil when errs is empty.
func (v *Validator) Invalid(name string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(v.GroupKind(), name, errs)
}

func (v *Validator) validateTypeMeta(u *unstructured.Unstructured) field.ErrorList {
	var errs field.ErrorList
	if k := u.GetKind(); k != v.gvk.Kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), k, "must be "+v.gvk.Kind))
	}
	if av, want := u.GetAPIVersion(), v.gvk.GroupVersion().String(); av != want {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), av, "must be "+want))
	}
	return errs
}

// objectMetaOf reads an object's metadata the way the server's validator
// does: missing metadata is empty metadata.
func objectMetaOf(u *unstructured.Unstructured) (*metav1.ObjectMeta, field.ErrorList) {
	meta := &metav1.ObjectMeta{}
	raw, ok := u.Object["metadata"]
	if !ok || raw == nil {
		return meta, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, field.ErrorList{field.Invalid(field.NewPath("metadata"), raw,
			fmt.Sprintf("expected map[string]interface{}, got %T", raw))}
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, meta); err != nil {
		return nil, field.ErrorList{field.Invalid(field.NewPath("metadata"), raw, err.Error())}
	}
	return meta, nil
}

func betaEnabled() bool {
	return utilfeature.DefaultFeatureGate.Enabled(features.DeclarativeValidationBeta)
}

// blockingError reports whether errs hold an error after which the server
// skips the CEL rules (a wrong type, a missing field, a value out of an
// enum, too long or too many), and the error it then adds.
func blockingError(errs field.ErrorList) (bool, *field.Error) {
	for _, e := range errs {
		switch e.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong,
			field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return true, field.Invalid(nil, nil, "some validation rules were not checked "+
				"because the object was invalid; correct the existing errors to complete validation")
		}
	}
	return false, nil
}
