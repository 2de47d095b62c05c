// Package kube is the integration suite of the FLJob controller in
// Kubernetes mode: the real reconciler and Kubernetes backend under a
// controller-runtime manager, against a real kube-apiserver and etcd
// (envtest), with kwok playing the kubelet so that pods run, succeed and
// fail with chosen exit and NVFlare return codes (see package
// github.com/fljob-dev/fljob/test/kwok). Every test asserts on the objects
// in the API server: the FLJob, its Pod and Service, and the events.
//
// The package holds tests only. Run it with
//
//	hack/install-testbin.sh && go test -count=1 ./test/e2e/kube/
package kube
