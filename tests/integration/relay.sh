#!/usr/bin/env bash
# ppbpf_relay: the original client of an inbound connection, written by the
# kernel as the first bytes of an outgoing one (relay_test.c).
#
#   checks  the relayed header's raw bytes: v1 exact and v2 with the inbound
#           TLVs (AUTHORITY and UNIQUE_ID kept, NOOP and the old CRC32C left
#           out, a new CRC32C that the parser checks), IPv4 and IPv6
#           originals, a new UNIQUE_ID when asked; each documented error
#           (EINVAL, ENOENT, EISCONN, EALREADY, ENODATA, Fast Open's EPERM);
#           a token goes with its socket, and the token table ends empty
#   chain   client 127.0.0.2 -> HAProxy send-proxy-v2 -> a relay in the
#           attached cgroup (ppbpf_accept, then ppbpf_relay to the next hop)
#           -> a second HAProxy with accept-proxy, which logs the client's
#           address and port, and the first hop's UNIQUE_ID where TLVs are
#           relayed; the echo comes back whole through both hops
. "$(dirname "$0")/lib.sh"
need_root "the relay tests"
for prog in haproxy python3 jq bpftool; do
	command -v "$prog" >/dev/null || skip "$prog is not installed (scripts/deps.sh installs it)"
done
RELAY_TEST=$OUT/tests/relay_test
[ -x "$RELAY_TEST" ] || fail "no $RELAY_TEST (make $RELAY_TEST)"
check_case "$RELAY_TEST"

new_cgroup CG relay
new_pin_dir PIN relay
TMP=$(mktemp -d /tmp/ppbpf-test-relay.XXXXXX)
CLEANUP+=("rm -rf '$TMP'")
free_port P_IN P_SINK H_FRONT P_RELAY H_BACK ECHO
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$P_IN,$P_RELAY" --trust 127.0.0.1 >/dev/null

counter() { "$CLI" status --pin-dir "$PIN" --json | jq ".counters.$1"; }
tokens_left() { bpftool -j map dump pinned "$PIN/relay_tokens" | jq length; }
listening() { ss -Htln "sport = :$1" | grep -q .; }
wait_listening() {
	for _ in $(seq 200); do listening "$1" && return 0; sleep 0.05; done
	fail "nothing listens on port $1${2:+: $2}"
}

if selected checks; then
	echo "== the relayed header's bytes, and the errors"
	relayed=$(counter relayed)
	refused=$(counter relay_refused)
	in_cgroup "$CG" "$RELAY_TEST" checks "$P_IN" "$P_SINK" || fail "relay checks"
	[ "$(counter relayed)" -gt "$relayed" ] || fail "the relayed counter did not move"
	[ "$(counter relay_refused)" -ge $((refused + 5)) ] ||
		fail "relay_refused went from $refused to $(counter relay_refused), want at least 5 more"
	for _ in $(seq 50); do [ "$(tokens_left)" = 0 ] && break; sleep 0.1; done
	[ "$(tokens_left)" = 0 ] || fail "relay tokens left after their sockets closed: $(tokens_left)"
	echo "checks: counters moved, no relay token left"
fi

if selected chain; then
	echo "== a chain: client 127.0.0.2 -> HAProxy send-proxy-v2 -> relay (ppbpf_relay) -> HAProxy accept-proxy"
	echo_server "$ECHO" "$TMP/echo.log"
	{ haproxy_tcp_head; cat <<EOF; } > "$TMP/front.cfg"
frontend front
	bind 127.0.0.1:$H_FRONT
	unique-id-format chain-%cp
	log-format "front %ci:%cp %ID"
	default_backend relay
backend relay
	server relay 127.0.0.1:$P_RELAY send-proxy-v2 proxy-v2-options crc32c,unique-id
EOF
	{ haproxy_tcp_head; cat <<EOF; } > "$TMP/back.cfg"
frontend back
	bind 127.0.0.1:$H_BACK accept-proxy
	log-format "back %ci:%cp %[fc_pp_unique_id]"
	default_backend echo
backend echo
	server echo 127.0.0.1:$ECHO
EOF
	haproxy -f "$TMP/front.cfg" -db > "$TMP/front.log" 2>&1 &
	PIDS+=($!)
	haproxy -f "$TMP/back.cfg" -db > "$TMP/back.log" 2>&1 &
	PIDS+=($!)
	for p in "$ECHO" "$H_FRONT" "$H_BACK"; do wait_listening "$p" "see $TMP/front.log, $TMP/back.log"; done
	FLAGS=(v1 v2+tlvs+unique-id+crc32c v2+unique-id v2)
	# (not in_cgroup: a shell function in the background would take lib.sh's ERR trap with it)
	bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$RELAY_TEST" chain "$P_RELAY" "$H_BACK" "${FLAGS[@]}" \
		> "$TMP/relay.out" 2> "$TMP/relay.err" &
	PIDS+=($!)
	RELAY=$!
	wait_listening "$P_RELAY" "see $TMP/relay.err"
	for i in "${!FLAGS[@]}"; do
		f=${FLAGS[$i]}
		out=$(python3 -c "$LINE_CLIENT_PY" 127.0.0.2 "$H_FRONT" "chain $i $f" half-close) ||
			fail "the chain's client ($f)"
		me=$(head -1 <<< "$out")
		[ "$(tail -n +2 <<< "$out")" = "chain $i $f" ] ||
			fail "$f: the echo came back as '$(tail -n +2 <<< "$out")' (relay: $(tail -2 "$TMP/relay.out"))"
		for _ in $(seq 50); do grep -q "^back $me " "$TMP/back.log" && break; sleep 0.1; done
		line=$(grep "^back $me " "$TMP/back.log") ||
			fail "$f: the backend HAProxy did not log the client $me: $(grep back "$TMP/back.log" | tail -3)"
		id=${line##* }
		logs="relay: $(cat "$TMP/relay.out" "$TMP/relay.err" | tr '\n' ' '); front: $(tail -3 "$TMP/front.log" | tr '\n' ' '); back: $(tail -3 "$TMP/back.log" | tr '\n' ' ')"
		case $f in
		*tlvs*) [ "$id" = "chain-${me##*:}" ] || fail "$f: the backend saw UNIQUE_ID '$id', want the first hop's chain-${me##*:} ($logs)" ;;
		*unique-id*) [[ $id =~ ^[0-9a-f]{32}$ ]] || fail "$f: the backend saw UNIQUE_ID '$id', want 32 hex digits of the relay's ($logs)" ;;
		*) [ "$id" = - ] || [ -z "$id" ] || fail "$f: the backend saw UNIQUE_ID '$id', want none ($logs)" ;;
		esac
		echo "chain: $f: the backend HAProxy logged $me, UNIQUE_ID '${id}'"
	done
	grep -q "^front .* chain-" "$TMP/front.log" || fail "the first HAProxy made no unique id: $(cat "$TMP/front.log")"
	wait "$RELAY" || fail "the relay: $(cat "$TMP/relay.out" "$TMP/relay.err" || true)"
	[ "$(grep '^{' "$TMP/relay.out" | jq -s 'map(select(.ok == true)) | length')" = "${#FLAGS[@]}" ] ||
		fail "the relay: $(cat "$TMP/relay.out")"
fi
echo "PASS: relay"
