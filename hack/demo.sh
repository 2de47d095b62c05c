#!/usr/bin/env bash
# Runs the fedavg demo on the docker backend, without Kubernetes: one server
# job and two client jobs of examples/fedavg, through `fljob run`.
#
#   hack/demo.sh            (what `make demo` runs)
#
# It builds bin/fljob and the fljob-fedavg:dev image (cached), prepares a
# workspace per site (startup/ and local/ with placeholder files) under
# $FLJOB_DEMO_DIR (default ${TMPDIR:-/tmp}/fljob-demo), renders the
# manifests' host paths to it, and runs them with a state directory of its
# own, so that it never touches your default store. A previous demo in the
# same directory is removed first, with its containers.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO_DIR=${FLJOB_DEMO_DIR:-${TMPDIR:-/tmp}/fljob-demo}
NAMESPACE=fljob-demo
PLACEHOLDER=/var/tmp/fljob-demo
export GOTOOLCHAIN=local

cd "$ROOT"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
	{ echo "demo: the Docker Engine is not reachable (DOCKER_HOST=${DOCKER_HOST:-unset})" >&2; exit 1; }

echo "==> Building bin/fljob and the demo image"
go build -o bin/fljob ./cmd/fljob
hack/build-images.sh fedavg

echo "==> Preparing the demo in $DEMO_DIR"
# A previous demo's containers carry its namespace; remove them with it.
stale=$(docker ps -aq --filter label=app.kubernetes.io/managed-by=fljob \
	--filter "label=fljob.dev/namespace=$NAMESPACE")
if [[ -n $stale ]]; then
	docker rm -f $stale >/dev/null
fi
docker volume ls -q --filter label=app.kubernetes.io/managed-by=fljob \
	--filter "label=fljob.dev/namespace=$NAMESPACE" | xargs -r docker volume rm >/dev/null
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR/manifests"
for site in server site-1 site-2; do
	ws=$DEMO_DIR/workspace/$site
	mkdir -p "$ws/startup" "$ws/local"
	kind=client
	[[ $site == server ]] && kind=server
	printf '{"site": "%s", "note": "placeholder startup kit of the demo"}\n' "$site" \
		>"$ws/startup/fed_$kind.json"
	printf '{"note": "placeholder local configuration of the demo"}\n' >"$ws/local/resources.json"
done
for m in examples/fedavg/manifests/*.yaml; do
	sed "s#$PLACEHOLDER#$DEMO_DIR/workspace#g" "$m" >"$DEMO_DIR/manifests/$(basename "$m")"
done

echo "==> Running the FL job: fljob run -f $DEMO_DIR/manifests"
fljob=("$ROOT/bin/fljob" --state-dir "$DEMO_DIR/state" --namespace "$NAMESPACE")
status=0
"${fljob[@]}" run -f "$DEMO_DIR/manifests" --timeout 10m || status=$?

echo
echo "==> Results (each job directory holds its results and _process_rc.txt):"
for site in server site-1 site-2; do
	dir=$DEMO_DIR/workspace/$site/fedavg-demo
	[[ -d $dir ]] || continue
	for f in "$dir"/*; do
		[[ -f $f ]] && printf '  %s: %s\n' "$f" "$(head -c 200 "$f" | tr '\n' ' ')"
	done
done
cat <<EOT

Inspect the jobs with:
  ${fljob[*]} get -o wide
  ${fljob[*]} describe fedavg-server
  ${fljob[*]} logs fedavg-site-1
Running the demo again first removes this one, with its containers.
EOT
exit "$status"
