#!/usr/bin/env bash
# The (iii) rows of `make bench`: transparent mode beside what users run
# today, on a veth pair between two network namespaces (client | server),
# in one run. Configurations alternate round by round; every ratio is the
# median of per-round ratios (neighbours in time), with its min and max.
#
#  direct       the plain server, no header, nothing attached (the baseline)
#  transparent  the same plain server (accept(), read, reply: no ppbpf code)
#               on a --transparent port: the client sends a v2 header, the
#               kernel takes it out, accept() returns the header's source
#  go-mmproxy   Debian's go-mmproxy in the server's namespace, forwarding to
#               the plain server on 127.0.0.1 with the client's address
#               (IP_TRANSPARENT and its two routing lines)
#  haproxy      HAProxy `accept-proxy` forwarding to the plain server
#
# Scenarios: connection rate at 1 and 64 clients (connect, v2 header, 100-byte
# request, 100-byte reply, close; fixed lengths, since go-mmproxy has no
# half-close) with p50/p99 time to first byte, and bulk throughput of one
# connection; CPU per connection from /proc/stat. Every server checks what it
# saw: a wrong peer or a header left in the stream is a failed connection.
# Writes $OUT/bench-transparent.json.
#
# Knobs: QUICK=1, ROUNDS (default 9; at least 5), BENCH_SECONDS, BENCH_BYTES.
. "$(dirname "$0")/../tests/integration/lib.sh"
. "$(dirname "$0")/bench_lib.sh"
set -eo pipefail
bench_setup "the transparent-mode benchmarks" 9 bench-transparent go-mmproxy haproxy jq taskset

# Two namespaces and a veth pair; the client is the "balancer" (203.0.113.1), the server 203.0.113.2.
bench_veth_pair pp
# go-mmproxy's two lines: replies from the backend to the client's address are delivered locally
ip -n "$NS" rule add from 127.0.0.1/8 iif lo table 123
ip -n "$NS" route add local 0.0.0.0/0 dev lo table 123

new_cgroup CG_T bench-transparent
new_cgroup CG_U bench-tr-plain
new_pin_dir PIN bench-tr
P_D=20001 P_T=20002 P_M=20003 P_MB=20004 P_H=20005 P_HB=20006
S_D=20011 S_T=20012 S_M=20013 S_MB=20014 S_H=20015 S_HB=20016
nsenter --net="/run/netns/$NS" "$CLI" attach --cgroup "$CG_T" --pin-dir "$PIN" --port "$P_T,$S_T" \
	--trust 203.0.113.1 --transparent >/dev/null

# in_ns NS CG VAR CMD...: a server in the background in a namespace and cgroup, listening on VAR's address.
in_ns() {
	local ns=$1 cg=$2 addr=$3
	shift 3
	nsenter --net="/run/netns/$ns" env BENCH_ADDR="$addr" bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' \
		"$cg" "$@" &
	PIDS+=($!)
}
in_ns "$NS" "$CG_U" "$SRV" "$B" server "$P_D" plain
in_ns "$NS" "$CG_T" "$SRV" "$B" server "$P_T" transparent
# behind the proxies, the backends check the client's address too (go-mmproxy keeps it; HAProxy does not)
in_ns "$NS" "$CG_U" 127.0.0.1 "$B" server "$P_MB" transparent
in_ns "$NS" "$CG_U" 127.0.0.1 "$B" server "$P_HB" plain
in_ns "$NS" "$CG_U" 127.0.0.1 go-mmproxy -l "$SRV:$P_M" -4 "127.0.0.1:$P_MB" -v 0
in_ns "$NS" "$CG_U" 127.0.0.1 go-mmproxy -l "$SRV:$S_M" -4 "127.0.0.1:$S_MB" -v 0
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
	bind $SRV:$P_H accept-proxy
	default_backend plain
backend plain
	server plain 127.0.0.1:$P_HB
frontend bulk
	bind $SRV:$S_H accept-proxy
	default_backend sink
backend sink
	server sink 127.0.0.1:$S_HB
EOF
in_ns "$NS" "$CG_U" 127.0.0.1 haproxy -f "$TMP/haproxy.cfg" -db
listening() { nsenter --net="/run/netns/$NS" ss -Htln "sport = :$1" | grep -q .; }
for p in "$P_D" "$P_T" "$P_M" "$P_MB" "$P_H" "$P_HB"; do
	for _ in $(seq 100); do listening "$p" && break; sleep 0.05; done
	listening "$p" || fail "nothing listens on $p in the server's namespace"
done

client() { nsenter --net="/run/netns/$NC" env BENCH_ADDR="$SRV" "$@"; }

# rate_run MODE CONC ROUND
rate_run() {
	local mode=$1 conc=$2 round=$3 port hdr=v2 out t0 t1
	case $mode in
	direct) port=$P_D hdr=none ;;
	transparent) port=$P_T ;;
	go-mmproxy) port=$P_M ;;
	haproxy) port=$P_H ;;
	esac
	t0=$(busy_ticks)
	out=$(client "$B" rate "$port" "$hdr" "$SECS" "$conc") || fail "$mode: $out"
	t1=$(busy_ticks)
	[ "$(jq .failed <<< "$out")" = 0 ] || fail "$mode at $conc: failed or wrong answers: $out"
	jq -c --arg m "$mode" --argjson c "$conc" --argjson r "$round" --argjson cpu "$(((t1 - t0) * TICK_US))" \
		'{kind: "rate", mode: $m, conc: $c, round: $r, per_second, p50_us, p99_us,
		  cpu_us_per_conn: ($cpu / .connections)}' <<< "$out" >> "$SAMPLES"
	jq -r --arg m "$mode" --argjson c "$conc" --argjson r "$round" \
		'"  round \($r)  c=\($c)  \($m | .+ "            " | .[0:12]) \(.per_second | floor) conn/s  p50 \(.p50_us) us  p99 \(.p99_us) us"' <<< "$out"
}

# bulk_run MODE ROUND: one transfer, the sink and the sender on their own CPUs.
bulk_run() {
	local mode=$1 round=$2 cg=$CG_U port target send_arg=v2 addr=$SRV t0 t1 sink
	case $mode in
	direct) port=$S_D target=$S_D send_arg="" ;;
	transparent) port=$S_T target=$S_T cg=$CG_T ;;
	go-mmproxy) port=$S_MB target=$S_M addr=127.0.0.1 ;;
	haproxy) port=$S_HB target=$S_H addr=127.0.0.1 ;;
	esac
	nsenter --net="/run/netns/$NS" env BENCH_ADDR="$addr" bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' \
		"$cg" taskset -c 0 "$B" sink "$port" > "$TMP/sink.json" &
	sink=$!
	for _ in $(seq 100); do listening "$port" && break; sleep 0.02; done
	t0=$(busy_ticks)
	client taskset -c 1 "$B" bulk "$target" "$BYTES" $send_arg > /dev/null
	wait $sink
	t1=$(busy_ticks)
	jq -e --argjson b "$BYTES" '.bytes == $b' "$TMP/sink.json" >/dev/null ||
		fail "$mode bulk: the sink got $(jq .bytes "$TMP/sink.json") bytes, want $BYTES (a header left in the stream?)"
	jq -c --arg m "$mode" --argjson r "$round" --argjson cpu "$(((t1 - t0) * TICK_US))" \
		'{kind: "bulk", mode: $m, round: $r, gbit: .gbit_per_second, cpu_ns_per_byte: ($cpu * 1000 / .bytes)}' \
		"$TMP/sink.json" >> "$SAMPLES"
	jq -r --arg m "$mode" --argjson r "$round" '"  round \($r)  \($m | .+ "            " | .[0:12]) \(.gbit_per_second) Gbit/s"' \
		"$TMP/sink.json"
}

MODES="direct transparent go-mmproxy haproxy"
echo "transparent mode on a veth pair: $ROUNDS rounds x ${SECS}s per configuration, 1 and 64 concurrent clients"
for conc in 1 64; do
	for r in $(seq "$ROUNDS"); do
		for mode in $MODES; do rate_run "$mode" "$conc" "$r"; done
	done
done
echo "bulk throughput: $ROUNDS rounds x $((BYTES >> 20)) MiB per configuration"
for r in $(seq "$ROUNDS"); do
	for mode in $MODES; do bulk_run "$mode" "$r"; done
done
st=$(nsenter --net="/run/netns/$NS" "$CLI" status --pin-dir "$PIN" --json)
[ "$(jq '.counters.v2 > 0 and .counters.rejected == 0 and .counters.transparent_flows == .counters.v2' <<< "$st")" = true ] ||
	fail "the kernel side did not take the benchmark's headers out cleanly: $(jq -c .counters <<< "$st")"

jq -s --argjson quick "$QUICK" --argjson rounds "$ROUNDS" --arg secs "$SECS" --argjson bytes "$BYTES" \
	--arg kernel "$(uname -r)" --argjson cpus "$(nproc)" --arg mm "$(dpkg-query -W -f='${Version}' go-mmproxy 2>/dev/null)" "$BENCH_JQ"'
  . as $all |
  def rate_block($conc):
    reduce ("direct", "transparent", "go-mmproxy", "haproxy") as $m ({};
      .[$m] = {per_second: ($all | series("rate"; $conc; $m; "per_second") | stats),
               p50_us: ($all | series("rate"; $conc; $m; "p50_us") | stats),
               p99_us: ($all | series("rate"; $conc; $m; "p99_us") | stats),
               cpu_us_per_conn: ($all | series("rate"; $conc; $m; "cpu_us_per_conn") | stats),
               vs_direct: ratio($all | series("rate"; $conc; $m; "per_second"); $all | series("rate"; $conc; "direct"; "per_second"))})
    | .transparent.vs_go_mmproxy = ratio($all | series("rate"; $conc; "transparent"; "per_second");
                                         $all | series("rate"; $conc; "go-mmproxy"; "per_second"))
    | .transparent.vs_haproxy = ratio($all | series("rate"; $conc; "transparent"; "per_second");
                                      $all | series("rate"; $conc; "haproxy"; "per_second"));
  def added_p99($conc): ($all | series("rate"; $conc; "transparent"; "p99_us")) as $x |
    ($all | series("rate"; $conc; "direct"; "p99_us")) as $b | [range($x | length) | $x[.] - $b[.]] | stats;
  def bulk($m): $all | series("bulk"; null; $m; "gbit");
  {quick: ($quick == 1), rounds: $rounds, rate_seconds: ($secs | tonumber), bulk_bytes: $bytes,
   machine: {kernel: $kernel, cpus: $cpus}, go_mmproxy: $mm, link: "veth pair between two network namespaces",
   connection_rate: {c1: rate_block(1), c64: rate_block(64)},
   latency_added_p99_us: {c1: added_p99(1), c64: added_p99(64)},
   bulk: (reduce ("direct", "transparent", "go-mmproxy", "haproxy") as $m ({};
     .[$m] = {gbit: (bulk($m) | stats), cpu_ns_per_byte: ($all | series("bulk"; null; $m; "cpu_ns_per_byte") | stats),
              vs_direct: ratio(bulk($m); bulk("direct"))})
     | .transparent.vs_go_mmproxy = ratio(bulk("transparent"); bulk("go-mmproxy"))
     | .transparent.vs_haproxy = ratio(bulk("transparent"); bulk("haproxy")))}
' "$SAMPLES" > "$RES"

jq -r '
  def r3: . * 1000 | round / 1000;
  def mm: "\(.median | r3) (\(.min | r3)-\(.max | r3))";
  def ok($v; $t): if $v >= $t then "met" else "NOT met" end;
  def row($name; $x): "  \($name | .+ "                            " | .[0:28]) \($x.per_second.median | floor | tostring | .+ "        " | .[0:8]) \($x.vs_direct | mm | .+ "                       " | .[0:24]) p50 \($x.p50_us.median | r3) p99 \($x.p99_us.median | r3) us  cpu \($x.cpu_us_per_conn.median | r3) us/conn";
  (.connection_rate | to_entries[] | (if .key == "c1" then 2.5 else 2 end) as $mm |
    "\n(iii) connection rate on a veth pair, \(.key) (conn/s; ratio vs direct median (min-max); latency to first byte; CPU)",
    row("direct (plain server)"; .value.direct),
    row("(iii) ppbpf transparent"; .value.transparent),
    row("go-mmproxy (v2)"; .value["go-mmproxy"]),
    row("HAProxy accept-proxy hop"; .value.haproxy),
    "  transparent/direct = \(.value.transparent.vs_direct.median | r3) [target 0.95: \(ok(.value.transparent.vs_direct.median; 0.95))]   /go-mmproxy = \(.value.transparent.vs_go_mmproxy | mm) [target \($mm): \(ok(.value.transparent.vs_go_mmproxy.median; $mm))]   /haproxy = \(.value.transparent.vs_haproxy | mm) [target 2: \(ok(.value.transparent.vs_haproxy.median; 2))]"),
  "\n(iii) p99 added vs direct: 1 client \(.latency_added_p99_us.c1 | mm) us [target <= 10: \(if .latency_added_p99_us.c1.median <= 10 then "met" else "NOT met" end)]   64 clients \(.latency_added_p99_us.c64 | mm) us",
  "\n(iii) bulk, one connection (Gbit/s; ratio vs direct; CPU ns/byte)",
  (.bulk | to_entries[] | "  \(.key | .+ "            " | .[0:12]) \(.value.gbit.median)  \(.value.vs_direct | mm)  cpu \(.value.cpu_ns_per_byte.median | r3) ns/byte"),
  "  transparent/direct = \(.bulk.transparent.vs_direct.median | r3) [target 0.98: \(ok(.bulk.transparent.vs_direct.median; 0.98))]   /go-mmproxy = \(.bulk.transparent.vs_go_mmproxy | mm) [target 2: \(ok(.bulk.transparent.vs_go_mmproxy.median; 2))]   /haproxy = \(.bulk.transparent.vs_haproxy | mm) [target 2: \(ok(.bulk.transparent.vs_haproxy.median; 2))]"
' "$RES"
echo
echo "results: $RES"
