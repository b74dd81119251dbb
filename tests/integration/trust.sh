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
scaled FLOOD_MIN 1000 200   # rejections the flood must at least make the daemon see (a guest is slower)

TEST=$OUT/tests/trust_test
# The sections (test_NAME below, run after the steps before them) and the trust_test modes each
# runs: PPBPF_TEST_CASE chooses a section by its name or by one of its modes (lib.sh).
SECTIONS="exact_policy foreign_pins concurrent_start setup_race sweep_flood pin_dir_mode json_attached readonly_cgroupfs"
declare -A SECTION_MODES=([exact_policy]="honoured untracked" [foreign_pins]="" [concurrent_start]=honoured [setup_race]=honoured
	[sweep_flood]=flood [pin_dir_mode]="" [json_attached]="" [readonly_cgroupfs]="honoured flood")
# shellcheck disable=SC2086 # (one section a word)
check_case "$TEST" $SECTIONS
new_cgroup CG trust
new_pin_dir PIN trust
free_port P_PLAIN P_REJ P_V2 P_SMALL P_SLOW P_LOAD P_STREAM P_TABLE P_GONE P_KEPT P_ATT P_FOREIGN P_RACE \
	P_FLOOD P_MODE P_JSON P_RO P_SETUP
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

# sockets_gone: of the table's connections, those with no socket left (by ss); prints them, "" if none.
sockets_gone() {
	local local_end peer_end
	"$CLI" list --pin-dir "$PIN" --json | jq -r '.[] | "\(.local) \(.peer)"' | while read -r local_end peer_end; do
		ss -Htan "( sport = :${local_end##*:} and dport = :${peer_end##*:} )" | grep -q . ||
			echo "$local_end<-$peer_end"
	done
}

# sockets_of_table: what ss says of the table's connections (for a failure's message).
sockets_of_table() {
	local local_end peer_end
	"$CLI" list --pin-dir "$PIN" --json | jq -r '.[] | "\(.local) \(.peer)"' | while read -r local_end peer_end; do
		ss -Htanoi "( sport = :${local_end##*:} and dport = :${peer_end##*:} )" || true
		ss -Htanoi "( dport = :${local_end##*:} and sport = :${peer_end##*:} )" || true
	done
}

# expect_empty WHAT: no connection or pending entry left (closes propagate asynchronously).
# A socket the test closed may live on for a while (an orphan in FIN-WAIT-2
# whose peer's FIN waits behind held header bytes): its entries go with it.
# Entries whose socket is gone are a leak, and fail at once.
expect_empty() {
	local left gone
	for i in $(seq 300); do
		left=$(table_size)
		[ "$left" = "0 0" ] && return 0
		if [ "$i" -ge 50 ]; then
			gone=$(sockets_gone)
			[ -z "$gone" ] || fail "$1: entries left with no socket behind them ($left): $gone"
		fi
		sleep 0.1
	done
	fail "$1: entries left in the table / pending map after 30 s: $left; sockets: $("$CLI" list --pin-dir "$PIN")" \
		"$(sockets_of_table)"
}

# reload DAEMON LOG: SIGHUP, then wait until the daemon says it reloaded (once more than before).
reload() {
	local pid=$1 log=$2 before
	before=$(grep -c "policy reloaded" "$log" || true)
	kill -HUP "$pid"
	for _ in $(seq 50); do
		[ "$(grep -c "policy reloaded" "$log" || true)" -gt "$before" ] && return 0
		sleep 0.1
	done
	cat "$log"
	fail "SIGHUP did not reload the config"
}

# ports_of PIN: the ports with a policy, "P1 P2 ..." in order.
ports_of() { "$CLI" status --pin-dir "$1" --json | jq -r '[.ports[].port] | map(tostring) | join(" ")'; }
# trust_of PIN PORT: the port's trusted blocks, "A,B".
trust_of() { "$CLI" status --pin-dir "$1" --json | jq -r --argjson p "$2" '[.ports[] | select(.port == $p) | .trust[]] | join(",")'; }

# port_state PIN PORT: what the pinned maps hold for PORT, read with bpftool (not ppbpf):
# "policy=N port_bit=B rewrite_bit=B trust4=N trust6=N". Nothing left is all zeros.
port_state() {
	local pin=$1 port=$2 w=$(($2 >> 6)) b=$(($2 & 63)) pol pbit rbit t4 t6 be
	pol=$(bpftool -j map dump pinned "$pin/ports" | jq --argjson p "$port" '[.[] | select(.formatted.key == $p)] | length')
	bit_of() {
		local byte
		byte=$(bpftool -j map lookup pinned "$pin/$1" key $((w & 255)) $((w >> 8)) 0 0 | jq -r ".value[$((b / 8))]")
		echo $(((byte >> (b % 8)) & 1))
	}
	pbit=$(bit_of port_bits)
	rbit=$(bit_of rewrite_bits)
	be=$(printf '0x%02x0x%02x' $((port >> 8)) $((port & 255))) # the key's port bytes, network order
	t4=$(bpftool -j map dump pinned "$pin/trust4" | jq --arg p "$be" '[.[] | select(.key[4] + .key[5] == $p)] | length')
	t6=$(bpftool -j map dump pinned "$pin/trust6" | jq --arg p "$be" '[.[] | select(.key[4] + .key[5] == $p)] | length')
	echo "policy=$pol port_bit=$pbit rewrite_bit=$rbit trust4=$t4 trust6=$t6"
}
NOTHING="policy=0 port_bit=0 rewrite_bit=0 trust4=0 trust6=0"

echo "== ppbpf run --config (pins in $PIN)"
start_daemon "$LOG" --config "$CONF" --keep --sweep-ms 50 --log-rate 1000
# The daemon serving $PIN to the end, and its log: the restart step replaces it.
RESTARTED=$DAEMON RESTARTED_LOG=$LOG
DAEMON_LOGS=("$LOG")
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

if selected spoof; then
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
fi

if selected malformed; then
	echo "== malformed headers: every parser error class, each reset before the first read"
	in_cgroup "$CG" "$TEST" malformed "$P_REJ" "$P_V2" "$P_SMALL" || fail "malformed headers"
	for c in error_v1 error_v2 error_too_large not_proxy rejected_version resets; do
		[ "$(counter $c)" -gt 0 ] || fail "counter $c did not move"
	done
	for r in v1_bad_port crc32c_mismatch too_large version_refused not_proxy; do
		grep -q "reason=$r " "$LOG" || fail "no 'reason=$r' line in the daemon's log"
	done
	expect_empty "malformed headers"
fi

if selected slow; then
	echo "== slow sender: one header byte a second, timeout ${SLOW_TIMEOUT_MS} ms, 200 good clients meanwhile"
	in_cgroup "$CG" "$TEST" slow "$P_SLOW" "$SLOW_TIMEOUT_MS" 200 || fail "slow sender"
	[ "$(counter rejected_timeout)" -ge 1 ] || fail "the timeout was not counted"
	grep -q "reason=timeout" "$LOG" || fail "no 'reason=timeout' line in the daemon's log"
	expect_empty "slow sender"
fi

if selected load; then
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
fi

if selected stream; then
	echo "== restart: ppbpf run --keep killed with SIGKILL and started again under $N_STREAMS streams"
	exec 4< <(rc=0
		in_cgroup "$CG" "$TEST" stream "$P_STREAM" "$N_STREAMS" "$STREAM_SECONDS" ${STREAM_BYTES:+"$STREAM_BYTES"} || rc=$?
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
	RESTARTED=$DAEMON RESTARTED_LOG=$LOG.2
	DAEMON_LOGS+=("$LOG.2")
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
fi

if selected plain; then
	echo "== live policy change: untrusted peers of a port go from reject to plain and back"
	"$CLI" attach --pin-dir "$PIN" --port "$P_REJ" --trust 127.0.0.1 --untrusted plain >/dev/null
	[ "$("$CLI" status --pin-dir "$PIN" --json | jq -r ".ports[] | select(.port == $P_REJ) | .untrusted")" = plain ] ||
		fail "the live change did not take"
	in_cgroup "$CG" "$TEST" plain "$P_REJ" 50 || fail "untrusted peers after the live change to plain"
	reload "$RESTARTED" "$RESTARTED_LOG"
	[ "$("$CLI" status --pin-dir "$PIN" --json | jq -r ".ports[] | select(.port == $P_REJ) | .untrusted")" = reject ] ||
		fail "SIGHUP did not restore the config's policy"
fi

if selected tablefull; then
	echo "== table full: capacity 10, the 11th tracked connection is reset"
	new_cgroup CG_SMALL table
	new_pin_dir PIN_SMALL table
	# (a log of its own: the restarted daemon still writes to $LOG.2)
	start_daemon "$LOG.3" --cgroup "$CG_SMALL" --pin-dir "$PIN_SMALL" --table-size 10 --port "$P_TABLE" \
		--trust 127.0.0.1 --sweep-ms 50
	DAEMON_LOGS+=("$LOG.3")
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
fi

# ---- what leaves the config leaves the kernel -----------------------------------------------
test_exact_policy() {
	echo "== exact policy: a port or a trusted block removed from the config is removed (SIGHUP, start)"
	local conf log x_daemon
	new_cgroup CG_X exact
	new_pin_dir PIN_X exact
	conf=$(mktemp /tmp/ppbpf-test-conf.XXXXXX)
	log=$(mktemp /tmp/ppbpf-test-run.XXXXXX)
	CLEANUP+=("rm -f '$conf' '$log' '$log.2'")
	printf 'cgroup %s\npin-dir %s\nport %s trust 127.0.0.1 rewrite-peer untrusted reject\nport %s trust 127.0.0.1,127.0.0.9\n' \
		"$CG_X" "$PIN_X" "$P_GONE" "$P_KEPT" > "$conf"
	start_daemon "$log" --config "$conf" --keep --sweep-ms 50
	x_daemon=$DAEMON
	[ "$(ports_of "$PIN_X")" = "$(printf '%s\n' "$P_GONE" "$P_KEPT" | sort -n | tr '\n' ' ' | sed 's/ $//')" ] ||
		fail "the config's ports are not the policy: $(ports_of "$PIN_X")"
	[ "$(port_state "$PIN_X" "$P_GONE")" = "policy=1 port_bit=1 rewrite_bit=1 trust4=1 trust6=0" ] ||
		fail "port $P_GONE: unexpected state $(port_state "$PIN_X" "$P_GONE")"
	in_cgroup "$CG_X" "$TEST" honoured "$P_GONE" 4 127.0.0.1 || fail "port $P_GONE before the reload"
	in_cgroup "$CG_X" "$TEST" honoured "$P_KEPT" 4 127.0.0.9 || fail "port $P_KEPT from 127.0.0.9 before the reload"

	# The balancer of P_GONE is gone (its line deleted), and P_KEPT no longer trusts 127.0.0.9.
	printf 'cgroup %s\npin-dir %s\nport %s trust 127.0.0.1\n' "$CG_X" "$PIN_X" "$P_KEPT" > "$conf"
	reload "$x_daemon" "$log"
	[ "$(ports_of "$PIN_X")" = "$P_KEPT" ] || fail "after SIGHUP the policy has ports $(ports_of "$PIN_X"), want $P_KEPT"
	[ "$(port_state "$PIN_X" "$P_GONE")" = "$NOTHING" ] ||
		fail "after SIGHUP port $P_GONE still owns: $(port_state "$PIN_X" "$P_GONE")"
	[ "$(trust_of "$PIN_X" "$P_KEPT")" = 127.0.0.1/32 ] ||
		fail "after SIGHUP port $P_KEPT trusts $(trust_of "$PIN_X" "$P_KEPT"), want 127.0.0.1/32"
	in_cgroup "$CG_X" "$TEST" untracked "$P_GONE" 4 127.0.0.1 || fail "port $P_GONE after its line was removed"
	in_cgroup "$CG_X" "$TEST" untracked "$P_KEPT" 4 127.0.0.9 || fail "127.0.0.9 on $P_KEPT after it was removed"
	in_cgroup "$CG_X" "$TEST" honoured "$P_KEPT" 4 127.0.0.1 || fail "127.0.0.1 on $P_KEPT after the reload"

	echo "== exact policy at start: a pinned port that the config does not have is removed"
	kill -TERM "$x_daemon"
	wait "$x_daemon" || fail "ppbpf run --keep exited with $? on SIGTERM"
	"$CLI" attach --pin-dir "$PIN_X" --port "$P_ATT" --trust 127.0.0.1 --rewrite-peer >/dev/null
	start_daemon "$log.2" --config "$conf" --keep --sweep-ms 50
	x_daemon=$DAEMON
	grep -q "picked up" "$log.2" || fail "the daemon did not pick up the pinned programs"
	[ "$(ports_of "$PIN_X")" = "$P_KEPT" ] || fail "at start the policy has ports $(ports_of "$PIN_X"), want $P_KEPT"
	[ "$(port_state "$PIN_X" "$P_ATT")" = "$NOTHING" ] ||
		fail "at start port $P_ATT still owns: $(port_state "$PIN_X" "$P_ATT")"
	in_cgroup "$CG_X" "$TEST" untracked "$P_ATT" 2 127.0.0.1 || fail "port $P_ATT after the daemon started without it"

	echo "== attach: a port given again trusts exactly its new list; detach --port removes one port"
	"$CLI" attach --pin-dir "$PIN_X" --port "$P_ATT" --trust 127.0.0.1,127.0.0.9,::1 --rewrite-peer >/dev/null
	"$CLI" attach --pin-dir "$PIN_X" --port "$P_ATT" --trust 127.0.0.1 >/dev/null
	[ "$(trust_of "$PIN_X" "$P_ATT")" = 127.0.0.1/32 ] ||
		fail "port $P_ATT given again trusts $(trust_of "$PIN_X" "$P_ATT"), want 127.0.0.1/32"
	[ "$(port_state "$PIN_X" "$P_ATT")" = "policy=1 port_bit=1 rewrite_bit=0 trust4=1 trust6=0" ] ||
		fail "port $P_ATT given again: $(port_state "$PIN_X" "$P_ATT")"
	in_cgroup "$CG_X" "$TEST" untracked "$P_ATT" 2 127.0.0.9 || fail "127.0.0.9 on $P_ATT after its removal from the list"
	out=$("$CLI" detach --pin-dir "$PIN_X" --port "$P_ATT") || fail "detach --port $P_ATT failed: $out"
	[ "$(port_state "$PIN_X" "$P_ATT")" = "$NOTHING" ] ||
		fail "after detach --port, port $P_ATT still owns: $(port_state "$PIN_X" "$P_ATT")"
	[ "$(ports_of "$PIN_X")" = "$P_KEPT" ] || fail "detach --port $P_ATT changed other ports: $(ports_of "$PIN_X")"
	"$CLI" status --pin-dir "$PIN_X" --json | jq -e '.attached and all(.programs[]; .link_id > 0)' >/dev/null ||
		fail "detach --port detached the programs"
	in_cgroup "$CG_X" "$TEST" untracked "$P_ATT" 2 127.0.0.1 || fail "port $P_ATT after detach --port"
	kill -0 "$x_daemon" || fail "the daemon died: $(tail -3 "$log.2")"
	kill -TERM "$x_daemon"
	wait "$x_daemon" || fail "ppbpf run --keep exited with $? on SIGTERM"
}

# ---- a pin folder shared with another tool ------------------------------------------------------
test_foreign_pins() {
	echo "== a pin folder with another tool's pins: ppbpf removes only its own, and keeps the folder"
	local ids out rc
	new_cgroup CG_F foreign
	new_pin_dir PIN_F foreign
	CLEANUP+=("rm -rf '$PIN_F'")
	mkdir -m 0700 "$PIN_F"
	bpftool map create "$PIN_F/events" type array key 4 value 8 entries 1 name events
	bpftool map create "$PIN_F/stats" type hash key 4 value 4 entries 8 name stats
	bpftool map create "$PIN_F/other" type array key 4 value 4 entries 1 name other
	foreign_ids() {
		local n
		for n in events stats other; do bpftool -j map show pinned "$PIN_F/$n" 2>/dev/null | jq -r .id || echo "$n:gone"; done |
			tr '\n' ' '
	}
	ids=$(foreign_ids)
	rc=0
	out=$("$CLI" detach --pin-dir "$PIN_F" 2>&1) || rc=$?
	[ "$(foreign_ids)" = "$ids" ] || fail "detach removed another tool's pins (now: $(foreign_ids); it said: $out)"
	[ "$rc" = 0 ] || fail "detach of a folder holding nothing of ppbpf's exited $rc: $out"
	rc=0
	out=$("$CLI" attach --cgroup "$CG_F" --pin-dir "$PIN_F" --port "$P_FOREIGN" --trust 127.0.0.1 2>&1) || rc=$?
	[ "$(foreign_ids)" = "$ids" ] || fail "attach (exit $rc) removed another tool's pins (now: $(foreign_ids)): $out"
	[ "$rc" = 1 ] || fail "attach into a folder with another tool's 'events' and 'stats' exited $rc: $out"
	[ "$(cd "$PIN_F" && echo *)" = "events other stats" ] || fail "the failed attach left pins: $(cd "$PIN_F" && echo *)"
	# ppbpf's own attachment, and another tool's pin added beside it later: detach keeps that one.
	rm "$PIN_F/events" "$PIN_F/stats" "$PIN_F/other"
	"$CLI" attach --cgroup "$CG_F" --pin-dir "$PIN_F" --port "$P_FOREIGN" --trust 127.0.0.1 >/dev/null
	bpftool map create "$PIN_F/other" type array key 4 value 4 entries 1 name other
	bpftool map create "$PIN_F/stats_old" type array key 4 value 4 entries 1 name stats
	out=$("$CLI" detach --pin-dir "$PIN_F" 2>&1) || fail "detach failed: $out"
	[ "$(cd "$PIN_F" && echo *)" = "other stats_old" ] || fail "detach left or removed the wrong pins: $(cd "$PIN_F" && echo *)"
	grep -q "other" <<< "$out" || fail "detach did not say what it left in $PIN_F: $out"
	"$CLI" status --pin-dir "$PIN_F" --json | jq -e '.attached == false' >/dev/null || fail "still attached after detach"
}

# ---- two first-time daemons at once --------------------------------------------------------------
test_concurrent_start() {
	local rounds=5 i a b la lb alive winner loser wlog llog rc
	echo "== two first-time ppbpf runs started at once, $rounds times: one serves, the other leaves it alone"
	new_cgroup CG_RACE race
	for i in $(seq "$rounds"); do
		new_pin_dir PIN_RACE "race$i"
		la=$(mktemp /tmp/ppbpf-test-run.XXXXXX) lb=$(mktemp /tmp/ppbpf-test-run.XXXXXX)
		CLEANUP+=("rm -f '$la' '$lb'")
		"$CLI" run --cgroup "$CG_RACE" --pin-dir "$PIN_RACE" --port "$P_RACE" --trust 127.0.0.1 --sweep-ms 50 2>"$la" &
		a=$!
		"$CLI" run --cgroup "$CG_RACE" --pin-dir "$PIN_RACE" --port "$P_RACE" --trust 127.0.0.1 --sweep-ms 50 2>"$lb" &
		b=$!
		PIDS+=("$a" "$b")
		winner="" loser=""
		for _ in $(seq 100); do
			alive=""
			kill -0 "$a" 2>/dev/null && alive+=a
			kill -0 "$b" 2>/dev/null && alive+=b
			if [ "$alive" = a ] && grep -q "ppbpf: running" "$la"; then winner=$a loser=$b wlog=$la llog=$lb; break; fi
			if [ "$alive" = b ] && grep -q "ppbpf: running" "$lb"; then winner=$b loser=$a wlog=$lb llog=$la; break; fi
			[ -n "$alive" ] || break
			sleep 0.05
		done
		[ -n "$winner" ] || fail "round $i: not exactly one daemon running (alive: '$alive'): $(cat "$la" "$lb")"
		rc=0
		wait "$loser" || rc=$?
		[ "$rc" = 1 ] && grep -q "another ppbpf run serves" "$llog" ||
			fail "round $i: the second daemon exited $rc without saying another serves: $(cat "$llog")"
		sleep 0.3 # the winner sweeps meanwhile: its pins must all still be there
		kill -0 "$winner" || fail "round $i: the winner died: $(cat "$wlog")"
		"$CLI" status --pin-dir "$PIN_RACE" --json |
			jq -e --argjson p "$P_RACE" '.attached and all(.programs[]; .link_id > 0) and [.ports[].port] == [$p]' \
				>/dev/null || fail "round $i: the winner's attachment is damaged: $("$CLI" status --pin-dir "$PIN_RACE")"
		in_cgroup "$CG_RACE" "$TEST" honoured "$P_RACE" 2 127.0.0.1 >/dev/null ||
			fail "round $i: the winner's policy; counters: $("$CLI" status --pin-dir "$PIN_RACE" --json |
				jq -c '.counters | with_entries(select(.value != 0))')"
		kill -TERM "$winner"
		wait "$winner" || fail "round $i: the winner exited $? on SIGTERM: $(cat "$wlog")"
		[ ! -e "$PIN_RACE" ] || fail "round $i: $PIN_RACE left after the winner's SIGTERM"
	done
	echo "concurrent start: $rounds rounds, one daemon each, its attachment intact"
}

# ---- data before sockops has set the socket up ---------------------------------------------------
# The child of a handshake is in the kernel's table, where segments find it,
# before sockops has made its record: a data segment handled on another CPU
# meanwhile (the ACK that made the child waiting in a busy CPU's softirq
# queue) must not pass unjudged. Busy CPUs make it likely; every header is
# honoured, none refused as "bytes the kernel side did not see".
test_setup_race() {
	local n hogs=() i log daemon
	scaled n 400 100
	echo "== $n headers sent right after connect, the CPUs busy: every one honoured"
	new_cgroup CG_SETUP setup
	new_pin_dir PIN_SETUP setup
	log=$(mktemp /tmp/ppbpf-test-run.XXXXXX)
	CLEANUP+=("rm -f '$log'")
	# (the daemon's sweep walks the sockets often: more work in softirq-off sections)
	start_daemon "$log" --cgroup "$CG_SETUP" --pin-dir "$PIN_SETUP" --port "$P_SETUP" --trust 127.0.0.1 \
		--sweep-ms 10
	daemon=$DAEMON
	for i in $(seq "$(nproc)"); do
		timeout 120 sh -c 'while :; do :; done' &
		hogs+=($!)
		PIDS+=($!)
	done
	in_cgroup "$CG_SETUP" "$TEST" honoured "$P_SETUP" "$n" 127.0.0.1 | tail -1 ||
		fail "setup race: headers refused; counters: $("$CLI" status --pin-dir "$PIN_SETUP" --json |
			jq -c '.counters | with_entries(select(.value != 0))')"
	kill "${hogs[@]}" 2>/dev/null || true
	wait "${hogs[@]}" 2>/dev/null || true
	echo "setup race: $("$CLI" status --pin-dir "$PIN_SETUP" --json | jq -c '.counters |
		{tracked, v2, before_setup_segments, held_segments}')"
	kill -TERM "$daemon"
	wait "$daemon" || fail "setup race: the daemon exited $? on SIGTERM: $(tail -3 "$log")"
}

# ---- a flood of rejections does not make the daemon sweep without pause --------------------------
test_sweep_flood() {
	local secs=2 log made line out sweeps events lifetime_ms max
	echo "== a flood of untrusted connections for ${secs} s: the sweep runs at most every 10 ms"
	new_cgroup CG_FLOOD flood
	new_pin_dir PIN_FLOOD flood
	log=$(mktemp /tmp/ppbpf-test-run.XXXXXX)
	CLEANUP+=("rm -f '$log'")
	start_daemon "$log" --cgroup "$CG_FLOOD" --pin-dir "$PIN_FLOOD" --port "$P_FLOOD" --trust 127.0.0.1 \
		--untrusted reject --sweep-ms 1000 --log-rate 5
	local flood_daemon=$DAEMON
	out=$(in_cgroup "$CG_FLOOD" "$TEST" flood "$P_FLOOD" "$secs" 4) || fail "the flood failed: $out"
	grep -v '^FLOOD' <<< "$out"
	read -r _ made _ <<< "$(grep '^FLOOD' <<< "$out")"
	kill -TERM "$flood_daemon"
	wait "$flood_daemon" || fail "the flooded daemon exited $? on SIGTERM: $(tail -3 "$log")"
	line=$(grep -a "sweeps" "$log" | tail -1 || true)
	[[ $line =~ ([0-9]+)\ sweeps,\ ([0-9]+)\ events\ in\ ([0-9]+)\ ms ]] ||
		fail "the daemon did not say how many sweeps it ran: $(tail -3 "$log")"
	sweeps=${BASH_REMATCH[1]} events=${BASH_REMATCH[2]} lifetime_ms=${BASH_REMATCH[3]}
	# at most one per 10 ms for the events, one per --sweep-ms, and the first
	max=$((lifetime_ms / 10 + lifetime_ms / 1000 + 2))
	echo "flood: $made connections, the daemon saw $events events and ran $sweeps sweeps in $lifetime_ms ms (at most $max)"
	[ "$events" -ge "$FLOOD_MIN" ] || fail "the daemon saw only $events events of $made rejected connections"
	[ "$sweeps" -le "$max" ] || fail "the daemon ran $sweeps sweeps in $lifetime_ms ms under a flood, more than $max"
}

# ---- the pin folder must be root's alone ----------------------------------------------------------
test_pin_dir_mode() {
	local rc out
	echo "== a pin folder writable by others, or owned by another user, is refused"
	new_cgroup CG_MODE mode
	new_pin_dir PIN_MODE mode
	mkdir "$PIN_MODE"
	chmod 0777 "$PIN_MODE"
	for cmd in attach run; do
		rc=0
		out=$(timeout 10 "$CLI" "$cmd" --cgroup "$CG_MODE" --pin-dir "$PIN_MODE" --port "$P_MODE" --trust 127.0.0.1 2>&1) ||
			rc=$?
		[ "$rc" = 1 ] && grep -q "writable by others" <<< "$out" ||
			fail "$cmd into a pin folder of mode 0777 exited $rc: $out"
		[ -z "$(ls -A "$PIN_MODE")" ] || fail "$cmd pinned into a pin folder of mode 0777"
	done
	chmod 0700 "$PIN_MODE"
	chown 65534 "$PIN_MODE"
	rc=0
	out=$("$CLI" attach --cgroup "$CG_MODE" --pin-dir "$PIN_MODE" --port "$P_MODE" --trust 127.0.0.1 2>&1) || rc=$?
	[ "$rc" = 1 ] && grep -q "owned by uid 65534" <<< "$out" || fail "attach into a folder owned by 65534 exited $rc: $out"
	chown 0 "$PIN_MODE"
	chmod 0755 "$PIN_MODE"
	"$CLI" attach --cgroup "$CG_MODE" --pin-dir "$PIN_MODE" --port "$P_MODE" --trust 127.0.0.1 >/dev/null ||
		fail "attach into root's own 0755 folder failed"
	"$CLI" detach --pin-dir "$PIN_MODE" >/dev/null
}

# ---- JSON out of an attached status and list, with a cgroup path full of quotes ---------------------
test_json_attached() {
	echo "== status --json and list --json escape what they print (a cgroup named with quotes)"
	new_cgroup CG_JSON 'q"u\o\te,"x":1'
	new_pin_dir PIN_JSON json
	"$CLI" attach --cgroup "$CG_JSON" --pin-dir "$PIN_JSON" --port "$P_JSON" --trust 127.0.0.1 >/dev/null
	"$CLI" status --pin-dir "$PIN_JSON" --json | jq -e --arg c "$CG_JSON" '.cgroup == $c and .attached' >/dev/null ||
		fail "status --json of a cgroup with quotes: $("$CLI" status --pin-dir "$PIN_JSON" --json)"
	"$CLI" list --pin-dir "$PIN_JSON" --json | jq -e 'type == "array"' >/dev/null || fail "list --json"
	"$CLI" detach --pin-dir "$PIN_JSON" >/dev/null
}

# ---- a read-only cgroupfs (the unit's ProtectControlGroups=yes) ------------------------------------
test_readonly_cgroupfs() {
	local root log ro_daemon
	echo "== a read-only cgroupfs (the systemd unit's ProtectControlGroups=yes): attach and run work"
	new_cgroup CG_RO ro
	new_pin_dir PIN_RO ro
	root=$(cgroup2_root)
	log=$(mktemp /tmp/ppbpf-test-run.XXXXXX)
	CLEANUP+=("rm -f '$log'")
	# (a mount namespace of its own: the pins are on the same bpffs, so they outlive it)
	ro_ns() { unshare -m --propagation private bash -c 'mount -o remount,bind,ro "$0" && ! mkdir "$0/ppbpf-ro" 2>/dev/null &&
		exec "$@"' "$root" "$@"; }
	ro_ns "$CLI" attach --cgroup "$CG_RO" --pin-dir "$PIN_RO" --port "$P_RO" --trust 127.0.0.1 >/dev/null ||
		fail "attach with a read-only cgroupfs"
	in_cgroup "$CG_RO" "$TEST" honoured "$P_RO" 2 127.0.0.1 >/dev/null || fail "the policy attached with a read-only cgroupfs"
	# (not the function: a function in the background is a subshell, and $! would be its pid)
	unshare -m --propagation private bash -c 'mount -o remount,bind,ro "$0" && exec "$@"' "$root" \
		"$CLI" run --cgroup "$CG_RO" --pin-dir "$PIN_RO" --port "$P_RO" --trust 127.0.0.1 --untrusted reject \
		--sweep-ms 50 2>"$log" &
	ro_daemon=$!
	PIDS+=("$ro_daemon")
	for _ in $(seq 100); do grep -q "ppbpf: running" "$log" && break; sleep 0.05; done
	grep -q "ppbpf: running" "$log" || fail "ppbpf run with a read-only cgroupfs: $(cat "$log")"
	in_cgroup "$CG_RO" "$TEST" flood "$P_RO" 1 1 >/dev/null || fail "untrusted connections with a read-only cgroupfs"
	grep -q "reason=untrusted" "$log" || fail "the daemon with a read-only cgroupfs logged no rejection"
	kill -TERM "$ro_daemon"
	wait "$ro_daemon" || fail "ppbpf run with a read-only cgroupfs exited $? on SIGTERM: $(tail -3 "$log")"
}

: "${TRUST_SECTIONS:=$SECTIONS}"
# (TRUST_SECTIONS="a b": only these of the sections above, after the ones before them)
for section in $TRUST_SECTIONS; do
	# shellcheck disable=SC2086 # (one mode a word)
	if selected "$section" ${SECTION_MODES[$section]}; then "test_$section"; fi
done

echo "== SIGTERM with --keep: the restarted daemon, alive to the end, exits cleanly and leaves its pins"
kill -0 "$RESTARTED" || fail "the restarted ppbpf run died during the tests: $(tail -3 "$RESTARTED_LOG")"

echo "counters: $("$CLI" status --pin-dir "$PIN" --json | jq -c '.counters | {rejected, rejected_untrusted,
	rejected_version, rejected_timeout, error_v1, error_v2, error_too_large, not_proxy, resets, held_segments,
	dropped_segments, events_lost}')"
echo "daemon log: $({ grep -Hc 'rejected peer=' "${DAEMON_LOGS[@]}" || true; } | tr '\n' ' ')lines of rejections"
kill -TERM "$RESTARTED"
wait "$RESTARTED" || fail "ppbpf run --keep exited with $? on SIGTERM"
[ -e "$PIN" ] || fail "ppbpf run --keep removed $PIN on SIGTERM"
echo "PASS: trust and rejection"
