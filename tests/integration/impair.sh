# Test networks for transparent mode, sourced after lib.sh: a veth pair
# between two test network namespaces, checksum offloads off, and impairment
# (loss, duplication, reordering) with bpf/impair.bpf.c, since this
# kernel has no netem.
#
#   new_veth_pair NS_CLIENT NS_SERVER   vethA (192.0.2.1, 2001:db8:1::1) in NS_CLIENT,
#                                       vethB (192.0.2.2, 2001:db8:1::2) in NS_SERVER
#   offloads_off NS DEV [mss]           tx and rx checksum offload off (TSO follows tx;
#                                       mss: one segment per skb, gso_max_segs 1)
#   offloads_on NS DEV                  and on again
#   impair_on NS DEV KIND [DIR]         KIND in (data loss 2% + duplication 1%), ack (loss 2%),
#                                       reorder (2%, through an HTB slow class); DIR ingress
#                                       (in, ack) or egress (reorder) by default
#   impair_stats NS DEV DIR             the counters of the impair filter there, one JSON line
#   impair_network NS_CLIENT NS_SERVER  all three, on the client's side of the "wire"
#
# The layout: every impairment on the client's side, so that the program under
# test, on the server's hooks, sees what the wire delivered. (With tcx it runs
# before any clsact filter there: a loss or a duplicate made after it at the
# server's ingress would be one the wire never made, and a duplicate sent
# back into that ingress would pass it twice.)
#
#   NS_CLIENT  vethA  egress: impair_in, pref 10         (data lost, duplicated)
#                             impair_reorder, pref 11    (HTB 1:1 fast default, 1:2 slow)
#                     ingress: impair_ack, pref 10       (the server's ACKs lost)
#   NS_SERVER  vethB  the program under test Every tc call is made
# with nsenter --net (never ip netns exec, which remounts /sys and would hide
# bpffs), and only in namespaces this script's test made with new_netns:
# host interfaces are never touched. The veth pair goes when its namespaces
# do (lib.sh's cleanup); nothing else needs undoing.
#
# Needs: $OUT/tests/stream_test (ethtool-csum) and $OUT/tests/bpf/impair_{in,ack,reorder}.bpf.o;
# STREAM_TEST and IMPAIR_OBJ_DIR override where they are. IMPAIR_FAST_RATE and
# IMPAIR_SLOW_RATE (default 40gbit, 300mbit) are the HTB classes' rates.

STREAM_TEST=${STREAM_TEST:-$OUT/tests/stream_test}
IMPAIR_OBJ_DIR=${IMPAIR_OBJ_DIR:-$OUT/tests/bpf}
IMPAIR_FAST_RATE=${IMPAIR_FAST_RATE:-40gbit}
IMPAIR_SLOW_RATE=${IMPAIR_SLOW_RATE:-300mbit}

# The addresses new_veth_pair gives (documentation ranges).
VETH_CLIENT=vethA
VETH_SERVER=vethB
CLIENT4=192.0.2.1
SERVER4=192.0.2.2
CLIENT6=2001:db8:1::1
SERVER6=2001:db8:1::2

# The names of impair_stats' counters, in the map's order (enum impair_stat).
IMPAIR_STAT_NAMES=(seen dropped duplicated reordered dup_failed clones spared)

# _impair_own_ns NS: fail unless NS is a namespace this test made (new_netns).
_impair_own_ns() {
	local ns
	for ns in "${NETNS[@]}"; do
		[ "$ns" != "$1" ] || { [ -e "/run/netns/$1" ] || fail "network namespace $1 is gone"; return 0; }
	done
	fail "network namespace '$1' was not made by this test (new_netns): impair.sh touches no other"
}

# _in_ns NS CMD...: CMD in network namespace NS (mounts untouched).
_in_ns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

# new_veth_pair NS_CLIENT NS_SERVER: vethA in NS_CLIENT, vethB in NS_SERVER, both up,
# with 192.0.2.1/24 and 2001:db8:1::1/64 (client), 192.0.2.2/24 and 2001:db8:1::2/64
# (server), nodad; offloads as the kernel sets them; net.ipv4.tcp_tw_reuse=1 in both
# namespaces (below). Returns once both ends are up.
new_veth_pair() {
	local nc=$1 ns=$2
	_impair_own_ns "$nc"
	_impair_own_ns "$ns"
	# Made inside the namespaces at once: no name is ever taken in the host's namespace.
	ip link add "$VETH_CLIENT" netns "$nc" type veth peer name "$VETH_SERVER" netns "$ns"
	ip -n "$nc" addr add "$CLIENT4/24" dev "$VETH_CLIENT"
	ip -n "$ns" addr add "$SERVER4/24" dev "$VETH_SERVER"
	ip -n "$nc" -6 addr add "$CLIENT6/64" dev "$VETH_CLIENT" nodad
	ip -n "$ns" -6 addr add "$SERVER6/64" dev "$VETH_SERVER" nodad
	ip -n "$nc" link set "$VETH_CLIENT" up
	ip -n "$ns" link set "$VETH_SERVER" up
	# The client half-closes first, so TIME_WAIT is on its side: batches of 10,000
	# connections would use up its ~28,000 ephemeral ports within a minute (loopback
	# reuses them by default, tcp_tw_reuse=2; a veth does not). Reuse after 1 s.
	_in_ns "$nc" sh -c 'echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse'
	_in_ns "$ns" sh -c 'echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse'
	# (no ping here: both ends up with carrier, and no address still tentative)
	for _ in $(seq 50); do
		if _veth_ready "$nc" "$VETH_CLIENT" && _veth_ready "$ns" "$VETH_SERVER"; then
			return 0
		fi
		sleep 0.1
	done
	fail "new_veth_pair: $VETH_CLIENT/$VETH_SERVER between $nc and $ns did not come up"
}

_veth_ready() {
	local link addrs
	link=$(ip -n "$1" -o link show dev "$2")
	addrs=$(ip -n "$1" -o addr show dev "$2")
	[[ $link == *LOWER_UP* && $link == *"state UP"* && $addrs != *tentative* ]]
}

# offloads_off NS DEV [mss]: tx and rx checksum offload off on DEV, so that every
# segment on the wire is an MSS-sized, fully checksummed one (TSO goes with tx csum),
# and the receiving TCP verifies every checksum the program under test rewrote. The
# sender's own tc egress still sees 64 KB skbs (TCP keeps software GSO, done after the
# qdisc) unless `mss` is given: then DEV's gso_max_segs is 1, and every skb DEV sends
# is one segment (reordering moves single segments; ~40 MB/s on a veth instead of GB/s).
offloads_off() {
	_impair_own_ns "$1"
	[ -x "$STREAM_TEST" ] || fail "no $STREAM_TEST (make $STREAM_TEST)"
	case ${3:-} in '' | mss) ;; *) fail "offloads_off: '$3' is not mss" ;; esac
	_in_ns "$1" "$STREAM_TEST" ethtool-csum "$2" off >/dev/null
	[ -z "${3:-}" ] || ip -n "$1" link set dev "$2" gso_max_segs 1
}

# offloads_on NS DEV: checksum offloads on again, gso_max_segs back to 65535.
offloads_on() {
	_impair_own_ns "$1"
	[ -x "$STREAM_TEST" ] || fail "no $STREAM_TEST (make $STREAM_TEST)"
	_in_ns "$1" "$STREAM_TEST" ethtool-csum "$2" on >/dev/null
	ip -n "$1" link set dev "$2" gso_max_segs 65535
}

# impair_on NS DEV KIND [DIR [PREF]]: the impair_KIND build on DEV's DIR hook, at PREF
# (default 10). On egress, DEV first gets an HTB root: 1:1 (IMPAIR_FAST_RATE) the
# default, 1:2 (IMPAIR_SLOW_RATE) where reordered packets go.
impair_on() {
	local ns=$1 dev=$2 kind=$3 dir=${4:-} pref=${5:-10} obj
	_impair_own_ns "$ns"
	case $kind in
	in | ack) dir=${dir:-ingress} ;;
	reorder) dir=${dir:-egress} ;;
	*) fail "impair_on: KIND '$kind' is in, ack or reorder" ;;
	esac
	case $dir in ingress | egress) ;; *) fail "impair_on: DIR '$dir' is ingress or egress" ;; esac
	[ "$kind/$dir" != reorder/ingress ] || fail "impair_on: reordering needs a queue, so egress"
	obj=$IMPAIR_OBJ_DIR/impair_$kind.bpf.o
	[ -r "$obj" ] || fail "no $obj (make $obj)"
	if [[ $(_in_ns "$ns" tc qdisc show dev "$dev") != *clsact* ]]; then
		_in_ns "$ns" tc qdisc add dev "$dev" clsact
	fi
	if [ "$dir" = egress ] && [[ $(_in_ns "$ns" tc qdisc show dev "$dev") != *"qdisc htb 1: root"* ]]; then
		_in_ns "$ns" tc qdisc add dev "$dev" root handle 1: htb default 1
		_in_ns "$ns" tc class add dev "$dev" parent 1: classid 1:1 htb rate "$IMPAIR_FAST_RATE" quantum 65536
		_in_ns "$ns" tc class add dev "$dev" parent 1: classid 1:2 htb rate "$IMPAIR_SLOW_RATE" quantum 65536
	fi
	_in_ns "$ns" tc filter add dev "$dev" "$dir" pref "$pref" bpf obj "$obj" sec tc da
}

# impair_network NS_CLIENT NS_SERVER: all three impairments on a new_veth_pair, on the
# client's side (above).
impair_network() {
	_impair_own_ns "$2"
	impair_on "$1" "$VETH_CLIENT" in egress 10
	impair_on "$1" "$VETH_CLIENT" reorder egress 11
	impair_on "$1" "$VETH_CLIENT" ack ingress 10
}

# impair_stats NS DEV DIR [PREF]: {"seen":..,"dropped":..,"duplicated":..,"reordered":..,
# "dup_failed":..,"clones":..,"spared":..} of the impair filter at PREF (default 10) there.
impair_stats() {
	local ns=$1 dev=$2 dir=$3 pref=${4:-10} prog map
	_impair_own_ns "$ns"
	prog=$(_in_ns "$ns" tc -j filter show dev "$dev" "$dir" pref "$pref" |
		jq -r '[.[] | .options.prog.id? // empty] | first // empty')
	[ -n "$prog" ] || fail "impair_stats: no BPF filter at pref $pref on $ns $dev $dir"
	map=$(bpftool prog show id "$prog" -j | jq -r '.map_ids[]?' | while read -r m; do
		bpftool map show id "$m" -j | jq -r 'select(.name == "impair_stats") | .id'
	done)
	[ -n "$map" ] || fail "impair_stats: program $prog has no impair_stats map"
	# .formatted where the map has BTF; else the little-endian bytes bpftool prints in hex
	bpftool map dump id "$map" -j |
		jq -c --argjson names "$(printf '%s\n' "${IMPAIR_STAT_NAMES[@]}" | jq -R . | jq -s .)" '
			def num: reverse | map(ltrimstr("0x") | ascii_downcase | explode |
				reduce .[] as $c (0; . * 16 + (if $c >= 97 then $c - 87 else $c - 48 end))) |
				reduce .[] as $b (0; . * 256 + $b);
			map(.formatted // {key: (.key | num), value: (.value | num)}) |
			map({key: $names[.key], value: .value}) | from_entries'
}
