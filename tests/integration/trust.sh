#!/usr/bin/env bash
# Trust and rejection (issue 4) on real sockets, with the `ppbpf run` daemon
# resetting what the kernel side rejects: spoofing, malformed headers, a slow
# sender, 10,000 pending headers, a daemon killed and restarted under load,
# a full connection table, and a live policy change. Every step checks the
# kernel's counters and that no table or pending entry is left behind.
. "$(dirname "$0")/lib.sh"
need_root "the trust and rejection tests"
print_scale
scaled N_SPOOF 1000 200     # forged headers, on each of two ports
scaled N_HELD 10000 1000    # pending headers held open at once
scaled N_STREAMS 100 20     # connections streaming across the daemon's restart...
STREAM_SECONDS=3            # ...on for this long after the restart (pacing: see STREAM_BYTES)
scaled STREAM_BYTES "" 67108864 # ...paced to this many bytes in all ("": unpaced, ~1.1 GB)

TEST=$OUT/tests/trust_test
new_cgroup CG trust
new_pin_dir PIN trust
free_port P_PLAIN P_REJ P_V2 P_SMALL P_SLOW P_LOAD P_STREAM P_TABLE
LOG=$(mktemp /tmp/ppbpf-test-run.XXXXXX)
CONF=$(mktemp /tmp/ppbpf-test-conf.XXXXXX)
CLEANUP+=("rm -f '$LOG' '$LOG.2' '$LOG.3' '$CONF'")
SLOW_TIMEOUT_MS=2000

# The policy, as a config file for the daemon: one group per line.
cat > "$CONF" <<EOF
# trust.sh: ports of this test only
cgroup $CG
pin-dir $PIN
port $P_PLAIN trust 127.0.0.1 untrusted plain rewrite-peer
port $P_REJ trust 127.0.0.1 untrusted reject rewrite-peer
port $P_V2 trust 127.0.0.1 versions 2
port $P_SMALL trust 127.0.0.1 max-header 64
port $P_SLOW trust 127.0.0.1 timeout $SLOW_TIMEOUT_MS
port $P_LOAD trust 127.0.0.1 timeout 120000
port $P_STREAM trust 127.0.0.1 untrusted reject
EOF

# start_daemon LOGFILE ARGS...: `ppbpf run` in the background; waits until it says it runs.
start_daemon() {
	local log=$1
	shift
	"$CLI" run "$@" 2>"$log" &
	DAEMON=$!
	PIDS+=("$DAEMON")
	for _ in $(seq 100); do
		grep -q "ppbpf: running" "$log" && return 0
		kill -0 "$DAEMON" 2>/dev/null || { cat "$log"; fail "ppbpf run exited"; }
		sleep 0.05
	done
	cat "$log"
	fail "ppbpf run did not start"
}

# counter NAME: a counter of the kernel side (a number, or the test fails).
counter() {
	local v
	v=$("$CLI" status --pin-dir "$PIN" --json | jq -r ".counters.$1")
	[[ $v =~ ^[0-9]+$ ]] || fail "counter $1 is '$v', not a number"
	echo "$v"
}
table_size() { "$CLI" status --pin-dir "$PIN" --json | jq -r '"\(.connections) \(.pending)"'; }

# expect_empty WHAT: no connection or pending entry left (closes propagate asynchronously).
expect_empty() {
	local left
	for _ in $(seq 50); do
		left=$(table_size)
		[ "$left" = "0 0" ] && return 0
		sleep 0.1
	done
	fail "$1: entries left in the table / pending map: $left"
}

echo "== ppbpf run --config (pins in $PIN)"
start_daemon "$LOG" --config "$CONF" --keep --sweep-ms 50 --log-rate 1000
"$CLI" status --pin-dir "$PIN" | sed -n '/^ports:/,/^tlv/p'
# Without bpf_sock_destroy (before 6.5) the daemon resets over inet_diag: it checks that works, and says so.
if "$CLI" status --pin-dir "$PIN" --json | jq -e '[.kernel.lacks[].feature] | index("bpf_sock_destroy")' >/dev/null; then
	grep -q "rejected connections are reset over inet_diag" "$LOG" ||
		fail "this kernel lacks bpf_sock_destroy, and the daemon did not say resets over inet_diag work: $(cat "$LOG")"
	echo "resets: over inet_diag (SOCK_DESTROY), checked by the daemon at start"
fi
rc=0
second=$(timeout 10 "$CLI" run --config "$CONF" 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q "another ppbpf run serves" <<< "$second" ||
	fail "a second ppbpf run on the same pins was not refused (exit $rc: $second)"
kill -0 "$DAEMON" || fail "the second ppbpf run disturbed the first"
[ "$("$CLI" status --pin-dir "$PIN" --json | jq -r ".ports[] | select(.port == $P_REJ) | .untrusted")" = reject ] ||
	fail "the config's 'untrusted reject' is not in the policy"

echo "== spoofing: $N_SPOOF forged headers from an untrusted address, on a plain and on a reject port"
before_untrusted=$(counter untrusted)
in_cgroup "$CG" "$TEST" spoof "$P_PLAIN" "$P_REJ" "$N_SPOOF" || fail "spoofing"
untrusted=$(counter untrusted) rejected_untrusted=$(counter rejected_untrusted)
[ $((untrusted - before_untrusted)) -ge "$N_SPOOF" ] ||
	fail "untrusted peers on the plain port were not counted: $((untrusted - before_untrusted)), want >= $N_SPOOF"
# each forged header on the reject port, and the 20 before ppbpf_accept's good connection
[ "$rejected_untrusted" -ge $((N_SPOOF + 20)) ] ||
	fail "rejected_untrusted = $rejected_untrusted, want >= $((N_SPOOF + 20))"
grep -q "reason=untrusted" "$LOG" || fail "no 'reason=untrusted' line in the daemon's log"
expect_empty spoofing

echo "== malformed headers: every parser error class, each reset before the first read"
in_cgroup "$CG" "$TEST" malformed "$P_REJ" "$P_V2" "$P_SMALL" || fail "malformed headers"
for c in error_v1 error_v2 error_too_large not_proxy rejected_version resets; do
	[ "$(counter $c)" -gt 0 ] || fail "counter $c did not move"
done
for r in v1_bad_port crc32c_mismatch too_large version_refused not_proxy; do
	grep -q "reason=$r " "$LOG" || fail "no 'reason=$r' line in the daemon's log"
done
expect_empty "malformed headers"

echo "== slow sender: one header byte a second, timeout ${SLOW_TIMEOUT_MS} ms, 200 good clients meanwhile"
in_cgroup "$CG" "$TEST" slow "$P_SLOW" "$SLOW_TIMEOUT_MS" 200 || fail "slow sender"
[ "$(counter rejected_timeout)" -ge 1 ] || fail "the timeout was not counted"
grep -q "reason=timeout" "$LOG" || fail "no 'reason=timeout' line in the daemon's log"
expect_empty "slow sender"

echo "== load: $N_HELD pending headers held open at once"
daemon_rss() { awk '/VmRSS/ { print $2 }' "/proc/$DAEMON/status"; }
slab_kib() { awk '/^Slab:/ { print $2 }' /proc/meminfo; }
rss0=$(daemon_rss) slab0=$(slab_kib)
# (the exit status comes as the last line: errexit must not end this subshell before it)
exec 3< <(rc=0; in_cgroup "$CG" "$TEST" load "$P_LOAD" "$N_HELD" 200 || rc=$?; echo "EXIT $rc")
while read -r line <&3; do
	echo "$line"
	case $line in
	LOAD_HELD*)
		read -r _ held test_pid <<< "$line"
		# A handshake or two may still be finishing (the listen queue overflowed): wait for them.
		for _ in $(seq 100); do
			read -r conns pending <<< "$(table_size)"
			[ "$pending" -ge "$held" ] && break
			sleep 0.1
		done
		rss1=$(daemon_rss) slab1=$(slab_kib)
		start=$(date +%s%N)
		"$CLI" status --pin-dir "$PIN" >/dev/null
		cat "$PIN/sweep" > /dev/null
		sweep_ms=$((($(date +%s%N) - start) / 1000000))
		echo "load: table $conns connections, $pending pending entries; daemon RSS ${rss0} -> ${rss1} KiB;" \
			"kernel slab +$(((slab1 - slab0) / 1024)) MiB; one status + one sweep: ${sweep_ms} ms"
		[ "$held" = "$N_HELD" ] || fail "load: $held headers held, want $N_HELD"
		[ "$pending" -ge "$N_HELD" ] || fail "load: only $pending pending entries for $N_HELD held headers"
		[ $((rss1 - rss0)) -lt 4096 ] || fail "load: the daemon grew by $((rss1 - rss0)) KiB"
		kill -USR1 "$test_pid"
		;;
	"EXIT 0") load_ok=1 ;;
	EXIT*) fail "load test failed" ;;
	esac
done
[ "${load_ok:-0}" = 1 ] || fail "load test did not finish"
expect_empty load

echo "== restart: ppbpf run --keep killed with SIGKILL and started again under $N_STREAMS streams"
exec 4< <(rc=0; in_cgroup "$CG" "$TEST" stream "$P_STREAM" "$N_STREAMS" "$STREAM_SECONDS" ${STREAM_BYTES:+"$STREAM_BYTES"} || rc=$?
	echo "EXIT $rc")
read -r line <&4 || fail "the stream test ended without a word"
echo "$line"
read -r word started stream_pid <<< "$line"
[ "$word $started" = "STREAMING $N_STREAMS" ] || fail "the streams did not start: $line"
kill -KILL "$DAEMON"
wait "$DAEMON" 2>/dev/null || true
listed=$("$CLI" list --pin-dir "$PIN" --json | jq --arg p ":$P_STREAM" '[.[] | select(.local | endswith($p))] | length')
[ "$listed" = "$N_STREAMS" ] || fail "after SIGKILL, ppbpf list shows $listed of the $N_STREAMS streams"
sleep 1
start_daemon "$LOG.2" --config "$CONF" --keep --sweep-ms 50
RESTARTED=$DAEMON
grep -q "picked up" "$LOG.2" || fail "the restarted daemon did not pick up the pinned programs"
sleep 1
listed=$("$CLI" list --pin-dir "$PIN" --json |
	jq --arg p ":$P_STREAM" '[.[] | select((.local | endswith($p)) and .state == "done")] | length')
[ "$listed" = "$N_STREAMS" ] || fail "after the restart, ppbpf list shows $listed of the $N_STREAMS streams"
sleep "$STREAM_SECONDS" # streaming on under the new daemon, then the go-ahead to stop and check every byte
kill -USR1 "$stream_pid"
while read -r line <&4; do
	echo "$line"
	case $line in
	"EXIT 0") stream_ok=1 ;;
	EXIT*) fail "streams broke across the restart" ;;
	esac
done
[ "${stream_ok:-0}" = 1 ] || fail "the stream test did not finish"
expect_empty restart

echo "== live policy change: untrusted peers of a port go from reject to plain and back"
"$CLI" attach --pin-dir "$PIN" --port "$P_REJ" --trust 127.0.0.1 --untrusted plain >/dev/null
[ "$("$CLI" status --pin-dir "$PIN" --json | jq -r ".ports[] | select(.port == $P_REJ) | .untrusted")" = plain ] ||
	fail "the live change did not take"
in_cgroup "$CG" "$TEST" plain "$P_REJ" 50 || fail "untrusted peers after the live change to plain"
kill -HUP "$RESTARTED"
for _ in $(seq 50); do grep -q "policy reloaded" "$LOG.2" && break; sleep 0.1; done
grep -q "policy reloaded" "$LOG.2" || fail "SIGHUP did not reload the config"
[ "$("$CLI" status --pin-dir "$PIN" --json | jq -r ".ports[] | select(.port == $P_REJ) | .untrusted")" = reject ] ||
	fail "SIGHUP did not restore the config's policy"

echo "== table full: capacity 10, the 11th tracked connection is reset"
new_cgroup CG_SMALL table
new_pin_dir PIN_SMALL table
# (a log of its own: the restarted daemon still writes to $LOG.2)
start_daemon "$LOG.3" --cgroup "$CG_SMALL" --pin-dir "$PIN_SMALL" --table-size 10 --port "$P_TABLE" \
	--trust 127.0.0.1 --sweep-ms 50
SMALL_DAEMON=$DAEMON
in_cgroup "$CG_SMALL" "$TEST" tablefull "$P_TABLE" 10 || fail "table full"
full=$("$CLI" status --pin-dir "$PIN_SMALL" --json | jq -r .counters.rejected_table_full)
[ "$full" = 1 ] || fail "rejected_table_full = $full, want 1"
grep -q "reason=no_room" "$LOG.3" || fail "no 'reason=no_room' line in the daemon's log"

echo "== SIGTERM: the daemon without --keep detaches and removes its pins"
kill -TERM "$SMALL_DAEMON"
wait "$SMALL_DAEMON" || fail "ppbpf run exited with $? on SIGTERM"
[ ! -e "$PIN_SMALL" ] || fail "$PIN_SMALL still exists after SIGTERM"
grep -q "detached" "$LOG.3" || fail "no 'detached' line on SIGTERM"

echo "== SIGTERM with --keep: the restarted daemon, alive to the end, exits cleanly and leaves its pins"
kill -0 "$RESTARTED" || fail "the restarted ppbpf run died during the tests: $(tail -3 "$LOG.2")"

echo "counters: $("$CLI" status --pin-dir "$PIN" --json | jq -c '.counters | {rejected, rejected_untrusted,
	rejected_version, rejected_timeout, error_v1, error_v2, error_too_large, not_proxy, resets, held_segments,
	dropped_segments, events_lost}')"
echo "daemon log: $(grep -c 'rejected peer=' "$LOG" "$LOG.2" "$LOG.3" | tr '\n' ' ')lines of rejections"
kill -TERM "$RESTARTED"
wait "$RESTARTED" || fail "ppbpf run --keep exited with $? on SIGTERM"
[ -e "$PIN" ] || fail "ppbpf run --keep removed $PIN on SIGTERM"
echo "PASS: trust and rejection"
