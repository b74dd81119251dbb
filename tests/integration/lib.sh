# Shared by the integration scripts: skips, a test cgroup and bpffs folder of
# their own, cleanup that runs even on failure, free ports.
# Safety: never touches the root cgroup's programs, only our own pins and pids.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/.output
CLI=$OUT/ppbpf
PIDS=()
CGROUPS=()
PINS=()
CLEANUP=() # more commands for cleanup, run before the cgroups go

skip() {
	echo "*** SKIPPED: $* ***"
	if [ "${PPBPF_REQUIRE_ALL:-0}" = 1 ]; then
		echo "PPBPF_REQUIRE_ALL=1: a skip is a failure"
		exit 1
	fi
	exit 0
}

need_root() {
	[ "$(id -u)" = 0 ] || skip "$1 needs root"
	[ -d /sys/fs/bpf ] && [ -w /sys/fs/bpf ] || skip "$1 needs a writable bpffs at /sys/fs/bpf"
}

cgroup2_root() { awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts; }

# new_cgroup VAR NAME: a child cgroup of the cgroup2 mount in $VAR, removed at exit.
# (Not $(...): the cleanup list must be kept by this shell, not a subshell.)
new_cgroup() {
	local root
	root=$(cgroup2_root)
	[ -n "$root" ] || skip "no cgroup2 mount"
	local cg=$root/ppbpf-test-$$-$2
	mkdir "$cg"
	CGROUPS+=("$cg")
	printf -v "$1" '%s' "$cg"
}

# new_pin_dir VAR NAME: a bpffs folder for an attachment in $VAR, detached and removed at exit.
new_pin_dir() {
	local pin=/sys/fs/bpf/ppbpf-test-$$-$2
	PINS+=("$pin")
	printf -v "$1" '%s' "$pin"
}

# Run a command inside a cgroup (its sockets belong there).
in_cgroup() {
	local cg=$1
	shift
	bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}

# Start a command in the background inside a cgroup; its pid is killed at exit.
# bash -c runs directly under & so that $! is the pid the command execs into.
spawn_in_cgroup() {
	local cg=$1
	shift
	bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@" &
	PIDS+=($!)
}

cleanup() {
	local rc=$?
	set +e # every step runs, whatever failed before or fails here
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	for pin in "${PINS[@]}"; do "$CLI" detach --pin-dir "$pin" >/dev/null 2>&1; done
	for cmd in "${CLEANUP[@]}"; do eval "$cmd" >/dev/null 2>&1; done
	local root
	root=$(cgroup2_root)
	for cg in "${CGROUPS[@]}"; do
		[ -d "$cg" ] || continue
		# children first (a test may have made some). Whatever still runs inside was
		# started by this test (a failed step's server or clients): end it, then remove.
		find "$cg" -depth -type d | while read -r dir; do
			while read -r p; do kill "$p" 2>/dev/null; done < "$dir/cgroup.procs"
			for _ in $(seq 50); do
				rmdir "$dir" 2>/dev/null && break
				sleep 0.1
			done
			[ ! -d "$dir" ] || echo "warning: could not remove $dir"
		done
	done
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A TCP port nothing uses, below the ephemeral range so no client socket can take it.
free_port() {
	local low p
	read -r low _ < /proc/sys/net/ipv4/ip_local_port_range
	[ "$low" -gt 12000 ] || low=32768
	while :; do
		p=$((10000 + RANDOM % (low - 10000)))
		ss -Htan "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}

fail() {
	echo "FAIL: $*"
	exit 1
}
