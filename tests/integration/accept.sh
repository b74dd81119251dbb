#!/usr/bin/env bash
# ppbpf_accept and ppbpf_wait at their edges (accept_test): peers that close
# before their header is whole (no spinning, no wait past the timeout), with
# the kernel side attached and no daemon, then under `ppbpf run` (optional
# ports and server-first protocols), then with nothing attached (the userspace
# fallback and its trust list): after a detach, and in a cgroup never attached.
. "$(dirname "$0")/lib.sh"
need_root "the ppbpf_accept edge tests"

TEST=$OUT/tests/accept_test
check_case "$TEST"
new_cgroup CG accept
new_cgroup CG_PLAIN accept-plain
new_pin_dir PIN accept
free_port P_REQ P_OPT P_OPT_LONG P_V2
LOOP=127.0.0.0/8,::1
CONF=$(mktemp /tmp/ppbpf-test-accept-conf.XXXXXX)
LOG=$(mktemp /tmp/ppbpf-test-accept-run.XXXXXX)
CLEANUP+=("rm -f '$CONF' '$LOG'")
# (accept_test.c knows the optional port's timeout, 300 ms, and the sweep interval, 50 ms)
cat > "$CONF" <<EOF
cgroup $CG
pin-dir $PIN
port $P_REQ trust $LOOP timeout 0
port $P_OPT trust $LOOP mode optional timeout 300
port $P_OPT_LONG trust $LOOP mode optional timeout 5000
port $P_V2 trust $LOOP versions 2 max-header 64
EOF
args=("$P_REQ" "$P_OPT" "$P_OPT_LONG" "$P_V2" "$PIN")

echo "== kernel side attached to $CG, no daemon"
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$P_REQ" --trust $LOOP --timeout 0 2>/dev/null
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$P_OPT" --trust $LOOP --optional --timeout 300 2>/dev/null
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$P_OPT_LONG" --trust $LOOP --optional --timeout 5000 2>/dev/null
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$P_V2" --trust $LOOP --versions 2 --max-header 64 2>/dev/null
if selected_group "$TEST" kernel; then
	in_cgroup "$CG" "$TEST" kernel "${args[@]}" || fail "ppbpf_accept edges, kernel side without the daemon"
fi

if selected_group "$TEST" daemon; then
	echo "== under ppbpf run (--sweep-ms 50)"
	"$CLI" run --config "$CONF" --keep --sweep-ms 50 2>"$LOG" &
	DAEMON=$!
	PIDS+=("$DAEMON")
	for _ in $(seq 100); do
		grep -q "ppbpf: running" "$LOG" && break
		kill -0 "$DAEMON" 2>/dev/null || { cat "$LOG"; fail "ppbpf run exited"; }
		sleep 0.05
	done
	grep -q "ppbpf: running" "$LOG" || { cat "$LOG"; fail "ppbpf run did not start"; }
	in_cgroup "$CG" "$TEST" daemon "${args[@]}" || fail "ppbpf_accept edges, under ppbpf run"
	kill -TERM "$DAEMON"
	wait "$DAEMON" || fail "ppbpf run exited with $? on SIGTERM"
	"$CLI" status --pin-dir "$PIN" --json | jq -c '.counters | {plain, timeout_plain, rejected, resets}'
fi

if selected_group "$TEST" fallback; then
	echo "== after ppbpf detach: the userspace fallback in $CG"
	"$CLI" detach --pin-dir "$PIN" --cgroup "$CG" >/dev/null
	in_cgroup "$CG" "$TEST" fallback "${args[@]}" || fail "ppbpf_accept edges, fallback after detach"
	echo "== a cgroup never attached ($CG_PLAIN): the userspace fallback"
	in_cgroup "$CG_PLAIN" "$TEST" fallback "${args[@]}" || fail "ppbpf_accept edges, fallback outside the cgroup"
fi
echo "PASS: ppbpf_accept and ppbpf_wait edges (kernel side, ppbpf run, userspace fallback)"
