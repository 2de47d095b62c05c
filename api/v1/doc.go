// Package v1 holds the fljob.dev/v1 API: the FLJob custom resource, which
// describes one job process (a server job or a client job) of one NVIDIA
// FLARE site, and its status.
//
// The package imports nothing else of the project. Validation lives in the
// generated CRD (OpenAPI bounds, enums and CEL rules), so the API server and
// the single-host store reject exactly the same manifests.
//
// +kubebuilder:object:generate=true
// +groupName=fljob.dev
package v1
