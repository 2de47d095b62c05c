// Package manifests is the one table of FLJob manifests that every mode of
// fljob must accept or reject alike: the envtest suite runs it against a
// real kube-apiserver with the CRD installed, the validation package and
// the single-host CLI run it without one. Each invalid case names the
// field the rejection must name and a part of the message the API server
// gives, so both modes are held to the same words.
package manifests
