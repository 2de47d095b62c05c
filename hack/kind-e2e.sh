#!/usr/bin/env bash
# NOTE: this script cannot run on the machines fljob is developed on: kind
# boots its node from the kindest/node image, which only a registry serves,
# and those machines reach no registry (only the Go module proxy and
# Debian's archive). There, the conformance suite runs its Kubernetes column
# on the real single node of hack/node.sh instead (see docs/parity.md). This
# script is for users and for CI runners that can pull kindest/node.
#
# Runs the conformance suite (test/conformance) against a kind cluster with
# the operator deployed in it, as a user would install it:
#
#   1. create a kind cluster (KIND_CLUSTER_NAME, default fljob-e2e;
#      KIND_NODE_IMAGE picks the node image, default kind's own);
#   2. build the operator image from the repository's Dockerfile
#      (make docker-build IMG=fljob-operator:dev) and the probe image
#      (hack/build-images.sh probe), and load both into the cluster;
#   3. install the CRD, RBAC and operator (kubectl apply -k config/default)
#      and wait for the operator's rollout;
#   4. run go test ./test/conformance/ with the cluster's kubeconfig, the
#      in-cluster operator doing the reconciling, and the kind node's shell
#      (docker exec) preparing the host-path workspace;
#   5. delete the cluster, unless --keep.
#
#   hack/kind-e2e.sh [--keep]
#
# Needs docker, kind, go and kubectl on PATH (kubectl from bin/k8s when
# hack/install-testbin.sh built it). The parity table of the kind run is
# written to bin/kind-e2e/parity.md, not to docs/parity.md.
# FLJOB_CONFORMANCE_BACKENDS=docker,kubernetes also runs the docker column.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER=${KIND_CLUSTER_NAME:-fljob-e2e}
OUT=$ROOT/bin/kind-e2e
OPERATOR_IMAGE=fljob-operator:dev
PROBE_IMAGE=fljob-probe:dev

export GOTOOLCHAIN=local
export PATH=$ROOT/bin/k8s:$PATH

log() { echo "kind-e2e: $*" >&2; }
die() { echo "kind-e2e: error: $*" >&2; exit 1; }

keep=false
case ${1:-} in
"") ;;
--keep) keep=true ;;
*) echo "usage: $0 [--keep]" >&2; exit 2 ;;
esac

for tool in docker kind go kubectl; do
	command -v "$tool" >/dev/null || die "$tool not found on PATH"
done

mkdir -p "$OUT"
export KUBECONFIG=$OUT/kubeconfig

cleanup() {
	if $keep; then
		log "keeping cluster $CLUSTER (KUBECONFIG=$KUBECONFIG)"
	else
		kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
	fi
}

start=$SECONDS
log "creating kind cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 180s \
	${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
trap cleanup EXIT

log "building $OPERATOR_IMAGE and $PROBE_IMAGE"
make -C "$ROOT" docker-build IMG="$OPERATOR_IMAGE"
"$ROOT/hack/build-images.sh" probe
kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$PROBE_IMAGE"

log "installing the CRD and the operator (config/default)"
kubectl apply -k "$ROOT/config/default"
kubectl -n fljob-system rollout status deployment/fljob-operator --timeout=180s

# A single-node cluster: its only node holds the host-path workspaces.
node=$(kind get nodes --name "$CLUSTER" | head -n1)
[[ -n $node ]] || die "kind reports no node for cluster $CLUSTER"

log "running the conformance suite against $CLUSTER (node $node)"
(
	cd "$ROOT"
	FLJOB_CONFORMANCE_KUBECONFIG=$KUBECONFIG \
		FLJOB_CONFORMANCE_OPERATOR=external \
		FLJOB_CONFORMANCE_NODE_EXEC="docker exec -i $node" \
		FLJOB_CONFORMANCE_BACKENDS=${FLJOB_CONFORMANCE_BACKENDS:-kubernetes} \
		FLJOB_PARITY_OUT=$OUT/parity.md \
		go test ./test/conformance/ -run TestConformance -count=1 -v -timeout 30m
)
log "passed in $((SECONDS - start))s; table in $OUT/parity.md"
