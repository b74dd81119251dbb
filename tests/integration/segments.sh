#!/usr/bin/env bash
# How the kernel side takes in a header's segments (segments_test.c, one mode
# per case): a lost segment of a header longer than one MSS, deferred accept
# with a full accept queue or an abandoned split header, segments with no
# handshake behind them, IPv6 extension headers, untrusted connections and
# the connection table, and trust revoked while a header is pending. Every
# step checks that no table, pending or listener entry is left behind.
. "$(dirname "$0")/lib.sh"
need_root "the segment tests"
print_scale

TEST=$OUT/tests/segments_test
check_case "$TEST"
new_cgroup CG seg
new_pin_dir PIN seg
free_port P_LOSS P_RACE P_DEFER P_ABANDON P_FROM P_PLANT P_EXT6 P_PLAIN P_REJ P_SLOT_REJ P_SLOT_OK P_LUID
LOOP=127.0.0.1
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$P_LOSS,$P_RACE,$P_DEFER,$P_ABANDON,$P_PLANT" --trust $LOOP >/dev/null
"$CLI" attach --pin-dir "$PIN" --port "$P_EXT6" --trust ::1 >/dev/null
"$CLI" attach --pin-dir "$PIN" --port "$P_PLAIN" --trust $LOOP --untrusted plain >/dev/null
"$CLI" attach --pin-dir "$PIN" --port "$P_REJ" --trust $LOOP --untrusted reject >/dev/null
"$CLI" attach --pin-dir "$PIN" --port "$P_LUID" --trust $LOOP --local-uid root >/dev/null

table_size() { "$CLI" status --pin-dir "$1" --json | jq -r '"\(.connections) \(.pending)"'; }
# expect_empty WHAT [PIN]: no connection, pending or listener entry left (closes propagate asynchronously).
expect_empty() {
	local pin=${2:-$PIN} left early
	for _ in $(seq 50); do
		left=$(table_size "$pin")
		early=$(bpftool -j map dump pinned "$pin/early" | jq length)
		[ "$left $early" = "0 0 0" ] && return 0
		sleep 0.1
	done
	"$CLI" list --pin-dir "$pin" --json | jq -c '.[]' >&2
	bpftool -j map dump pinned "$pin/early" | jq -c '.[].formatted | {key: .key, start: .value.start, ack: .value.ack, rc: .value.rc}' >&2
	fail "$1: entries left: $left in the table / pending maps, $early listener entries"
}

if selected loss orphan race closerace; then
	new_netns NS seg
	# one segment per skb on the wire: no GSO super-packet for the dropper to take whole
	ip -n "$NS" link set dev lo gso_max_segs 1
fi
if selected loss; then
	echo "== a 2,000-byte header in 536-byte segments, each segment lost once in turn (network namespace)"
	new_dropper DROP "$NS" seg-dropper
	PPBPF_TEST_DROPPER=$DROP in_netns "$NS" "$CG" "$TEST" loss "$P_LOSS"
	expect_empty loss
fi

if selected orphan; then
	echo "== a header pending when the server closes, the client's pure ACKs lost: the orphan is reset (network namespace)"
	[ -n "${DROP:-}" ] || new_dropper DROP "$NS" seg-dropper
	PPBPF_TEST_DROPPER=$DROP in_netns "$NS" "$CG" "$TEST" orphan "$P_ABANDON"
	expect_empty orphan
fi

scaled N_RACE 2000 300
if selected race closerace; then
	nsenter --net="/run/netns/$NS" sysctl -q -w net.ipv4.tcp_timestamps=0
fi
if selected race; then
	echo "== the same segment of a pending header on two CPUs at once (the namespace, no TCP timestamps)"
	in_netns "$NS" "$CG" "$TEST" race "$P_RACE" "$N_RACE" ||
		{ "$CLI" status --pin-dir "$PIN" --json | jq -c .counters >&2; fail "race"; }
	expect_empty race
fi
if selected closerace; then
	echo "== a pending header closed on one CPU as its next piece comes in on the other (the namespace)"
	in_netns "$NS" "$CG" "$TEST" closerace "$P_RACE" "$N_RACE"
	expect_empty closerace
fi


if selected deferfull; then
	echo "== deferred accept: a split header completing while the accept queue is full"
	in_cgroup "$CG" "$TEST" deferfull "$P_DEFER"
	expect_empty deferfull
fi

if selected abandon; then
	echo "== deferred accept: a split header abandoned, then a new connection from the same source port"
	in_cgroup "$CG" "$TEST" abandon "$P_ABANDON" "$P_FROM"
	expect_empty abandon
fi

if selected plant; then
	echo "== 300 segments with header bytes and no handshake, from a trusted source"
	in_cgroup "$CG" "$TEST" plant "$P_PLANT" 300
	expect_empty "segments with no handshake"
fi

if selected ext6; then
	echo "== IPv6 destination and hop-by-hop options before TCP"
	in_cgroup "$CG" "$TEST" ext6 "$P_EXT6"
	expect_empty ext6
fi

# revoke PORT EXPECT UNTRUSTED: half a header, then the peer's trust is taken away live, then the rest.
revoke() {
	local port=$1 expect=$2 untrusted=$3 line word pid
	exec 5< <(rc=0; in_cgroup "$CG" "$TEST" revoke "$port" "$expect" || rc=$?; echo "EXIT $rc")
	read -r line <&5 || fail "revoke: the test ended without a word"
	read -r word pid <<< "$line"
	[ "$word" = PENDING ] || fail "revoke: $line"
	"$CLI" attach --pin-dir "$PIN" --port "$port" --trust 192.0.2.1 --untrusted "$untrusted" >/dev/null
	kill -USR1 "$pid"
	while read -r line <&5; do
		echo "$line"
		case $line in "EXIT 0") ok=1 ;; EXIT*) fail "revoke ($expect)" ;; esac
	done
	[ "${ok:-0}" = 1 ] || fail "revoke ($expect) did not finish"
	unset ok
}
if selected revoke; then
	echo "== trust revoked while a header is pending: a port that leaves untrusted peers plain"
	revoke "$P_PLAIN" plain plain
	echo "== trust revoked while a header is pending: a port that rejects them"
	revoke "$P_REJ" reject reject
	expect_empty revoke
fi

if selected localuid; then
	echo "== --local-uid root: local clients from a trusted address, as root and as nobody"
	for defer in 0 5; do
		in_cgroup "$CG" "$TEST" localuid "$P_LUID" 0 done "$defer"
		in_cgroup "$CG" "$TEST" localuid "$P_LUID" 65534 plain "$defer"
	done
	expect_empty localuid
fi

if selected slots; then
	echo "== 20 untrusted connections held open on a rejecting port, a table of 10, no daemon"
	new_cgroup CG_SLOTS slots
	new_pin_dir PIN_SLOTS slots
	"$CLI" attach --cgroup "$CG_SLOTS" --pin-dir "$PIN_SLOTS" --table-size 10 --port "$P_SLOT_REJ" --trust $LOOP \
		--untrusted reject >/dev/null
	"$CLI" attach --pin-dir "$PIN_SLOTS" --port "$P_SLOT_OK" --trust $LOOP >/dev/null
	in_cgroup "$CG_SLOTS" "$TEST" slots "$P_SLOT_REJ" "$P_SLOT_OK" 20
	full=$("$CLI" status --pin-dir "$PIN_SLOTS" --json | jq .counters.rejected_table_full)
	[ "$full" = 0 ] || fail "slots: $full connections were refused for a full table"
	expect_empty slots "$PIN_SLOTS"
fi
echo "PASS: segments"
