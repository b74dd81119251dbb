#!/usr/bin/env bash
# Transparent mode: plain servers (stream_test serve: accept(), getpeername(),
# read; no ppbpf code) behind a --transparent port, clients in another
# network namespace across a veth pair (and on a namespace's loopback).
#
#   segments    10,000 connections (IPv4, and 2,000 over IPv6): every header kind
#               (v1, v2, v2 with TLVs, v2 with CRC32C) and delivery (alone, fused,
#               byte by byte, in pieces, at random, straddling); each server reads
#               exactly its payload, from accept() on, and sees its client
#   protocols   server-first (a banner after accept, the client waits for it);
#               accept() + getpeername() at once while the header comes 200 ms
#               after the handshake; data queued before accept()
#   policy      an untrusted peer's bytes pass as they are; a malformed header and
#               a header that never comes are reset, never accepted; a socket its
#               application puts in a sockmap is rejected and reset
#   integrity   10 transfers of 256 MiB of counters each, with 2% loss, 1%
#               duplication, 2% reordering and 2% ACK loss: on the veth pair with
#               offloads on, with checksum offload off, and on a loopback
#   interfaces  `ppbpf run` attaches to an interface that appears later
#   detach      flows in flight when `ppbpf detach` runs are reset, never corrupted
#
# PPBPF_SCALE=small: 1,000 + 200 connections, 3 transfers of 32 MiB per link.
# `make soak`: the integrity section with SOAK_BYTES (2 GiB) per transfer.
. "$(dirname "$0")/lib.sh"
need_root "the transparent-mode tests"
. "$(dirname "$0")/impair.sh"
print_scale
ST=$STREAM_TEST
[ -x "$ST" ] || fail "no $ST (make $ST)"
check_case "$ST" segments protocols policy integrity interfaces detach
scaled N_SEG 10000 1000
scaled N_SEG6 2000 200
scaled N_BIG 10 3
scaled BIG $((256 << 20)) $((32 << 20))
# `make soak`: SOAK_BYTES per transfer (2 GiB there), the integrity section only
BIG=${SOAK_BYTES:-$BIG}

new_netns NC client
new_netns NS server
new_veth_pair "$NC" "$NS"
new_cgroup CG transparent
new_pin_dir PIN transparent
TMP=$(mktemp -d /tmp/ppbpf-test-transparent.XXXXXX)
CLEANUP+=("rm -rf '$TMP'")
P=20080 P_TO=20081 P_OPT=20082 # in the server's own namespace: any port is free there

# The daemon attaches (in the server's namespace) and enforces timeouts; its log is kept.
cat > "$TMP/ppbpf.conf" <<CONF
port $P trust $CLIENT4/32,$CLIENT6/128 transparent
port $P_TO trust $CLIENT4/32 transparent timeout 500
port $P_OPT trust $CLIENT4/32 transparent mode optional timeout 300
CONF
nsenter --net="/run/netns/$NS" "$CLI" run --cgroup "$CG" --pin-dir "$PIN" --config "$TMP/ppbpf.conf" \
	> "$TMP/run.log" 2>&1 &
PIDS+=($!)
DAEMON=$!
for _ in $(seq 600); do grep -q "ppbpf: running (" "$TMP/run.log" && break; sleep 0.1; done # (a first self-test: seconds)
grep -q "ppbpf: running (" "$TMP/run.log" || fail "ppbpf run did not start: $(cat "$TMP/run.log")"

# serve NS ADDR PORT N OUT [ARGS...]: a plain server in NS and the cgroup, in the background; waits for it.
serve() {
	local ns=$1 addr=$2 port=$3 n=$4 out=$5
	shift 5
	nsenter --net="/run/netns/$ns" bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" \
		"$ST" serve "$addr" "$port" "$n" "$@" > "$out" 2> "$out.err" &
	PIDS+=($!)
	SERVER=$!
	for _ in $(seq 100); do grep -q listening "$out" && return 0; sleep 0.05; done
	fail "the server on $addr $port did not start: $(cat "$out.err")"
}
# served OUT N: the server wrote N connection lines, all ok, and its summary says so.
served() {
	local out=$1 n=$2
	wait "$SERVER" || true
	jq -e -s --argjson n "$n" 'map(select(.summary == "serve"))[0] | .conns == $n and .ok == $n and .failed == 0
		and .missing == 0 and .dup_index == 0 and .peer_not_expected == 0 and .eagain == 0' "$out" >/dev/null ||
		fail "server: $(jq -c 'select(.summary)' "$out") failures: $(jq -c -s 'map(select(.ok == false) | {index, peer, leading, bytes, expected, error})[0:6]' "$out")
	ppbpf run's last lines: $(tail -3 "$TMP/run.log")
	counters: $(counters)"
}
client() { nsenter --net="/run/netns/$NC" "$@"; }
counters() { nsenter --net="/run/netns/$NS" "$CLI" status --pin-dir "$PIN" --json | jq -c .counters; }

# ---- segments ------------------------------------------------------------------------------------
# kept_tlvs OUT ADDR PORT N [ARGS...]: the server's records kept the TLVs of every connection `segments` sent with some.
kept_tlvs() {
	local out=$1 want got
	shift
	want=$("$ST" segments "$@" --print-expect | jq -s '[.[] | select(.header == "v2tlv" or .header == "v2crc")] | length')
	got=$(jq -s 'map(select(.summary == "serve"))[0].with_tlvs' "$out")
	[ "$want" -gt 0 ] && [ "$got" = "$want" ] ||
		fail "records with their TLVs kept (ppbpf_get): $got of the $want connections that sent TLVs"
}
if selected segments; then
	serve "$NS" "$SERVER4" "$P" "$N_SEG" "$TMP/seg4" --threads 32 --expect-peer --expect-record
	out=$(client "$ST" segments "$SERVER4" "$P" "$N_SEG" --concurrency 32) || true
	served "$TMP/seg4" "$N_SEG"
	jq -e --argjson n "$N_SEG" '.conns == $n and .ok == $n' <<< "$out" >/dev/null || fail "segments (IPv4): $out"
	kept_tlvs "$TMP/seg4" "$SERVER4" "$P" "$N_SEG"
	serve "$NS" "$SERVER6" "$P" "$N_SEG6" "$TMP/seg6" --threads 32 --expect-peer --expect-record
	out=$(client "$ST" segments "$SERVER6" "$P" "$N_SEG6" --concurrency 32 --v6) || true
	served "$TMP/seg6" "$N_SEG6"
	jq -e --argjson n "$N_SEG6" '.conns == $n and .ok == $n' <<< "$out" >/dev/null || fail "segments (IPv6): $out"
	kept_tlvs "$TMP/seg6" "$SERVER6" "$P" "$N_SEG6" --v6
	# the clients closed first: no TIME_WAIT on the server, so no flow is kept
	for _ in $(seq 50); do
		left=$(bpftool map dump pinned "$PIN/flows" -j | jq length)
		[ "$left" = 0 ] && break
		sleep 0.1
	done
	[ "$left" = 0 ] || fail "$left flows left in the table after every connection closed"
	echo "segments: $N_SEG IPv4 and $N_SEG6 IPv6 connections, every header kind and delivery: each read exactly its payload and saw its client"
	echo "  (and its record said removed, with the TLVs sent)"
	echo "  (and no flow left once they closed)"
fi

# ---- protocols -----------------------------------------------------------------------------------
if selected protocols; then
	# server-first: the banner right after accept(), which the client reads before it sends more
	serve "$NS" "$SERVER4" "$P" 8 "$TMP/banner" --banner --expect-peer
	for i in $(seq 0 7); do
		h=(v1 v2 v2tlv v2crc)
		d=(alone split)
		client "$ST" send "$SERVER4" "$P" --bytes 100000 --header "${h[i % 4]}" --delivery "${d[i / 4]}" \
			--banner --index "$i" --src "198.51.100.$((i + 1)):$((5000 + i))" > "$TMP/banner.cli.$i" ||
			fail "server-first client $i: $(cat "$TMP/banner.cli.$i")"
	done
	served "$TMP/banner" 8
	# accept() and getpeername() at once, the header 200 ms after the handshake: both must be the client
	serve "$NS" "$SERVER4" "$P" 4 "$TMP/late" --expect-peer
	for i in 0 1 2 3; do
		client "$ST" send "$SERVER4" "$P" --bytes 5000 --header v2 --delivery alone --gap-ms 200 --index "$i" \
			--src "203.0.113.$((i + 10)):$((6000 + i))" > "$TMP/late.cli.$i" || fail "late header $i: $(cat "$TMP/late.cli.$i")"
	done
	served "$TMP/late" 4
	jq -e -s 'map(select(.i != null)) | all(.accept_peer == .peer_expected)' "$TMP/late" >/dev/null ||
		fail "accept() returned a connection before its header: $(jq -c 'select(.i != null) | [.accept_peer, .peer_expected]' "$TMP/late")"
	# data before accept(): 64 clients at once, one thread accepting, so most wait queued with their bytes
	serve "$NS" "$SERVER6" "$P" 64 "$TMP/queued" --threads 1 --expect-peer
	out=$(client "$ST" segments "$SERVER6" "$P" 64 --concurrency 64 --v6 --start 7000) || true
	jq -e '.ok == 64' <<< "$out" >/dev/null || fail "queued connections: $out"
	served "$TMP/queued" 64
	# an optional port, a server-first protocol and no header: plain once the timeout has passed
	serve "$NS" "$SERVER4" "$P_OPT" 2 "$TMP/optional" --banner --expect-peer
	for i in 0 1; do
		client "$ST" send "$SERVER4" "$P_OPT" --bytes 20000 --header none --banner --index "$i" \
			> "$TMP/optional.cli.$i" || fail "server-first without a header on an optional port: $(cat "$TMP/optional.cli.$i")"
	done
	served "$TMP/optional" 2
	# the same port, the client's first bytes (no header) after the timeout but before a SYN-ACK is
	# sent again: plain as well, as annotate mode leaves an optional port's late connection
	serve "$NS" "$SERVER4" "$P_OPT" 1 "$TMP/optlate" --expect-peer
	client "$ST" send "$SERVER4" "$P_OPT" --bytes 20000 --header none --gap-ms 600 \
		> "$TMP/optlate.cli" || fail "a late plain stream on an optional port: $(cat "$TMP/optlate.cli")"
	served "$TMP/optlate" 1
	echo "protocols: server-first banners, accept()+getpeername() with the header 200 ms late, data queued before accept(), IPv6,"
	echo "  and a server-first protocol without a header on an optional port (plain after the timeout)"
fi

# ---- policy --------------------------------------------------------------------------------------
if selected policy; then
	# an untrusted peer (another address of the client, the route's source) sends no header: untouched
	ip -n "$NC" addr add 192.0.2.3/32 dev "$VETH_CLIENT"
	ip -n "$NC" route add "$SERVER4/32" dev "$VETH_CLIENT" src 192.0.2.3
	serve "$NS" "$SERVER4" "$P" 1 "$TMP/untrusted" --expect-peer
	before=$(counters)
	client "$ST" send "$SERVER4" "$P" --bytes 300000 --header none > "$TMP/untrusted.cli" ||
		fail "an untrusted peer's plain stream: $(cat "$TMP/untrusted.cli")"
	served "$TMP/untrusted" 1
	jq -e -s 'map(select(.i != null))[0].peer | startswith("192.0.2.3:")' "$TMP/untrusted" >/dev/null ||
		fail "the untrusted stream did not come from 192.0.2.3: $(cat "$TMP/untrusted")"
	ip -n "$NC" route del "$SERVER4/32" dev "$VETH_CLIENT" src 192.0.2.3
	# a malformed header: reset (the client reads ECONNRESET), never accepted
	serve "$NS" "$SERVER4" "$P" 1 "$TMP/afterbad" --expect-peer
	client python3 - "$SERVER4" "$P" <<'PY' || fail "a malformed header was not reset"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"PROXY TCP9 198.51.100.1 203.0.113.1 1 2\r\nGET / HTTP/1.0\r\n\r\n")
try:
    s.recv(100)  # an answer, an EOF or a timeout: not a reset
    sys.exit(1)
except ConnectionResetError:
    sys.exit(0)
except socket.timeout:
    sys.exit(1)
PY
	client "$ST" send "$SERVER4" "$P" --bytes 1000 --header v1 --index 1 --src 198.51.100.77:7777 > /dev/null ||
		fail "the connection after a malformed one failed"
	served "$TMP/afterbad" 1 # its one accept was the valid connection: the malformed one never reached accept()
	# a header that never comes (port with --timeout 500): reset, never accepted
	serve "$NS" "$SERVER4" "$P_TO" 1 "$TMP/aftersilent" --expect-peer
	client python3 - "$SERVER4" "$P_TO" <<'PY' || fail "a silent client was not reset within 5 s"
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
t0 = time.time()
try:
    data = s.recv(1)  # nothing comes: a reset, an EOF or the 5 s timeout
    sys.exit(1)
except ConnectionResetError:
    print("  a silent client: reset after %.2f s" % (time.time() - t0))
    sys.exit(0)
except socket.timeout:
    sys.exit(1)
PY
	client "$ST" send "$SERVER4" "$P_TO" --bytes 1000 --header v2 --index 1 --src 198.51.100.78:7778 > /dev/null ||
		fail "the connection after a silent one failed"
	served "$TMP/aftersilent" 1
	# an application that puts its sockets in a sockmap: the connection is rejected and reset
	SMAP=/sys/fs/bpf/ppbpf-test-$$-sockmap
	mkdir "$SMAP"
	CLEANUP+=("rm -rf '$SMAP'")
	bpftool map create "$SMAP/map" type sockmap key 4 value 4 entries 8 name ppbpf_test_smap
	serve "$NS" "$SERVER4" "$P" 1 "$TMP/sockmap" --sockmap "$SMAP/map" --timeout 10
	if client "$ST" send "$SERVER4" "$P" --bytes $((64 << 20)) --header v2 --src 198.51.100.79:7779 --timeout 10 \
		> "$TMP/sockmap.cli" 2>&1; then
		fail "a connection put in a sockmap was not reset: $(cat "$TMP/sockmap.cli")"
	fi
	wait "$SERVER" || true
	jq -e -s 'map(select(.i != null))[0] | .mismatches == 0 and .error != null' "$TMP/sockmap" >/dev/null ||
		fail "the sockmap connection: $(cat "$TMP/sockmap")"
	grep -q "sockmap" "$TMP/run.log" || fail "ppbpf run logged no line for the sockmap rejection: $(tail -3 "$TMP/run.log")"
	after=$(counters)
	jq -e -n --argjson a "$before" --argjson b "$after" '$b.untrusted - $a.untrusted == 1 and
		$b.error_v1 - $a.error_v1 == 1 and $b.rejected_timeout - $a.rejected_timeout == 1 and
		$b.transparent_resets - $a.transparent_resets >= 2 and $b.transparent_sockmap - $a.transparent_sockmap == 1' \
		>/dev/null || fail "policy counters: before $before after $after"
	echo "policy: an untrusted peer passed untouched; a malformed and a silent header were reset, never accepted;"
	echo "  a socket put in a sockmap was rejected, reset and logged"
fi

# ---- integrity -----------------------------------------------------------------------------------
# transfers LABEL NS_SERVER ADDR NS_CLIENT: N_BIG transfers of BIG bytes of counters, two at a time.
transfers() {
	local label=$1 sns=$2 addr=$3 cns=$4 i kinds=(v1 v2 v2tlv v2crc) pids=()
	serve "$sns" "$addr" "$P" "$N_BIG" "$TMP/big.$label" --threads 2 --expect-peer --timeout 120
	for i in $(seq 0 $((N_BIG - 1))); do
		nsenter --net="/run/netns/$cns" "$ST" send "$addr" "$P" --bytes "$BIG" --header "${kinds[i % 4]}" \
			--delivery "$([ $((i % 2)) = 0 ] && echo fused || echo straddle)" --index "$i" --timeout 120 \
			--src "198.51.100.$((i + 1)):$((8000 + i))" > "$TMP/big.$label.cli.$i" 2>&1 &
		pids+=($!)
		if [ ${#pids[@]} = 2 ]; then
			wait "${pids[@]}" || fail "$label: a transfer failed: $(cat "$TMP"/big."$label".cli.*)"
			pids=()
		fi
	done
	[ ${#pids[@]} = 0 ] || wait "${pids[@]}" || fail "$label: a transfer failed"
	served "$TMP/big.$label" "$N_BIG"
	echo "integrity ($label): $N_BIG x $((BIG >> 20)) MiB, 0 mismatches, 0 missing or extra bytes, 0 EAGAIN"
}
if selected integrity; then
	impair_network "$NC" "$NS"
	transfers veth "$NS" "$SERVER4" "$NC"
	offloads_off "$NC" "$VETH_CLIENT"
	offloads_off "$NS" "$VETH_SERVER"
	transfers veth-nocsum "$NS" "$SERVER4" "$NC"
	echo "  impairments: data $(impair_stats "$NC" "$VETH_CLIENT" egress 10) reordering $(impair_stats "$NC" "$VETH_CLIENT" egress 11) acks $(impair_stats "$NC" "$VETH_CLIENT" ingress 10)"
	nsenter --net="/run/netns/$NS" nstat -az TcpInCsumErrors TcpExtTCPDSACKRecv TcpRetransSegs 2>/dev/null |
		awk 'NR > 1 { printf "  server %s=%s", $1, $2 } END { print "" }'
	[ "$(nsenter --net="/run/netns/$NS" nstat -az TcpInCsumErrors | awk '/TcpInCsumErrors/ { print $2 }')" = 0 ] ||
		fail "the server's TCP saw checksum errors: a rewritten field's checksum was wrong"
	# a loopback: client and server in one namespace, the program on lo's ingress for both directions
	new_netns NL loop
	nsenter --net="/run/netns/$NL" "$CLI" attach --cgroup "$CG" --pin-dir "$PIN-lo" \
		--port "$P" --trust 127.0.0.1 --transparent > /dev/null
	CLEANUP+=("nsenter --net=/run/netns/$NL '$CLI' detach --pin-dir '$PIN-lo' >/dev/null 2>&1")
	impair_on "$NL" lo in egress 10
	impair_on "$NL" lo reorder egress 11
	transfers loopback "$NL" 127.0.0.1 "$NL"
	nsenter --net="/run/netns/$NL" "$CLI" detach --pin-dir "$PIN-lo" > /dev/null
fi

# ---- interfaces ----------------------------------------------------------------------------------
if selected interfaces; then
	ip -n "$NS" link add ppbpf-late0 type veth peer name ppbpf-late1
	for _ in $(seq 50); do
		nsenter --net="/run/netns/$NS" "$CLI" status --pin-dir "$PIN" --json | jq -e '.tc | contains("ppbpf-late0 (")' >/dev/null && break
		sleep 0.1
	done
	nsenter --net="/run/netns/$NS" "$CLI" status --pin-dir "$PIN" --json | jq -e '.tc | contains("ppbpf-late0 (")' >/dev/null ||
		fail "ppbpf run did not attach to an interface that appeared: $(nsenter --net="/run/netns/$NS" "$CLI" status --pin-dir "$PIN" --json | jq .tc)"
	! grep -q "failed to" "$TMP/run.log" || fail "ppbpf run's upkeep failed: $(grep "failed to" "$TMP/run.log" | head -3)"
	echo "interfaces: ppbpf run attached to an interface that appeared after it started"
fi

# ---- detach --------------------------------------------------------------------------------------
if selected detach; then
	serve "$NS" "$SERVER4" "$P" 4 "$TMP/detach" --threads 4 --expect-peer --timeout 60
	pids=()
	for i in 0 1 2 3; do
		# (an external command in the background, not a function: its failure is expected here)
		nsenter --net="/run/netns/$NC" "$ST" send "$SERVER4" "$P" --bytes $((8 << 30)) --header v2 --index "$i" \
			--timeout 60 --src "198.51.100.$((i + 100)):$((9000 + i))" > "$TMP/detach.cli.$i" 2>&1 &
		pids+=($!)
	done
	sleep 1
	kill -TERM "$DAEMON" # ppbpf run detaches on exit: each flow reset first
	wait "$DAEMON" || fail "ppbpf run failed to detach: $(tail -5 "$TMP/run.log")"
	for p in "${pids[@]}"; do
		if wait "$p"; then fail "a transfer of 8 GiB finished although its flow was reset"; fi
	done
	wait "$SERVER" || true
	# every connection was cut, and what arrived before the reset was exact
	jq -e -s 'map(select(.i != null)) | length == 4 and all(.mismatches == 0 and .leading == 0 and .error != null)' \
		"$TMP/detach" >/dev/null || fail "detach under load: $(jq -c 'select(.i != null)' "$TMP/detach")"
	[ ! -e "$PIN" ] || fail "the pins are still there after ppbpf run exited: $(ls "$PIN")"
	[ -z "$(nsenter --net="/run/netns/$NS" bpftool net show 2>/dev/null | grep ppbpf_tc)" ] ||
		fail "tc programs left behind: $(nsenter --net="/run/netns/$NS" bpftool net show)"
	echo "detach: 4 flows in flight were reset when ppbpf run detached, none corrupted; nothing left at tc"
fi
echo "PASS: transparent mode: segments, protocols, policy, integrity, interfaces, detach"
