// Package conformance proves that both backends enforce the one isolation
// model (package backends): it runs the probe image (test/probe) as FLJobs on
// each backend, checks every invariant from inside the job process, and
// writes what it observed to docs/parity.md, one row per invariant and one
// column per backend.
//
// Both columns go through the real controller: the same FLJob objects are
// created in a real API server and reconciled by controllers.Reconciler.
//
//   - docker: a kube-apiserver and etcd (test/envtest) hold the FLJobs and
//     the Secret; the reconciler, through controllers.KubeController, runs
//     them with backends/docker on this machine's Docker Engine.
//   - kubernetes: the single-node cluster of hack/node.sh (a real kubelet,
//     containerd and runc on this machine), with the operator wired by
//     operator.Setup and backends/k8s. With FLJOB_CONFORMANCE_KUBECONFIG the
//     column runs against another cluster instead (hack/kind-e2e.sh); with
//     FLJOB_CONFORMANCE_OPERATOR=external the suite only creates FLJobs and
//     leaves reconciling to an operator deployed in that cluster.
//
// The suite is part of go test ./... (make test). TestMain brings the node up
// with hack/node.sh up and takes it down at the end, unless it was already
// up. The policy, also written in docs/parity.md:
//
//   - docker: a missing Docker Engine skips the column, or fails it when
//     CI=true.
//   - kubernetes: when hack/node.sh up exits 3 (the machine forbids a step,
//     for example not root), the column says so with the exact command and
//     error and is skipped, on CI too; any other failure of the node script
//     is a bug and fails the test. FLJOB_CONFORMANCE_NODE=skip skips the
//     column on purpose.
//
// Under go test -short nothing runs and docs/parity.md is left alone.
//
// Other settings: FLJOB_CONFORMANCE_NODE_EXEC is a command prefix that runs
// a shell on the Kubernetes node (for kind: "docker exec -i <node>"), used to
// prepare the workspace there; FLJOB_CONFORMANCE_BACKENDS limits the columns
// (docker, kubernetes, or both comma-separated); FLJOB_PARITY_OUT writes the
// table elsewhere than docs/parity.md.
package conformance
