#!/usr/bin/env bash
# Brings up, inspects and tears down a single-node Kubernetes v1.37.2 on this
# machine, with real pods: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, containerd 2.x with Debian's runc and CNI plugins, a
# kubelet, kube-proxy and CoreDNS, all as host processes. The conformance
# suite (test/conformance) runs its Kubernetes column on it.
#
#   hack/node.sh up       start the node (or keep the one that runs); prints
#                         the kubeconfig path
#   hack/node.sh down     stop everything and undo what the node changed,
#                         unless another user still needs the node
#   hack/node.sh down --force
#                         stop it even so
#   hack/node.sh status   say what runs
#
# Several test processes may share one node: `up` records its caller (the
# parent process, or FLJOB_NODE_USER_PID) as a user, and `down` forgets the
# caller and tears the node down only when no recorded user still runs.
#
# Everything lives under one scratch directory, FLJOB_NODE_DIR (default
# /tmp/fljob-node): etcd's data, certificates, containerd's root, state and
# socket, the CNI configuration and address pool, the kubelet's root, logs,
# pid files. The admin kubeconfig for tests is $FLJOB_NODE_DIR/kubeconfig.
# Other settings: FLJOB_NODE_IP (default: the source address of the default
# route), FLJOB_NODE_NAME (fljob-node).
#
# What it needs, and installs when missing: Debian's runc,
# containernetworking-plugins, iptables, openssl and curl (apt-get); the
# Kubernetes, containerd and CoreDNS binaries (hack/install-testbin.sh node,
# cached in bin/k8s); the pause image (test/pause packed by test/ociimage)
# and the probe image (hack/build-images.sh --save, then ctr import). It must
# run as root.
#
# It coexists with a Docker Engine: its containerd has its own socket, root
# and runc root; its bridge is fljob0, its pods 10.88.0.0/16, its services
# 10.96.0.0/16. What it changes outside its directory, and `down` undoes:
# the iptables chains the kubelet and kube-proxy add (KUBE-*), its own
# FORWARD chain FLJOB-NODE-FORWARD, the bridge, the sysctls the kubelet and
# kube-proxy set, the kubelet's cgroups (kubepods), and the few fixed paths
# the components create whatever their configuration (/var/lib/kubelet,
# /var/log/containers, /var/log/pods, /var/lib/cni), each removed only when
# it did not exist before `up`. Docker's chains, bridges, cgroups and
# /run/containerd are left alone.
#
# Exit codes: 0 done; 1 failure (a bug to fix: a component did not come up;
# its log is printed); 2 usage; 3 the machine forbids a step (not root, no
# overlay or network namespace, no package archive, no Docker Engine): the
# exact command and its error are printed. Every such check runs before
# anything starts, so a refused `up` leaves nothing behind. `status` exits 0
# when the node is up, 3 when nothing runs, 1 when it is partly up.
#
# Fixed ports, below the kernel's ephemeral range so that tests picking free
# ports never take them: etcd 23790 and 23800 (loopback), kube-apiserver
# 16443, kubelet 10250 and 10248 (healthz, loopback), kube-proxy 10256 and
# 10249 (loopback), CoreDNS 53 on the node's address and 18181 (ready,
# loopback).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/bin/k8s
D=${FLJOB_NODE_DIR:-/tmp/fljob-node}
NODE_NAME=${FLJOB_NODE_NAME:-fljob-node}
POD_CIDR=10.88.0.0/16
SERVICE_CIDR=10.96.0.0/16
BRIDGE=fljob0
FORWARD_CHAIN=FLJOB-NODE-FORWARD
CLUSTER_DOMAIN=cluster.local
ETCD_PORT=23790
ETCD_PEER_PORT=23800
API_PORT=16443
KUBELET_HEALTHZ_PORT=10248
COREDNS_READY_PORT=18181
PAUSE_IMAGE=localhost/fljob-pause:dev
PROBE_IMAGE=fljob-probe:dev
# The image cache survives `down`; the scratch directory does not.
IMAGE_CACHE=$ROOT/bin/node-images
APT_PACKAGES=(runc containernetworking-plugins iptables openssl curl)
CNI_BIN_DIR=/usr/lib/cni
RUNC=/usr/sbin/runc
# Components, in start order.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet
	kube-proxy coredns)
# Sysctls the kubelet or kube-proxy may set; down restores them.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet
	net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables)
# Paths components create whatever they are told; removed by down only when
# up found them missing.
FIXED_PATHS=(/var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /etc/cni
	/opt/cni /var/run/netns /run/containerd)

export GOTOOLCHAIN=local

log() { echo "node: $*" >&2; }
die() { echo "node: error: $*" >&2; exit 1; }

# forbid reports a step the machine refuses, with the exact command and
# error, and exits 3.
forbid() { # what command error
	# Nothing runs yet: leave no scratch directory behind.
	[[ -n ${CREATED_DIR:-} ]] && rm -rf "$D"
	{
		echo "node: forbidden by this machine: $1"
		echo "node:   command: $2"
		echo "node:   error: $3"
	} >&2
	exit 3
}

usage() {
	echo "usage: $0 up|down|status" >&2
	exit 2
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# timing records how long a step took, in the scratch directory and on
# stderr.
timing() { # step start
	local s
	s=$(since "$2")
	echo "$1 $s" >>"$D/timings"
	log "  $1: ${s}s"
}

kubectl() { "$BIN/kubectl" --kubeconfig "$D/kubeconfig" --request-timeout=10s "$@"; }

node_ip() {
	if [[ -n ${FLJOB_NODE_IP:-} ]]; then
		echo "$FLJOB_NODE_IP"
		return
	fi
	ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1
}

# --- processes ----------------------------------------------------------------

pid_of() { [[ -f $D/pids/$1 ]] && cat "$D/pids/$1"; }

# alive says whether the component's recorded process runs and is still the
# program that was started (not a reused pid).
alive() { # name
	local pid exe
	pid=$(pid_of "$1") || return 1
	[[ -n $pid && -d /proc/$pid ]] || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	[[ $(basename "${exe% (deleted)}") == "$1" ]]
}

# running says whether a process exists and has not exited: a component
# this shell did not start is reaped by init, and stays a zombie until then.
running() { # pid
	local state
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z ]]
}

# launch starts a component detached from this shell (its own session, so
# that it outlives the caller), logging to logs/<name>.log.
launch() { # name command...
	local name=$1
	shift
	mkdir -p "$D/logs" "$D/pids"
	# fd 8 holds the lock of this script: the component must not keep it.
	setsid "$@" >>"$D/logs/$name.log" 2>&1 </dev/null 8>&- &
	echo $! >"$D/pids/$name"
}

# stop sends SIGTERM to a component and SIGKILL after a grace period.
stop() { # name grace-seconds
	local name=$1 grace=$2 pid i start
	alive "$name" || { rm -f "$D/pids/$name"; return 0; }
	pid=$(pid_of "$name")
	start=$(now)
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < grace * 10; i++)); do
		running "$pid" || break
		sleep 0.1
	done
	if running "$pid"; then
		log "  $name did not stop in ${grace}s: killing it"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
	fi
	rm -f "$D/pids/$name"
	log "  stopped $name in $(since "$start")s"
}

# wait_for runs a check until it passes; on timeout it prints the
# component's log tail and fails.
wait_for() { # what component timeout-seconds command...
	local what=$1 comp=$2 timeout=$3 deadline
	shift 3
	deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if [[ -n $comp ]] && ! alive "$comp"; then
			fail_with_log "$comp exited while waiting for $what" "$comp"
		fi
		if ((SECONDS >= deadline)); then
			fail_with_log "$what not reached in ${timeout}s" "$comp"
		fi
		sleep 0.2
	done
}

fail_with_log() { # message component
	echo "node: error: $1" >&2
	if [[ -n $2 && -f $D/logs/$2.log ]]; then
		echo "node: last lines of $D/logs/$2.log:" >&2
		tail -n 30 "$D/logs/$2.log" >&2
	fi
	exit 1
}

# --- preflight ----------------------------------------------------------------

preflight() {
	local out
	[[ $(id -u) == 0 ]] || forbid "the node needs root (kubelet, containerd, mounts, iptables)" \
		"id -u" "uid $(id -u)"
	[[ -d /sys/fs/cgroup ]] || forbid "no cgroup file system" "test -d /sys/fs/cgroup" "missing"
	command -v go >/dev/null || die "go not found in PATH"
	ensure_packages
	[[ -x $RUNC && -x $CNI_BIN_DIR/bridge && -x $CNI_BIN_DIR/host-local &&
		-x $CNI_BIN_DIR/loopback ]] ||
		die "after installing ${APT_PACKAGES[*]}: $RUNC or the CNI plugins in $CNI_BIN_DIR are missing"

	# containerd's snapshotter needs overlay mounts in the scratch directory.
	local t=$D/.preflight
	mkdir -p "$t/lower" "$t/upper" "$t/work" "$t/merged"
	local cmd="mount -t overlay overlay -o lowerdir=$t/lower,upperdir=$t/upper,workdir=$t/work $t/merged"
	if ! out=$($cmd 2>&1); then
		rm -rf "$t"
		forbid "overlay mounts (containerd's snapshotter)" "$cmd" "$out"
	fi
	umount "$t/merged"
	rm -rf "$t"
	cmd="unshare --net --mount true"
	out=$($cmd 2>&1) || forbid "new network and mount namespaces (pod sandboxes)" "$cmd" "$out"
	[[ -n $(node_ip) ]] || forbid "no IPv4 default route to take the node's address from" \
		"ip -4 route get 1.1.1.1" "$(ip -4 route get 1.1.1.1 2>&1 || true)"
	# The probe image is built with Docker, then imported into containerd.
	out=$(docker version 2>&1) ||
		forbid "building the probe image needs a Docker Engine" "docker version" \
			"$(tail -n1 <<<"$out")"
}

# ensure_packages installs the Debian packages that are missing.
ensure_packages() {
	local missing=() p out
	for p in "${APT_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	((${#missing[@]})) || return 0
	command -v apt-get >/dev/null || forbid "installing ${missing[*]}" "apt-get" "no apt-get"
	log "installing ${missing[*]} (apt-get)"
	out=$(apt-get update 2>&1) || forbid "reaching the Debian archive" "apt-get update" \
		"$(tail -n 3 <<<"$out")"
	out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		"${missing[@]}" 2>&1) ||
		forbid "installing Debian packages" "apt-get install -y ${missing[*]}" \
			"$(tail -n 3 <<<"$out")"
}

# --- certificates and kubeconfigs -------------------------------------------

pki() {
	local p=$D/pki ip=$1
	mkdir -p "$p"
	openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-keyout "$p/ca.key" -out "$p/ca.crt" -days 30 -subj "/CN=fljob-node-ca" 2>/dev/null
	# The service account signing key: the controller-manager signs tokens
	# for its own controllers with it.
	openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
	openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
	local svc_ip=10.96.0.1
	cert apiserver kube-apiserver "" serverAuth \
		"IP:$ip,IP:127.0.0.1,IP:$svc_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
	cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters clientAuth ""
	cert admin fljob-node-admin system:masters clientAuth ""
	cert kubelet "system:node:$NODE_NAME" system:nodes clientAuth ""
	cert controller-manager system:kube-controller-manager "" clientAuth ""
	cert scheduler system:kube-scheduler "" clientAuth ""
	cert kube-proxy system:kube-proxy "" clientAuth ""
	local c
	for c in admin kubelet controller-manager scheduler kube-proxy; do
		kubeconfig "$c" "https://$ip:$API_PORT" >"$D/kubeconfig.$c"
	done
	cp "$D/kubeconfig.admin" "$D/kubeconfig"
}

cert() { # name cn org usage sans
	local p=$D/pki name=$1 subj="/CN=$2"
	[[ -n $3 ]] && subj+="/O=$3"
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=$4"
		[[ -n $5 ]] && echo "subjectAltName=$5"
	} >"$p/$name.ext"
	openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-keyout "$p/$name.key" -out "$p/$name.csr" -subj "$subj" 2>/dev/null
	openssl x509 -req -in "$p/$name.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
		-out "$p/$name.crt" -days 30 -extfile "$p/$name.ext" 2>/dev/null
}

kubeconfig() { # user server
	cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fljob-node
  cluster:
    server: $2
    certificate-authority: $D/pki/ca.crt
users:
- name: $1
  user:
    client-certificate: $D/pki/$1.crt
    client-key: $D/pki/$1.key
contexts:
- name: fljob-node
  context:
    cluster: fljob-node
    user: $1
current-context: fljob-node
EOF
}

# --- configuration files ------------------------------------------------------

write_containerd_config() {
	local c=$D/containerd
	mkdir -p "$c/root" "$c/state" "$c/opt" "$c/runc"
	cat >"$c/config.toml" <<EOF
version = 3
root = '$c/root'
state = '$c/state'

[grpc]
  address = '$c/containerd.sock'

[ttrpc]
  address = '$c/containerd.sock.ttrpc'

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = '$c/opt'

  [plugins.'io.containerd.nri.v1.nri']
    disable = true

  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'

    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '$PAUSE_IMAGE'

  [plugins.'io.containerd.cri.v1.runtime']
    # No process here may lower its OOM score (no CAP_SYS_RESOURCE): without
    # this runc fails with "can't get final child's PID from pipe: EOF".
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true

    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'

      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '$RUNC'
        Root = '$c/runc'
        SystemdCgroup = false

    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['$CNI_BIN_DIR']
      conf_dir = '$D/cni/net.d'

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
EOF
}

write_cni_config() {
	mkdir -p "$D/cni/net.d" "$D/cni/ipam"
	cat >"$D/cni/net.d/10-fljob.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "fljob",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$D/cni/ipam"
      }
    }
  ]
}
EOF
}

write_kubelet_config() { # node-ip
	mkdir -p "$D/kubelet/root" "$D/kubelet/pki" "$D/kubelet/pod-logs"
	cat >"$D/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The machine is cgroup v1 (hybrid), which kubelet 1.37 refuses by default.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$D/containerd/containerd.sock
address: $1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $D/pki/ca.crt}
authorization:
  mode: Webhook
clusterDNS: [$1]
clusterDomain: $CLUSTER_DOMAIN
podLogsDir: $D/kubelet/pod-logs
maxPods: 50
serializeImagePulls: false
# A shared test machine: evict only when it is nearly full, and never
# collect the imported images (they cannot be pulled again).
evictionHard:
  memory.available: 100Mi
  nodefs.available: 2%
  imagefs.available: 2%
imageGCHighThresholdPercent: 100
EOF
}

write_corefile() { # node-ip
	mkdir -p "$D/coredns"
	cat >"$D/coredns/Corefile" <<EOF
$CLUSTER_DOMAIN:53 in-addr.arpa:53 {
    bind $1
    errors
    ready 127.0.0.1:$COREDNS_READY_PORT
    kubernetes $CLUSTER_DOMAIN in-addr.arpa {
        kubeconfig $D/kubeconfig.admin
        pods insecure
    }
}
.:53 {
    bind $1
    errors
    forward . /etc/resolv.conf
}
EOF
}

# --- host changes -------------------------------------------------------------

# record_host saves what down restores: sysctls and which fixed paths exist.
record_host() {
	local s f
	[[ -f $D/host.sysctl ]] && return
	for s in "${SYSCTLS[@]}"; do
		f=/proc/sys/${s//.//}
		[[ -r $f ]] && echo "$s $(<"$f")" >>"$D/host.sysctl"
	done
	: >"$D/host.created"
	for f in "${FIXED_PATHS[@]}"; do
		[[ -e $f ]] || echo "$f" >>"$D/host.created"
	done
}

# Pod traffic crosses the FORWARD chain (the bridge is routed, and bridged
# frames pass iptables where br_netfilter is loaded), whose policy Docker
# sets to DROP: accept the pod network in a chain of our own.
add_forward_chain() {
	local ipt=iptables
	$ipt -N "$FORWARD_CHAIN" 2>/dev/null || $ipt -F "$FORWARD_CHAIN"
	$ipt -A "$FORWARD_CHAIN" -s "$POD_CIDR" -j ACCEPT
	$ipt -A "$FORWARD_CHAIN" -d "$POD_CIDR" -j ACCEPT
	$ipt -C FORWARD -j "$FORWARD_CHAIN" 2>/dev/null || $ipt -I FORWARD 1 -j "$FORWARD_CHAIN"
}

# remove_chains deletes the rules that jump to chains matching a pattern
# and then those chains, in every table of one iptables binary.
remove_chains() { # iptables-binary chain-regex
	local ipt=$1 re=$2 table rule chain
	command -v "$ipt" >/dev/null || return 0
	for table in filter nat mangle raw; do
		"$ipt" -t "$table" -S >/dev/null 2>&1 || continue
		# Rules in any chain that jump to a matching chain.
		while read -r rule; do
			[[ -n $rule ]] || continue
			eval "\"$ipt\" -t $table ${rule/-A /-D }" 2>/dev/null || true
		done < <("$ipt" -t "$table" -S 2>/dev/null | grep -E "^-A .* -j ($re)( |$)" || true)
		for chain in $("$ipt" -t "$table" -S 2>/dev/null | sed -n 's/^-N //p' | grep -E "^($re)$" || true); do
			"$ipt" -t "$table" -F "$chain" 2>/dev/null || true
		done
		for chain in $("$ipt" -t "$table" -S 2>/dev/null | sed -n 's/^-N //p' | grep -E "^($re)$" || true); do
			"$ipt" -t "$table" -X "$chain" 2>/dev/null || true
		done
	done
}

restore_sysctls() {
	local name value f
	[[ -f $D/host.sysctl ]] || return 0
	while read -r name value; do
		f=/proc/sys/${name//.//}
		[[ -w $f && $(<"$f") != "$value" ]] || continue
		log "  restoring $name = $value (was $(<"$f"))"
		echo "$value" >"$f" || true
	done <"$D/host.sysctl"
}

# remove_cgroups removes the kubelet's cgroup trees, deepest first.
remove_cgroups() {
	local top
	for top in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[[ -d $top ]] || continue
		find "$top" -depth -type d -exec rmdir {} \; 2>/dev/null || true
		[[ -d $top ]] && log "  warning: could not remove $top"
	done
	return 0
}

# unmount_all unmounts every mount below the scratch directory, deepest
# first (tmpfs emptyDirs, network namespaces, overlay snapshots).
unmount_all() {
	local m
	while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "  warning: cannot unmount $m"
	done < <(awk -v d="$D/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

# kill_shims ends the runtime shims our containerd started, found by the
# socket address on their command line.
kill_shims() {
	local p
	for p in /proc/[0-9]*; do
		[[ -r $p/cmdline ]] || continue
		if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "-address $D/containerd/containerd.sock"; then
			kill -KILL "${p#/proc/}" 2>/dev/null || true
		fi
	done
}

# --- up -----------------------------------------------------------------------

start_etcd() {
	mkdir -p "$D/etcd"
	launch etcd "$BIN/etcd" --name fljob-node --data-dir "$D/etcd/data" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster "fljob-node=http://127.0.0.1:$ETCD_PEER_PORT" \
		--unsafe-no-fsync --log-level warn
	wait_for "etcd health" etcd 60 curl -sf "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() { # node-ip
	local p=$D/pki
	launch kube-apiserver "$BIN/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$ETCD_PORT" \
		--bind-address "$1" --advertise-address "$1" --secure-port "$API_PORT" \
		--tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
		--client-ca-file "$p/ca.crt" \
		--kubelet-client-certificate "$p/apiserver-kubelet-client.crt" \
		--kubelet-client-key "$p/apiserver-kubelet-client.key" \
		--service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
		--service-account-key-file "$p/sa.pub" \
		--service-account-signing-key-file "$p/sa.key" \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--authorization-mode Node,RBAC \
		--enable-admission-plugins NodeRestriction
	wait_for "kube-apiserver /readyz" kube-apiserver 120 kubectl get --raw /readyz
}

start_controllers() {
	local p=$D/pki
	launch kube-controller-manager "$BIN/kube-controller-manager" \
		--kubeconfig "$D/kubeconfig.controller-manager" \
		--use-service-account-credentials=true \
		--service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
		--leader-elect=false --secure-port 0
	launch kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$D/kubeconfig.scheduler" \
		--leader-elect=false --secure-port 0
}

start_containerd() {
	write_containerd_config
	write_cni_config
	# The shim is found on PATH: ours first, before Docker's.
	launch containerd env PATH="$BIN:$PATH" "$BIN/containerd" \
		--config "$D/containerd/config.toml"
	# env execs containerd, so the recorded pid is containerd's.
	wait_for "containerd's socket" containerd 60 \
		"$BIN/ctr" --address "$D/containerd/containerd.sock" version
}

import_images() {
	local start tar=$IMAGE_CACHE/pause.tar
	start=$(now)
	mkdir -p "$IMAGE_CACHE"
	(
		cd "$ROOT"
		CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$IMAGE_CACHE/pause" ./test/pause
		go run ./test/ociimage -name "$PAUSE_IMAGE" -entrypoint /pause -out "$tar" \
			"/pause=$IMAGE_CACHE/pause"
	) || die "building the pause image failed"
	"$ROOT/hack/build-images.sh" --save "$IMAGE_CACHE" probe >&2 ||
		die "building and saving $PROBE_IMAGE failed"
	local ctr=("$BIN/ctr" --address "$D/containerd/containerd.sock" -n k8s.io)
	"${ctr[@]}" images import "$tar" >/dev/null || die "ctr images import $tar failed"
	"${ctr[@]}" images import "$IMAGE_CACHE/fljob-probe_dev.tar" >/dev/null ||
		die "ctr images import $IMAGE_CACHE/fljob-probe_dev.tar failed"
	timing images "$start"
}

start_kubelet() { # node-ip
	write_kubelet_config "$1"
	launch kubelet "$BIN/kubelet" --config "$D/kubelet/config.yaml" \
		--kubeconfig "$D/kubeconfig.kubelet" --root-dir "$D/kubelet/root" \
		--cert-dir "$D/kubelet/pki" --hostname-override "$NODE_NAME" --node-ip "$1" --v=1
	wait_for "kubelet healthz" kubelet 60 curl -sf "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
	wait_for "node $NODE_NAME Ready" kubelet 120 node_ready
}

node_ready() {
	[[ $(kubectl get node "$NODE_NAME" \
		-o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

start_proxy_and_dns() { # node-ip
	launch kube-proxy "$BIN/kube-proxy" --kubeconfig "$D/kubeconfig.kube-proxy" \
		--hostname-override "$NODE_NAME" --proxy-mode iptables --cluster-cidr "$POD_CIDR" \
		--iptables-localhost-nodeports=false --conntrack-max-per-core 0 \
		--conntrack-tcp-timeout-established 0 --conntrack-tcp-timeout-close-wait 0 \
		--healthz-bind-address 127.0.0.1:10256 --metrics-bind-address 127.0.0.1:10249
	write_corefile "$1"
	launch coredns "$BIN/coredns" -conf "$D/coredns/Corefile"
	wait_for "kube-proxy healthz" kube-proxy 60 curl -sf http://127.0.0.1:10256/healthz
	wait_for "CoreDNS ready" coredns 60 curl -sf "http://127.0.0.1:$COREDNS_READY_PORT/ready"
}

# USER_PID is the process that uses the node: the caller of this script.
USER_PID=${FLJOB_NODE_USER_PID:-$PPID}

# add_user records the caller as a user of the node.
add_user() {
	grep -qx "$USER_PID" "$D/users" 2>/dev/null || echo "$USER_PID" >>"$D/users"
}

# other_users prints the recorded users other than the caller that still
# run, and forgets the caller and those that ended.
other_users() {
	local pid live=()
	[[ -f $D/users ]] || return 0
	while read -r pid; do
		[[ -n $pid && $pid != "$USER_PID" ]] && running "$pid" && live+=("$pid")
	done <"$D/users"
	if ((${#live[@]})); then
		printf '%s\n' "${live[@]}" >"$D/users"
		echo "${live[*]}"
	else
		rm -f "$D/users"
	fi
}

cmd_up() {
	local total start ip
	if [[ $(node_state) == up ]]; then
		add_user
		log "already up; KUBECONFIG=$D/kubeconfig"
		echo "$D/kubeconfig"
		return
	fi
	if [[ -d $D ]]; then
		log "found the remains of an earlier node: tearing them down first"
		cmd_down --force
	fi
	total=$(now)
	mkdir -p "$D"
	CREATED_DIR=1
	preflight
	CREATED_DIR=
	start=$(now)
	"$ROOT/hack/install-testbin.sh" node >&2 || die "hack/install-testbin.sh node failed"
	timing binaries "$start"
	ip=$(node_ip)
	log "bringing up node $NODE_NAME at $ip in $D"
	record_host

	start=$(now)
	pki "$ip"
	timing certificates "$start"
	start=$(now)
	start_etcd
	timing etcd "$start"
	start=$(now)
	start_apiserver "$ip"
	timing kube-apiserver "$start"
	start=$(now)
	start_controllers
	start_containerd
	timing containerd "$start"
	import_images
	add_forward_chain
	start=$(now)
	start_kubelet "$ip"
	timing kubelet-ready "$start"
	start=$(now)
	start_proxy_and_dns "$ip"
	timing proxy-and-dns "$start"
	start=$(now)
	wait_for "controllers (the default service account)" kube-controller-manager 60 \
		kubectl -n default get serviceaccount default
	alive kube-scheduler || fail_with_log "kube-scheduler exited" kube-scheduler
	timing controllers "$start"
	timing up "$total"
	add_user
	log "up; KUBECONFIG=$D/kubeconfig"
	echo "$D/kubeconfig"
}

# --- down ---------------------------------------------------------------------

# drain deletes every pod so that the kubelet stops them through the
# runtime, which releases their addresses and network namespaces.
drain() {
	alive kube-apiserver && alive kubelet || return 0
	kubectl delete pods --all --all-namespaces --grace-period=1 --wait=false >/dev/null 2>&1 ||
		return 0
	local deadline=$((SECONDS + 40))
	while ((SECONDS < deadline)); do
		[[ -z $(kubectl get pods --all-namespaces -o name 2>/dev/null) ]] && return 0
		sleep 0.5
	done
	log "  warning: pods remained after 40s; their containers are killed below"
}

# kill_containers stops what the kubelet left running in containerd.
kill_containers() {
	alive containerd || return 0
	local ctr=("$BIN/ctr" --address "$D/containerd/containerd.sock" -n k8s.io) id
	for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
		"${ctr[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
	done
	sleep 0.5
	for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
		"${ctr[@]}" tasks delete -f "$id" >/dev/null 2>&1 || true
	done
}

cmd_down() { # [--force]
	local start f others
	start=$(now)
	if [[ ! -d $D ]]; then
		log "nothing to tear down in $D"
		return
	fi
	others=$(other_users)
	if [[ -n $others && ${1:-} != --force ]]; then
		log "still used by process(es) $others: leaving the node up (down --force stops it)"
		return
	fi
	log "tearing down the node in $D"
	drain
	stop kube-proxy 10
	if [[ -x $BIN/kube-proxy ]]; then
		"$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
	fi
	stop coredns 5
	stop kubelet 15
	stop kube-scheduler 5
	stop kube-controller-manager 5
	kill_containers
	stop containerd 10
	kill_shims
	# The API server before etcd: the other order makes it hang.
	stop kube-apiserver 15
	stop etcd 10
	unmount_all
	ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE"
	remove_chains iptables "KUBE-[A-Z0-9-]+|$FORWARD_CHAIN"
	remove_chains ip6tables "KUBE-[A-Z0-9-]+"
	restore_sysctls
	remove_cgroups
	if [[ -f $D/host.created ]]; then
		while read -r f; do
			[[ -n $f && -e $f ]] || continue
			# A path some other program now uses is left alone.
			if [[ $f == /run/containerd && -S /run/containerd/containerd.sock ]]; then
				continue
			fi
			rm -rf "$f"
		done <"$D/host.created"
	fi
	rm -rf "$D"
	log "down in $(since "$start")s"
}

# --- status -------------------------------------------------------------------

# node_state prints up, down or partial.
node_state() {
	local c n=0
	for c in "${COMPONENTS[@]}"; do
		alive "$c" && n=$((n + 1))
	done
	if ((n == 0)); then
		echo down
	elif ((n == ${#COMPONENTS[@]})) && node_ready 2>/dev/null; then
		echo up
	else
		echo partial
	fi
}

cmd_status() {
	local c state
	for c in "${COMPONENTS[@]}"; do
		if alive "$c"; then
			printf '%-24s running (pid %s)\n' "$c" "$(pid_of "$c")"
		else
			printf '%-24s not running\n' "$c"
		fi
	done
	state=$(node_state)
	echo "node $NODE_NAME: $state ($D)"
	if [[ $state == up ]]; then
		echo "KUBECONFIG=$D/kubeconfig"
		[[ -f $D/timings ]] && sed 's/^/  /' "$D/timings"
	fi
	case $state in
	up) return 0 ;;
	down) return 3 ;;
	*) return 1 ;;
	esac
}

# --- main ---------------------------------------------------------------------

case "$*" in
up | down | "down --force" | status) ;;
*) usage ;;
esac
# One node operation at a time: test processes may call this concurrently.
exec 8>"$D.lock"
flock 8
case $1 in
up) cmd_up ;;
down) cmd_down "${2:-}" ;;
status) cmd_status ;;
esac
