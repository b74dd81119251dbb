# Shared by the integration scripts: strict mode, skips, a test cgroup, bpffs
# folder and network namespace of their own, cleanup that runs even on failure,
# free ports, the scale of the big cases (PPBPF_SCALE), and one case by name
# (PPBPF_TEST_CASE).
# Safety: never touches the root cgroup's programs, only our own pins and pids.
#
# Every failure reaches the exit status. Strict mode holds for the whole script
# (errexit, also inside $(...) and functions; pipefail; nounset): a command that
# fails ends the script with a "FAIL: <script> line N: ..." line, and so does
# one that fails inside a $(...) whose status the caller cannot see (the
# subshell tells the main shell, which exits 1). `fail` works the same way from
# a subshell. Cleanup is lib.sh's EXIT trap and keeps the exit status: add your
# own steps to CLEANUP, never a trap of your own (`trap ... EXIT` is refused).
set -eEuo pipefail
shopt -s inherit_errexit
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/.output
CLI=$OUT/ppbpf
MAIN_PID=$$ # $$ is the main shell's pid in its subshells too; $BASHPID is theirs
PIDS=()
CGROUPS=()
PINS=()
NETNS=()
CLEANUP=() # more commands for cleanup, run before the network namespaces and cgroups go
PPBPF_TEST_CASE=${PPBPF_TEST_CASE:-} # one case by name (below)
PPBPF_TEST_CASE=${PPBPF_TEST_CASE#test_}
CASE_STEPS=0 # how often a step (or what it needs) was selected for PPBPF_TEST_CASE

# In a subshell ($(...), a pipeline, <(...)), a failure must end the main shell too.
end_main_shell() {
	[ "$BASHPID" = "$MAIN_PID" ] || kill -USR2 "$MAIN_PID" 2>/dev/null || true
}

fail() {
	if [ "$BASHPID" = "$MAIN_PID" ]; then
		echo "FAIL: $*"
	else
		echo "FAIL: $*" >&2 # stdout may be what a $(...) captures
	fi
	end_main_shell
	exit 1
}

# The ERR trap: a command failed where errexit ends the (sub)shell. Say which.
on_error() {
	local rc=$1 cmd=$2 line=$3
	[[ $- == *e* ]] || return 0
	echo "FAIL: ${BASH_SOURCE[1]##*/} line $line: \`$cmd\` exited with status $rc" >&2
	end_main_shell
}

skip() {
	echo "*** SKIPPED: $* ***"
	if [ "${PPBPF_REQUIRE_ALL:-0}" = 1 ]; then
		echo "PPBPF_REQUIRE_ALL=1: a skip is a failure"
		exit 1
	fi
	if [ -n "$PPBPF_TEST_CASE" ]; then
		echo "PPBPF_TEST_CASE=$PPBPF_TEST_CASE: a case asked for by name that cannot run is a failure"
		exit 1
	fi
	exit 0
}

need_root() {
	[ "$(id -u)" = 0 ] || skip "$1 needs root"
	[ -d /sys/fs/bpf ] || skip "$1 needs /sys/fs/bpf (where ppbpf mounts bpffs if none is)"
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

# new_netns VAR NAME: a network namespace with its loopback up, its name in $VAR, deleted at exit.
new_netns() {
	local ns=ppbpf-test-$$-$2
	NETNS+=("$ns")
	ip netns add "$ns"
	ip netns exec "$ns" ip link set lo up
	printf -v "$1" '%s' "$ns"
}

# Run a command inside a cgroup (its sockets belong there).
in_cgroup() {
	local cg=$1
	shift
	bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}

# new_dropper VAR NS NAME: the test XDP program tests/bpf/drop_once.bpf.c on the loopback of
# network namespace NS, pinned with its maps in a bpffs folder (in $VAR, removed at exit).
new_dropper() {
	local dir=/sys/fs/bpf/ppbpf-test-$$-$3
	CLEANUP+=("rm -rf '$dir'")
	mkdir "$dir"
	bpftool prog load "$OUT/tests/bpf/drop_once.bpf.o" "$dir/prog" type xdp pinmaps "$dir"
	nsenter --net="/run/netns/$2" bpftool net attach xdpgeneric pinned "$dir/prog" dev lo
	printf -v "$1" '%s' "$dir"
}

# in_netns NS CGROUP CMD...: a command inside a network namespace and a cgroup.
# (nsenter, not ip netns exec: that remounts /sys and would hide bpffs.)
in_netns() {
	local ns=$1 cg=$2
	shift 2
	nsenter --net="/run/netns/$ns" bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}

# Start a command in the background inside a cgroup; its pid is killed at exit.
# bash -c runs directly under & so that $! is the pid the command execs into.
# Nothing reads its exit status unless the script waits for it: do, if it matters.
spawn_in_cgroup() {
	local cg=$1
	shift
	bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@" &
	PIDS+=($!)
}

cleanup() {
	local rc=$?
	builtin trap - ERR
	builtin trap '[ "$rc" != 0 ] || rc=1' USR2 # a subshell's failure, reported late
	set +e # every step runs, whatever failed before or fails here
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	for pin in "${PINS[@]}"; do "$CLI" detach --pin-dir "$pin" >/dev/null 2>&1; done
	for cmd in "${CLEANUP[@]}"; do eval "$cmd" >/dev/null 2>&1; done
	for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
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
		done
	done
	# Nothing may be left behind: what could not be removed fails the test.
	local left=()
	for pin in "${PINS[@]}"; do [ ! -e "$pin" ] || left+=("pin folder $pin"); done
	for ns in "${NETNS[@]}"; do [ ! -e "/run/netns/$ns" ] || left+=("network namespace $ns"); done
	for cg in "${CGROUPS[@]}"; do [ ! -d "$cg" ] || left+=("cgroup $cg"); done
	if [ ${#left[@]} -gt 0 ]; then
		printf 'FAIL: cleanup could not remove the %s\n' "${left[@]}"
		[ "$rc" != 0 ] || rc=1
	fi
	if [ "$rc" = 0 ] && [ -n "$PPBPF_TEST_CASE" ]; then
		if [ "$CASE_STEPS" = 0 ]; then
			echo "FAIL: no step of ${0##*/} ran PPBPF_TEST_CASE=$PPBPF_TEST_CASE"
			rc=1
		else
			echo "(PPBPF_TEST_CASE=$PPBPF_TEST_CASE: of ${0##*/}'s steps, only those that run it ran)"
		fi
	fi
	exit "$rc"
}
# shellcheck disable=SC2218 # (the builtin, not the trap() below)
{
builtin trap cleanup EXIT
builtin trap 'on_error $? "$BASH_COMMAND" $LINENO' ERR
builtin trap 'exit 1' USR2 # from end_main_shell: the FAIL line is already out
builtin trap 'exit 130' INT TERM
}

# lib.sh owns the EXIT, ERR and USR2 traps: a script's own would replace cleanup
# (and with it the exit status, which cleanup must return). Use CLEANUP+=(...).
# shellcheck disable=SC2064 # (the caller's quoting stands)
trap() {
	local args=("$@") sig
	[ "${args[0]:-}" != -- ] || args=("${args[@]:1}")
	case ${args[0]:-} in -p | -l | '') builtin trap "$@"; return ;; esac
	for sig in "${args[@]:1}"; do
		case ${sig^^} in
		EXIT | SIGEXIT | 0 | ERR | USR2 | SIGUSR2)
			fail "trap on $sig: lib.sh's cleanup owns it; add the step to CLEANUP instead" ;;
		esac
	done
	builtin trap "$@"
}

# A TCP port nothing uses, below the ephemeral range so no client socket can take it.
# free_port VAR...: one in each VAR, all different (separate $(free_port) calls, which
# print one, cannot know what the others picked: the same port could come twice).
free_port() {
	local low p v taken=" "
	read -r low _ < /proc/sys/net/ipv4/ip_local_port_range
	[ "$low" -gt 12000 ] || low=32768
	for v in "${@:-}"; do
		while :; do
			p=$((10000 + RANDOM % (low - 10000)))
			[[ $taken != *" $p "* ]] || continue
			[ -n "$(ss -Htan "sport = :$p")" ] || break # (not `| grep -q`: no SIGPIPE race under pipefail)
		done
		taken+="$p "
		if [ -n "$v" ]; then printf -v "$v" '%s' "$p"; else echo "$p"; fi
	done
}

# ---- scale ---------------------------------------------------------------------
# PPBPF_SCALE=full (the default: the sizes the README gives) or small (a slow
# guest, e.g. qemu TCG): the big cases run with smaller numbers, and every check
# is derived from the numbers run, never loosened. The scripts pick sizes with
# `scaled VAR FULL SMALL` (and hand them to the test programs as arguments),
# and say `print_scale` once at their start.
PPBPF_SCALE=${PPBPF_SCALE:-full}
case $PPBPF_SCALE in
full | small) ;;
*) fail "PPBPF_SCALE is '$PPBPF_SCALE': full (the default) or small" ;;
esac

print_scale() { echo "scale: $PPBPF_SCALE (PPBPF_SCALE)"; }

# scaled VAR FULL SMALL: $VAR is FULL, or SMALL where PPBPF_SCALE=small.
scaled() {
	if [ "$PPBPF_SCALE" = small ]; then
		printf -v "$1" '%s' "$3"
	else
		printf -v "$1" '%s' "$2"
	fi
}

# ---- helpers for tests with real servers --------------------------------------------------------

# echo_server PORT LOG: a TCP echo server on 127.0.0.1:PORT (python3) in the background, ended by cleanup.
echo_server() {
	python3 - "$1" > "$2" 2>&1 <<'PY' &
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
def serve(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
	PIDS+=($!)
}

# python3 -c "$LINE_CLIENT_PY" SRC PORT LINE [half-close]: connect from SRC to 127.0.0.1:PORT, send
# LINE (then shut the write side down if asked), read to EOF; print "SRC_ADDR:SRC_PORT", then the reply.
LINE_CLIENT_PY='
import socket, sys
src, port, line = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket()
s.settimeout(10)
s.bind((src, 0))
s.connect(("127.0.0.1", port))
s.sendall(line.encode())
if len(sys.argv) > 4:
    s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    reply += d
a, p = s.getsockname()[:2]
print(f"{a}:{p}")
sys.stdout.write(reply.decode(errors="replace"))
'

# haproxy_tcp_head: the first lines of a test HAProxy config: TCP mode, logs to stdout, short timeouts.
haproxy_tcp_head() {
	cat <<'CFG'
global
	log stdout format raw local0
defaults
	mode tcp
	log global
	timeout connect 5s
	timeout client 10s
	timeout server 10s
CFG
}

# ---- one case by name ------------------------------------------------------------
# PPBPF_TEST_CASE=CASE (`make test T=PROG/CASE` sets it): a script runs only the
# steps that run a case CASE matches (a name, or a shell pattern over names), and
# what those steps need; its setup and its final checks always run. The names:
# `PROG --list` of the script's test program (its cmocka cases, or its modes),
# and trust.sh's sections; a leading "test_" is dropped, as cases.h does. A CASE
# that names nothing there fails at once, listing the names; one that no step
# ran fails at the end (cleanup), and so does a skip.

# matches_case NAME...: whether PPBPF_TEST_CASE matches one of the NAMEs.
matches_case() {
	local n
	for n in "$@"; do
		# shellcheck disable=SC2053 # (a pattern)
		[[ $n == $PPBPF_TEST_CASE ]] && return 0
	done
	return 1
}

# check_case PROG [NAME...]: PPBPF_TEST_CASE matches a case of PROG or one of the NAMEs.
check_case() {
	local prog=$1 names
	shift
	[ -n "$PPBPF_TEST_CASE" ] || return 0
	[ -x "$prog" ] || fail "no $prog: \`make test T=${prog##*/}/CASE\` builds it"
	names="$("$prog" --list | paste -sd ' ')${*:+ $*}"
	# shellcheck disable=SC2086 # (one name a word)
	matches_case $names ||
		fail "PPBPF_TEST_CASE=$PPBPF_TEST_CASE: no such case in ${0##*/}; its cases: $names"
}

# selected NAME...: whether the step that runs these cases runs (every step, where no case is asked for).
selected() {
	[ -n "$PPBPF_TEST_CASE" ] || return 0
	matches_case "$@" || return 1
	CASE_STEPS=$((CASE_STEPS + 1))
}

# selected_group PROG GROUP: selected, for a step that runs the cmocka group GROUP of PROG.
selected_group() {
	local cases
	cases=$("$1" --list "$2")
	# shellcheck disable=SC2086 # (one case a word)
	selected $cases
}
