#!/usr/bin/env bash
# Builds the test images fljob-probe:dev and fljob-fedavg:dev into the local
# Docker Engine, without a registry or base image: a static Go binary
# (CGO_ENABLED=0, -trimpath) in a FROM scratch image.
#
#   hack/build-images.sh [--force] [--save DIR] [probe|fedavg]...
#
# Build contexts are assembled in the git-ignored bin/images/<name>/. Each
# image carries the label dev.fljob.source-hash, a hash of what it was built
# from (its non-test Go sources and Dockerfile, go.mod, go.sum, the Go
# version and this script); an image whose label matches is not rebuilt, so a
# second run takes well under a second. --force rebuilds anyway.
#
# --save DIR also writes each image as a `docker save` tarball,
# DIR/fljob-<name>_dev.tar, which `ctr -n k8s.io images import` loads into
# containerd. A tarball is rewritten only when its image changed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HASH_LABEL=dev.fljob.source-hash

declare -A SOURCES=([probe]=test/probe [fedavg]=examples/fedavg)

export GOTOOLCHAIN=local CGO_ENABLED=0 GOOS=linux

usage() {
	echo "usage: $0 [--force] [--save DIR] [probe|fedavg]..." >&2
	exit 2
}

force=false
save_dir=
names=()
while (($#)); do
	case $1 in
	--force) force=true ;;
	--save) (($# >= 2)) || usage; save_dir=$2; shift ;;
	--save=*) save_dir=${1#--save=} ;;
	-h | --help) usage ;;
	*) [[ -n ${SOURCES[$1]+set} ]] || usage; names+=("$1") ;;
	esac
	shift
done
((${#names[@]})) || names=(probe fedavg)

cd "$ROOT"
docker version --format '{{.Server.Version}}' >/dev/null ||
	{ echo "build-images: the Docker Engine is not reachable" >&2; exit 1; }

# source_hash prints the hash of everything the image of $1 is built from.
source_hash() {
	local dir=${SOURCES[$1]}
	{
		go version
		sha256sum go.mod go.sum hack/build-images.sh
		find "$dir" -type f \( \( -name '*.go' ! -name '*_test.go' \) -o -name Dockerfile \) \
			-print0 | LC_ALL=C sort -z | xargs -0 sha256sum
	} | sha256sum | cut -d' ' -f1
}

# image_hash prints the source hash recorded in image $1, or nothing.
image_hash() {
	docker image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$1" \
		2>/dev/null || true
}

# build assembles the context of image $1 and builds it with hash $2.
build() {
	local name=$1 hash=$2 dir=${SOURCES[$1]}
	local ctx=$ROOT/bin/images/$name
	rm -rf "$ctx"
	mkdir -p "$ctx/rootfs/tmp"
	chmod 1777 "$ctx/rootfs/tmp"
	go build -trimpath -ldflags='-s -w -buildid=' -o "$ctx/$name" "./$dir"
	cp "$dir/Dockerfile" "$ctx/Dockerfile"
	# The output is dropped on success: without buildx the CLI warns that
	# the legacy builder is deprecated, which says nothing about this build.
	local out
	if ! out=$(docker build --quiet --label "$HASH_LABEL=$hash" --tag "fljob-$name:dev" \
		"$ctx" 2>&1); then
		echo "$out" >&2
		return 1
	fi
}

for name in "${names[@]}"; do
	image=fljob-$name:dev
	start=$EPOCHREALTIME
	hash=$(source_hash "$name")
	if ! $force && [[ $(image_hash "$image") == "$hash" ]]; then
		state="up to date"
	else
		build "$name" "$hash"
		state=built
	fi
	if [[ -n $save_dir ]]; then
		mkdir -p "$save_dir"
		tar=$save_dir/fljob-${name}_dev.tar
		if [[ ! -s $tar || $(cat "$tar.hash" 2>/dev/null) != "$hash" ]]; then
			docker save --output "$tar" "$image"
			echo "$hash" >"$tar.hash"
			state="$state, saved $tar"
		fi
	fi
	size=$(docker image inspect --format '{{.Size}}' "$image")
	awk -v i="$image" -v s="$state" -v b="$size" -v t0="$start" -v t1="$EPOCHREALTIME" \
		'BEGIN { printf "%s: %s (%.1f MB, %.2f s)\n", i, s, b / 1e6, t1 - t0 }'
done
