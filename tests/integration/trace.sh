#!/usr/bin/env bash
# `ppbpf trace` against the real kernel side, in a scripted scenario:
#   events   one event per connection parsed (v2 with TLVs, v1), rejected
#            (no header), closed, and sent (the sending side), with their
#            endpoints, version, reason and TLV summary (--json); the closes
#            carry the cookies of the verdicts; Ctrl-C ends it with status 0
#            and stops the kernel's writes; a second trace is refused
#   filters  --src and --port (text output) keep only what matches
#   lost     a paused reader: the kernel counts what the full ring could not
#            take, and trace prints it (the ring is 16 KiB, PPBPF_TEST_TRACE_RING)
#   killed   a trace killed with SIGKILL leaves its pid; the next trace starts,
#            and `ppbpf run` clears a dead tracer's pid
. "$(dirname "$0")/lib.sh"
need_root "the trace tests"
for prog in python3 jq bpftool; do
	command -v "$prog" >/dev/null || skip "$prog is not installed (scripts/deps.sh installs it)"
done
new_cgroup CG trace
new_pin_dir PIN trace
TMP=$(mktemp -d /tmp/ppbpf-test-trace.XXXXXX)
CLEANUP+=("rm -rf '$TMP'")
free_port P SEND
PPBPF_TEST_TRACE_RING=16384 "$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$P" --trust 127.0.0.1 \
	--send "$SEND:v2" --send-to 127.0.0.0/8 --send-tlv authority=relay.example >/dev/null

# A server in the cgroup: each connection is read to its end (EOF, a reset, or 3 s), then closed.
# (bash -c itself under &, with the script on its stdin: spawn_in_cgroup's & would take stdin away.)
bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" python3 - "$P" > "$TMP/server.log" 2>&1 <<'PY' &
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(128)
print("listening", flush=True)
def serve(c):
    c.settimeout(3)
    try:
        while c.recv(65536):
            pass
    except OSError:
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$TMP/server.log" && break; sleep 0.05; done
echo_server "$SEND" "$TMP/receiver.log" # the sending side's destination, outside the cgroup

V2=$("$CLI" build --src-addr 203.0.113.7 --dst-addr 198.51.100.2 --src-port 4000 --dst-port 443 \
	--tlv-text AUTHORITY:example.com --tlv-text UNIQUE_ID:req-42 --aws-vpce-id vpce-0123456789abcdef0 \
	--gcp-psc-id 81985529216486895 --azure-link-id 305419896)
V1=$("$CLI" build --version 1 --src-addr 198.51.100.9 --dst-addr 198.51.100.2 --src-port 5000 --dst-port 443)
NOT_PROXY=$(printf 'GET / HTTP/1.0\r\n\r\n' | od -An -tx1 | tr -d ' \n')

# send HEX...: one connection per hex string, each sent, half-closed, read to its end.
send() {
	python3 - "$P" "$@" <<'PY'
import socket, sys
for hexbytes in sys.argv[2:]:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    s.sendall(bytes.fromhex(hexbytes) + b"hello")
    s.shutdown(socket.SHUT_WR)
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.close()
PY
}

# start_trace NAME ARGS...: `ppbpf trace ARGS` in the background (pid in TRACE), once it traces.
start_trace() {
	local name=$1
	shift
	"$CLI" trace --pin-dir "$PIN" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err" &
	TRACE=$!
	PIDS+=("$TRACE")
	for _ in $(seq 100); do grep -q "tracing" "$TMP/$name.err" && return 0; sleep 0.05; done
	fail "trace $name did not start: $(cat "$TMP/$name.err")"
}

# stop_trace NAME: Ctrl-C, which must end it with status 0.
stop_trace() {
	kill -INT "$TRACE"
	wait "$TRACE" || fail "trace $1 did not exit 0 on SIGINT: $(cat "$TMP/$1.err")"
}

tracer_pid() {
	bpftool map dump pinned "$PIN/trace_ctl" -j | jq -r '.[0].formatted.value.pid // .[0].value.pid'
}

# settle: wait until the table is empty again (every connection of the step closed), at most 20 s.
settle() {
	for _ in $(seq 400); do
		[ "$("$CLI" list --pin-dir "$PIN" --json | jq length)" = 0 ] && return 0
		sleep 0.05
	done
	fail "connections still open: $("$CLI" list --pin-dir "$PIN")"
}

# ---- events ---------------------------------------------------------------------------------
start_trace events --json
[ "$(tracer_pid)" = "$TRACE" ] || fail "trace_ctl does not name the tracer: $(tracer_pid), not $TRACE"
"$CLI" trace --pin-dir "$PIN" > "$TMP/second.out" 2> "$TMP/second.err" && fail "a second trace was not refused"
grep -q "another ppbpf trace runs" "$TMP/second.err" || fail "the second trace said: $(cat "$TMP/second.err")"
send "$V2" "$V1" "$NOT_PROXY"
in_cgroup "$CG" python3 -c "$LINE_CLIENT_PY" 127.0.0.1 "$SEND" "relayed" half > "$TMP/sent.out"
settle
sleep 0.3 # the last closes reach the reader
stop_trace events
[ "$(tracer_pid)" = 0 ] || fail "trace_ctl still names a tracer after Ctrl-C: $(tracer_pid)"
E=$TMP/events.out
jq -e . "$E" >/dev/null || fail "trace --json printed something that is not JSON: $(cat "$E")"
one() { # one FILTER: the one event that matches, or fail
	local n
	n=$(jq -c "select($1)" "$E" | wc -l)
	[ "$n" = 1 ] || fail "$n events match $1 (want 1): $(cat "$E")"
	jq -c "select($1)" "$E"
}
V2E=$(one '.event == "parsed" and .version == 2')
jq -e '.src == "203.0.113.7:4000" and .dst == "198.51.100.2:443" and .peer != null and
	.tlvs.authority == "example.com" and .tlvs.unique_id == "req-42" and
	.tlvs.aws_vpce_id == "vpce-0123456789abcdef0" and .tlvs.gcp_psc_id == "81985529216486895" and
	.tlvs.azure_link_id == 305419896 and .tlvs.count == 5' <<<"$V2E" >/dev/null ||
	fail "the v2 event: $V2E"
V1E=$(one '.event == "parsed" and .version == 1')
jq -e '.src == "198.51.100.9:5000" and (.tlvs == null)' <<<"$V1E" >/dev/null || fail "the v1 event: $V1E"
REJ=$(one '.event == "rejected"')
jq -e '.reason == "not_proxy" and .src == null' <<<"$REJ" >/dev/null || fail "the rejection: $REJ"
SENT=$(one '.event == "sent"')
client=$(head -1 "$TMP/sent.out")
jq -e --arg c "$client" --arg d "127.0.0.1:$SEND" '.src == $c and .dst == $d and .peer == $d and .version == 2 and
	.tlvs.authority == "relay.example"' <<<"$SENT" >/dev/null || fail "the sent event (client $client): $SENT"
for ev in "$V2E" "$V1E" "$REJ"; do
	cookie=$(jq .cookie <<<"$ev")
	one ".event == \"closed\" and .cookie == $cookie" >/dev/null
done
[ "$(jq -c 'select(.event == "closed")' "$E" | wc -l)" = 3 ] || fail "not 3 closes: $(cat "$E")"
[ "$(wc -l < "$E")" = 7 ] || fail "not 7 events (2 parsed, 1 rejected, 3 closed, 1 sent): $(cat "$E")"
grep -q "7 events, 0 lost" "$TMP/events.err" || fail "the summary: $(cat "$TMP/events.err")"
echo "events: 7 events; the v2 one: $V2E"
t_checks=1

# ---- filters ---------------------------------------------------------------------------------
start_trace src --src 203.0.113.0/24 --port "$P"
send "$V2" "$V1" "$NOT_PROXY"
settle
sleep 0.3
stop_trace src
F=$TMP/src.out
head -1 "$F" | grep -q "^TIME .*EVENT .*COOKIE .*SOURCE .*DETAILS" || fail "no header line: $(cat "$F")"
[ "$(grep -c '203\.0\.113\.7:4000' "$F")" = 2 ] || fail "--src: not one parsed and one closed line: $(cat "$F")"
grep -q '198\.51\.100\.9\|rejected' "$F" && fail "--src let other events through: $(cat "$F")"
grep -E -q '^[0-9:.]+ +parsed .* v2 +len=[0-9]+ authority=example\.com unique_id=req-42 aws_vpce_id=vpce-0123456789abcdef0 gcp_psc_id=81985529216486895 azure_link_id=305419896 tlvs=5' "$F" ||
	fail "the text line of the v2 header: $(cat "$F")"
start_trace port --json --port "$SEND"
send "$V2"
settle
sleep 0.3
stop_trace port
[ ! -s "$TMP/port.out" ] || fail "--port $SEND let events of port $P through: $(cat "$TMP/port.out")"
echo "filters: --src and --port keep only what matches"

# ---- lost -------------------------------------------------------------------------------------
N=60 # 120 events of 600 bytes: more than 16 KiB
start_trace lost --json
kill -STOP "$TRACE"
hexes=()
for _ in $(seq "$N"); do hexes+=("$V2"); done
send "${hexes[@]}"
settle
kill -CONT "$TRACE"
sleep 0.5
stop_trace lost
L=$TMP/lost.out
lost=$(jq -s '[.[] | select(.event == "lost") | .count] | add // 0' "$L")
got=$(jq -s '[.[] | select(.event != "lost")] | length' "$L")
[ "$lost" -gt 0 ] || fail "a paused reader lost nothing? $got events: $(tail -3 "$L")"
[ $((lost + got)) = $((2 * N)) ] || fail "$got events and $lost lost are not the $((2 * N)) there were"
grep -q "$got events, $lost lost" "$TMP/lost.err" || fail "the summary: $(cat "$TMP/lost.err")"
counted=$("$CLI" stats --pin-dir "$PIN" --json | jq .counters.trace_events_lost)
[ "$counted" = "$lost" ] || fail "stats counts $counted lost, trace printed $lost"
echo "lost: $N connections under a paused reader: $got events read, $lost counted lost and printed"

# ---- killed -----------------------------------------------------------------------------------
start_trace killed --json
kill -KILL "$TRACE"
wait "$TRACE" 2>/dev/null || true
[ "$(tracer_pid)" = "$TRACE" ] || fail "the killed trace's pid is not left: $(tracer_pid)"
start_trace after --json
send "$V1"
settle
sleep 0.3
stop_trace after
[ "$(jq -c 'select(.event == "parsed")' "$TMP/after.out" | wc -l)" = 1 ] ||
	fail "the trace after a killed one: $(cat "$TMP/after.out")"
start_trace killed2 --json
kill -KILL "$TRACE"
wait "$TRACE" 2>/dev/null || true
"$CLI" run --cgroup "$CG" --pin-dir "$PIN" --port "$P" --trust 127.0.0.1 --send "$SEND:v2" --send-to 127.0.0.0/8 \
	--send-tlv authority=relay.example --keep --sweep-ms 100 > "$TMP/run.log" 2>&1 &
RUN=$!
PIDS+=("$RUN")
for _ in $(seq 100); do [ "$(tracer_pid)" = 0 ] && break; sleep 0.05; done
kill -TERM "$RUN"
wait "$RUN" || fail "ppbpf run: $(cat "$TMP/run.log")"
[ "$(tracer_pid)" = 0 ] || fail "ppbpf run did not clear a dead tracer's pid: $(tracer_pid); $(cat "$TMP/run.log")"
echo "killed: the next trace starts; ppbpf run clears a dead tracer"
echo "PASS: trace"
