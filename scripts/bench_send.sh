#!/usr/bin/env bash
# The (vii) rows of `make bench`: the sending side, on a veth pair between two
# network namespaces (client | server), in one run. Configurations alternate
# round by round; every ratio is the median of per-round ratios (neighbours in
# time), with its min and max.
#
#  self      the client writes the PROXY v2 header itself (its own addresses,
#            as the kernel would), from a cgroup with nothing attached: the
#            baseline, the same bytes on the wire
#  injected  the same client, writing no header, from a cgroup attached with
#            --send: the kernel writes it (sk_msg) before the first byte
#  haproxy   the client, writing no header, through HAProxy `send-proxy-v2` in
#            the server's namespace: the hop that does the same job today
#  direct    no header at all, to a plain server (for scale only)
#
# The servers (ppbpf_accept, parsing in userspace) check that every header's
# source is the client's address; a wrong one is a failed connection.
# Scenarios: connection rate at 1 and 64 clients (connect, header, 100-byte
# request, 100-byte reply, close), and bulk throughput of one connection.
# CPU per connection from /proc/stat. Writes $OUT/bench-send.json.
#
# Knobs: QUICK=1, ROUNDS (default 7, at least 5), BENCH_SECONDS, BENCH_BYTES.
. "$(dirname "$0")/../tests/integration/lib.sh"
. "$(dirname "$0")/bench_lib.sh"
set -eo pipefail
bench_setup "the sending-side benchmarks" 7 bench-send haproxy jq taskset

bench_veth_pair pq
CLIENT_ADDR=203.0.113.1
new_cgroup CG_S bench-send
new_cgroup CG_U bench-send-plain
new_pin_dir PIN bench-send
P_D=21001 P_S=21002 P_I=21003 P_H=21004 P_HB=21005
S_D=21011 S_S=21012 S_I=21013
"$CLI" attach --cgroup "$CG_S" --pin-dir "$PIN" --send "$P_I,$S_I" --send-to "$SRV/32" >/dev/null

# srv CG ADDR CMD...: a server in the server's namespace, in the background.
srv() {
	local cg=$1 addr=$2
	shift 2
	nsenter --net="/run/netns/$NS" env BENCH_ADDR="$addr" BENCH_SRC="$CLIENT_ADDR" \
		PPBPF_FALLBACK_TRUST="$CLIENT_ADDR/32,127.0.0.1/32" bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' \
		"$cg" "$@" &
	PIDS+=($!)
}
srv "$CG_U" "$SRV" "$B" server "$P_D" plain
srv "$CG_U" "$SRV" "$B" server "$P_S" sent
srv "$CG_U" "$SRV" "$B" server "$P_I" sent
srv "$CG_U" 127.0.0.1 "$B" server "$P_HB" sent
cat > "$TMP/haproxy.cfg" <<EOF
global
	nbthread 1
	maxconn 8000
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
frontend rate
	bind $SRV:$P_H
	default_backend sent
backend sent
	server sent 127.0.0.1:$P_HB send-proxy-v2
EOF
srv "$CG_U" 127.0.0.1 haproxy -f "$TMP/haproxy.cfg" -db
listening() { nsenter --net="/run/netns/$NS" ss -Htln "sport = :$1" | grep -q .; }
for p in "$P_D" "$P_S" "$P_I" "$P_H" "$P_HB"; do
	for _ in $(seq 100); do listening "$p" && break; sleep 0.05; done
	listening "$p" || fail "nothing listens on $p in the server's namespace"
done

# client CG CMD...: in the client's namespace and cgroup CG.
client() {
	local cg=$1
	shift
	nsenter --net="/run/netns/$NC" env BENCH_ADDR="$SRV" bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}

# rate_run MODE CONC ROUND
rate_run() {
	local mode=$1 conc=$2 round=$3 port hdr=none cg=$CG_U out t0 t1
	case $mode in
	direct) port=$P_D ;;
	self) port=$P_S hdr=self ;;
	injected) port=$P_I cg=$CG_S ;;
	haproxy) port=$P_H ;;
	esac
	t0=$(busy_ticks)
	out=$(client "$cg" "$B" rate "$port" "$hdr" "$SECS" "$conc") || fail "$mode: $out"
	t1=$(busy_ticks)
	[ "$(jq .failed <<< "$out")" = 0 ] || fail "$mode at $conc: failed or wrong answers: $out"
	jq -c --arg m "$mode" --argjson c "$conc" --argjson r "$round" --argjson cpu "$(((t1 - t0) * TICK_US))" \
		'{kind: "rate", mode: $m, conc: $c, round: $r, per_second, p50_us, p99_us,
		  cpu_us_per_conn: ($cpu / .connections)}' <<< "$out" >> "$SAMPLES"
	jq -r --arg m "$mode" --argjson c "$conc" --argjson r "$round" \
		'"  round \($r)  c=\($c)  \($m | .+ "          " | .[0:10]) \(.per_second | floor) conn/s  p50 \(.p50_us) us  p99 \(.p99_us) us"' <<< "$out"
}

# bulk_run MODE ROUND: one transfer, the sink and the sender on their own CPUs.
bulk_run() {
	local mode=$1 round=$2 cg=$CG_U port send_arg="" sink_arg=ppbpf t0 t1 sink
	case $mode in
	direct) port=$S_D sink_arg="" ;;
	self) port=$S_S send_arg=v2 ;;
	injected) port=$S_I cg=$CG_S ;;
	esac
	nsenter --net="/run/netns/$NS" env BENCH_ADDR="$SRV" PPBPF_FALLBACK_TRUST="0.0.0.0/0" \
		bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG_U" taskset -c 0 "$B" sink "$port" $sink_arg \
		> "$TMP/sink.json" &
	sink=$!
	for _ in $(seq 100); do listening "$port" && break; sleep 0.02; done
	t0=$(busy_ticks)
	client "$cg" taskset -c 1 "$B" bulk "$port" "$BYTES" $send_arg > /dev/null
	wait $sink
	t1=$(busy_ticks)
	jq -e --argjson b "$BYTES" '.bytes == $b' "$TMP/sink.json" >/dev/null ||
		fail "$mode bulk: the sink got $(jq .bytes "$TMP/sink.json") bytes after the header, want $BYTES"
	jq -c --arg m "$mode" --argjson r "$round" --argjson cpu "$(((t1 - t0) * TICK_US))" \
		'{kind: "bulk", mode: $m, round: $r, gbit: .gbit_per_second, cpu_ns_per_byte: ($cpu * 1000 / .bytes)}' \
		"$TMP/sink.json" >> "$SAMPLES"
	jq -r --arg m "$mode" --argjson r "$round" '"  round \($r)  \($m | .+ "          " | .[0:10]) \(.gbit_per_second) Gbit/s"' \
		"$TMP/sink.json"
}

RATE_MODES="direct self injected haproxy"
BULK_MODES="direct self injected"
echo "the sending side on a veth pair: $ROUNDS rounds x ${SECS}s per configuration, 1 and 64 concurrent clients"
for conc in 1 64; do
	for r in $(seq "$ROUNDS"); do
		for mode in $RATE_MODES; do rate_run "$mode" "$conc" "$r"; done
	done
done
echo "bulk throughput: $ROUNDS rounds x $((BYTES >> 20)) MiB per configuration"
for r in $(seq "$ROUNDS"); do
	for mode in $BULK_MODES; do bulk_run "$mode" "$r"; done
done
st=$("$CLI" status --pin-dir "$PIN" --json)
jq -e '.counters.sent > 0 and .counters.send_failed == 0 and .counters.send_no_room == 0' <<< "$st" >/dev/null ||
	fail "the kernel did not write every header: $(jq -c '.counters | {sent, send_failed, send_no_room}' <<< "$st")"

jq -s --argjson quick "$QUICK" --argjson rounds "$ROUNDS" --arg secs "$SECS" --argjson bytes "$BYTES" \
	--arg kernel "$(uname -r)" --argjson cpus "$(nproc)" --arg hap "$(haproxy -v | sed -n 1p)" "$BENCH_JQ"'
  . as $all |
  def rate_block($conc):
    reduce ("direct", "self", "injected", "haproxy") as $m ({};
      .[$m] = {per_second: ($all | series("rate"; $conc; $m; "per_second") | stats),
               p50_us: ($all | series("rate"; $conc; $m; "p50_us") | stats),
               p99_us: ($all | series("rate"; $conc; $m; "p99_us") | stats),
               cpu_us_per_conn: ($all | series("rate"; $conc; $m; "cpu_us_per_conn") | stats),
               vs_self: ratio($all | series("rate"; $conc; $m; "per_second"); $all | series("rate"; $conc; "self"; "per_second"))})
    | .injected.vs_haproxy = ratio($all | series("rate"; $conc; "injected"; "per_second");
                                   $all | series("rate"; $conc; "haproxy"; "per_second"))
    | .injected.vs_direct = ratio($all | series("rate"; $conc; "injected"; "per_second");
                                  $all | series("rate"; $conc; "direct"; "per_second"));
  def bulk($m): $all | series("bulk"; null; $m; "gbit");
  {quick: ($quick == 1), rounds: $rounds, rate_seconds: ($secs | tonumber), bulk_bytes: $bytes,
   machine: {kernel: $kernel, cpus: $cpus}, haproxy: $hap, link: "veth pair between two network namespaces",
   connection_rate: {c1: rate_block(1), c64: rate_block(64)},
   bulk: (reduce ("direct", "self", "injected") as $m ({};
     .[$m] = {gbit: (bulk($m) | stats), cpu_ns_per_byte: ($all | series("bulk"; null; $m; "cpu_ns_per_byte") | stats),
              vs_self: ratio(bulk($m); bulk("self"))}))}
' "$SAMPLES" > "$RES"

jq -r '
  def r3: . * 1000 | round / 1000;
  def mm: "\(.median | r3) (\(.min | r3)-\(.max | r3))";
  def ok($v; $t): if $v >= $t then "met" else "NOT met" end;
  def row($name; $x): "  \($name | .+ "                            " | .[0:28]) \($x.per_second.median | floor | tostring | .+ "        " | .[0:8]) \($x.vs_self | mm | .+ "                       " | .[0:24]) p50 \($x.p50_us.median | r3) p99 \($x.p99_us.median | r3) us  cpu \($x.cpu_us_per_conn.median | r3) us/conn";
  (.connection_rate | to_entries[] |
    "\n(vii) connection rate on a veth pair, \(.key) (conn/s; ratio vs self median (min-max); latency to first byte; CPU)",
    row("direct (no header)"; .value.direct),
    row("self (the app writes it)"; .value.self),
    row("(vii) ppbpf --send (kernel)"; .value.injected),
    row("HAProxy send-proxy-v2 hop"; .value.haproxy),
    "  injected/self = \(.value.injected.vs_self | mm) [target 0.97: \(ok(.value.injected.vs_self.median; 0.97))]   /haproxy = \(.value.injected.vs_haproxy | mm) [target 2: \(ok(.value.injected.vs_haproxy.median; 2))]   /direct = \(.value.injected.vs_direct | mm)"),
  "\n(vii) bulk, one connection (Gbit/s; ratio vs self; CPU ns/byte)",
  (.bulk | to_entries[] | "  \(.key | .+ "          " | .[0:10]) \(.value.gbit.median)  \(.value.vs_self | mm)  cpu \(.value.cpu_ns_per_byte.median | r3) ns/byte"),
  "  injected/self = \(.bulk.injected.vs_self | mm) [target 0.99: \(ok(.bulk.injected.vs_self.median; 0.99))]"
' "$RES"
echo
echo "results: $RES"
