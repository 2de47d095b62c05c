#!/usr/bin/env bash
# Builds the real control-plane binaries the tests run, from the Go module
# proxy only, into the git-ignored bin/k8s (the KUBEBUILDER_ASSETS directory).
#
#   hack/install-testbin.sh        etcd, kube-apiserver, kubectl, kwok
#   hack/install-testbin.sh node   the above, plus kubelet, kube-scheduler,
#                                  kube-controller-manager, kube-proxy,
#                                  containerd, ctr, containerd-shim-runc-v2
#                                  and coredns (for hack/node.sh)
#
# Every binary has a stamp file in bin/k8s/.stamp recording what built it; a
# binary whose stamp matches is left alone, so a second run takes well under
# a second. Throwaway wrapper modules live in bin/.build. Delete a stamp (or
# all of bin/) to force a rebuild.
set -euo pipefail

ETCD_VERSION=v3.6.17
KUBE_VERSION=v1.37.2
KUBE_STAGING_VERSION=v0.37.2
KWOK_VERSION=v0.8.0
CONTAINERD_VERSION=v2.4.2
COREDNS_VERSION=v1.15.0

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR=$ROOT/bin/k8s
STAMP_DIR=$BIN_DIR/.stamp
BUILD_DIR=$ROOT/bin/.build

export GOTOOLCHAIN=local
export GOWORK=off

usage() {
	echo "usage: $0 [node]" >&2
	exit 2
}

with_node=false
case $# in
0) ;;
1) [[ $1 == node ]] || usage; with_node=true ;;
*) usage ;;
esac

log() { echo "install-testbin: $*"; }
die() { echo "install-testbin: error: $*" >&2; exit 1; }

# Serialize concurrent runs (several test processes may call this at once);
# the one that waits finds fresh stamps and returns quickly.
mkdir -p "$BIN_DIR" "$STAMP_DIR" "$BUILD_DIR"
exec 9>"$BUILD_DIR/install.lock"
if ! flock -n 9; then
	log "waiting for another install-testbin run"
	flock 9
fi

command -v go >/dev/null || die "go not found in PATH"
GO_VERSION=$(go env GOVERSION)

# The stamp content: everything that decides what the binary is.
recipe() { echo "$1 $GO_VERSION"; }

fresh() { # name recipe
	[[ -x $BIN_DIR/$1 && -f $STAMP_DIR/$1 && $(<"$STAMP_DIR/$1") == "$2" ]]
}

# verify runs "name args..." and requires want in its output, then stamps it.
verify() { # name recipe want args...
	local name=$1 rec=$2 want=$3 out
	shift 3
	out=$("$BIN_DIR/$name" "$@" 2>&1) || die "$name $* failed: $out"
	[[ $out == *"$want"* ]] || die "$name $* does not report $want: $out"
	echo "$rec" >"$STAMP_DIR/$name"
	log "  $name: $(grep -m1 -F -- "$want" <<<"$out") ($(du -m "$BIN_DIR/$name" | cut -f1) MB)"
}

elapsed() { echo "$((SECONDS - $1))s"; }

# --- etcd ---------------------------------------------------------------------

# go install refuses etcd's server module (it has replace directives), so a
# wrapper module pins all of etcd's modules to one release.
install_etcd() {
	local rec start dir=$BUILD_DIR/etcd
	rec=$(recipe "$ETCD_VERSION -s -w")
	if fresh etcd "$rec"; then
		log "etcd $ETCD_VERSION: cached"
		return
	fi
	start=$SECONDS
	log "etcd $ETCD_VERSION: building (about 1 min cold)"
	rm -rf "$dir"
	mkdir -p "$dir"
	(
		cd "$dir"
		go mod init fljob.dev/testbin/etcd 2>/dev/null || die "go mod init failed in $dir"
		local m
		for m in server api client/pkg client pkg; do
			go mod edit -require="go.etcd.io/etcd/$m/v3@$ETCD_VERSION"
		done
		CGO_ENABLED=0 GOFLAGS=-mod=mod go build -ldflags='-s -w' \
			-o "$BIN_DIR/etcd.tmp" go.etcd.io/etcd/server/v3
	)
	mv "$BIN_DIR/etcd.tmp" "$BIN_DIR/etcd"
	verify etcd "$rec" "etcd Version: ${ETCD_VERSION#v}" --version
	log "etcd: built in $(elapsed "$start")"
}

# --- Kubernetes ---------------------------------------------------------------

# k8s.io/kubernetes replaces its staging modules (k8s.io/api, ...) with local
# paths that do not exist in the module zip. The wrapper replaces each of them
# with the published module at the matching v0.x release.
kube_wrapper() {
	local dir=$BUILD_DIR/kubernetes
	if [[ -f $dir/.ready && $(<"$dir/.ready") == "$KUBE_VERSION" ]]; then
		return
	fi
	log "preparing the k8s.io/kubernetes $KUBE_VERSION wrapper module"
	rm -rf "$dir"
	mkdir -p "$dir"
	(cd "$dir"; write_kube_wrapper)
	echo "$KUBE_VERSION" >"$dir/.ready"
}

# write_kube_wrapper writes go.mod in the current directory.
write_kube_wrapper() {
	local gomod staging m
	gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
	[[ -f $gomod ]] || die "no go.mod of k8s.io/kubernetes@$KUBE_VERSION in the module cache"
	# Lines look like "k8s.io/api => ./staging/src/k8s.io/api", inside a
	# replace block or after a single-line "replace".
	staging=$(awk '{ sub(/^replace[[:space:]]+/, "") }
		$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$gomod")
	[[ -n $staging ]] || die "found no staging replacements in $gomod"
	go mod init fljob.dev/testbin/kubernetes 2>/dev/null || die "go mod init failed in $PWD"
	go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
	for m in $staging; do
		case $m in
		k8s.io/sample-cli-plugin | k8s.io/sample-controller) continue ;; # not published
		esac
		go mod edit -replace="$m=$m@$KUBE_STAGING_VERSION"
	done
}

kube_ldflags() {
	local major minor pkg flags='-s -w'
	major=${KUBE_VERSION#v}
	major=${major%%.*}
	minor=${KUBE_VERSION#v*.}
	minor=${minor%%.*}
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major"
		flags+=" -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	done
	echo "$flags"
}

# install_kube builds k8s.io/kubernetes/cmd/<name> from the wrapper module.
install_kube() { # name cold-hint version-args...
	local name=$1 hint=$2 rec start
	shift 2
	rec=$(recipe "$KUBE_VERSION $(kube_ldflags)")
	if fresh "$name" "$rec"; then
		log "$name $KUBE_VERSION: cached"
		return
	fi
	kube_wrapper
	start=$SECONDS
	log "$name $KUBE_VERSION: building ($hint)"
	(
		cd "$BUILD_DIR/kubernetes"
		CGO_ENABLED=0 GOFLAGS=-mod=mod go build -ldflags="$(kube_ldflags)" \
			-o "$BIN_DIR/$name.tmp" "k8s.io/kubernetes/cmd/$name"
	)
	mv "$BIN_DIR/$name.tmp" "$BIN_DIR/$name"
	verify "$name" "$rec" "$KUBE_VERSION" "$@"
	log "$name: built in $(elapsed "$start")"
}

# --- go install -------------------------------------------------------------

# install_go installs packages of one module version straight into bin/k8s
# and checks that each reports want from --version.
install_go() { # version want ldflags pkg...
	local version=$1 want=$2 ldflags=$3 rec start pkg names all_fresh=true
	shift 3
	names=${*##*/}
	rec=$(recipe "$version $ldflags")
	for pkg in "$@"; do
		fresh "${pkg##*/}" "$rec" || all_fresh=false
	done
	if $all_fresh; then
		log "$names $version: cached"
		return
	fi
	start=$SECONDS
	log "$names $version: go install (1-2 min cold)"
	local args=()
	for pkg in "$@"; do args+=("$pkg@$version"); done
	(cd "$BUILD_DIR" && GOBIN=$BIN_DIR GOFLAGS='' go install -ldflags="$ldflags" "${args[@]}")
	for pkg in "$@"; do
		verify "${pkg##*/}" "$rec" "$want" --version
	done
	log "$names: built in $(elapsed "$start")"
}

# --- CoreDNS ------------------------------------------------------------------

# COREDNS_PLUGINS are the plugins hack/node.sh's Corefile uses.
COREDNS_PLUGINS="bind errors forward kubernetes ready"

# install_coredns builds the cluster DNS of hack/node.sh: a Service's name
# resolves only through it. A wrapper module links CoreDNS's main with the
# plugins the node uses and no others (the full build compiles every cloud
# provider's SDK), and the Kubernetes modules at the version of the other
# binaries, so that it reuses their compiled packages.
install_coredns() {
	local rec start dir=$BUILD_DIR/coredns p m
	rec=$(recipe "$COREDNS_VERSION $KUBE_STAGING_VERSION $COREDNS_PLUGINS -s -w")
	if fresh coredns "$rec"; then
		log "coredns $COREDNS_VERSION: cached"
		return
	fi
	start=$SECONDS
	log "coredns $COREDNS_VERSION: building with plugins $COREDNS_PLUGINS (2-4 min cold)"
	rm -rf "$dir"
	mkdir -p "$dir"
	(
		cd "$dir"
		go mod init fljob.dev/testbin/coredns 2>/dev/null || die "go mod init failed in $dir"
		go mod edit -require="github.com/coredns/coredns@$COREDNS_VERSION"
		for m in api apimachinery client-go; do
			go mod edit -require="k8s.io/$m@$KUBE_STAGING_VERSION"
		done
		{
			printf 'package main\n\nimport (\n\t"github.com/coredns/coredns/coremain"\n\n'
			for p in $COREDNS_PLUGINS; do
				printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' "$p"
			done
			printf ')\n\nfunc main() { coremain.Run() }\n'
		} >main.go
		CGO_ENABLED=0 GOFLAGS=-mod=mod go build -ldflags='-s -w' -o "$BIN_DIR/coredns.tmp" .
	)
	mv "$BIN_DIR/coredns.tmp" "$BIN_DIR/coredns"
	verify coredns "$rec" "CoreDNS-${COREDNS_VERSION#v}" -version
	log "coredns: built in $(elapsed "$start")"
}

# --- main ---------------------------------------------------------------------

total=$SECONDS
install_etcd
install_kube kube-apiserver "about 4 min cold" --version
install_kube kubectl "about 1 min after kube-apiserver" version --client
install_go "$KWOK_VERSION" "${KWOK_VERSION#v}" '-s -w' sigs.k8s.io/kwok/cmd/kwok
if $with_node; then
	install_kube kubelet "about 1 min after kube-apiserver" --version
	install_kube kube-scheduler "about 1 min after kube-apiserver" --version
	install_kube kube-controller-manager "about 1 min after kube-apiserver" --version
	install_kube kube-proxy "about 1 min after kube-apiserver" --version
	# Without -X containerd reports "2.4.2+unknown".
	install_go "$CONTAINERD_VERSION" "${CONTAINERD_VERSION#v}" \
		"-s -w -X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION#v}" \
		github.com/containerd/containerd/v2/cmd/containerd \
		github.com/containerd/containerd/v2/cmd/ctr \
		github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
	install_coredns
fi
log "done in $(elapsed "$total"); KUBEBUILDER_ASSETS=$BIN_DIR"
