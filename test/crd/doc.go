// Package crd proves the generated FLJob CRD on a real kube-apiserver: every
// valid manifest of the shared table (test/manifests) is accepted, and every
// invalid one is rejected with a message that names the field. The
// validation package runs the same table without an API server, so the two
// modes of fljob accept and reject alike.
package crd
