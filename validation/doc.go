// Package validation checks FLJob manifests exactly as a Kubernetes API
// server does, without one. It loads the generated CRD embedded in package
// crd and runs the API server's own validation libraries from
// k8s.io/apiextensions-apiserver on it, in the order the server runs them:
//
//   - decoding: unknown fields are found by pruning against the structural
//     schema and rejected like kubectl's strict field validation
//     (`strict decoding error: unknown field "spec.foo"`), then defaults
//     are applied;
//   - create and update: type and object metadata checks, OpenAPI schema
//     validation (types, patterns, enums, bounds), list-map uniqueness and
//     the CEL rules, with the old object on update so that transition rules
//     such as the immutability of spec.jobID, spec.role and spec.site hold,
//     and with validation ratcheting as the server has it;
//   - status updates: the status schema.
//
// The CRD itself is first checked as the API server checks a CRD it is
// asked to install (every CEL rule compiled in the server's environment),
// so a CRD a cluster would refuse is refused here too.
//
// No rule of the FLJob API is written here: they all come from the CRD, so
// the single-host store and an API server accept and reject the same
// manifests with the same messages. Rejections are *apierrors.StatusError
// values worded as the API server words them, one cause per field.
package validation
