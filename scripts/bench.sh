#!/usr/bin/env bash
# The network half of `make bench`: ppbpf side by side with the alternatives,
# in one run, on loopback. Configurations are alternated round by round and
# every ratio is the median of per-round ratios against (i) (neighbours in
# time, so drift cancels), with its min and max over ROUNDS (>= 5) rounds.
#
#  (i)    plain: a server without header, nothing attached (the limit)
#  (ii)   kernel: ppbpf_accept + ppbpf_get, ppbpf attached (annotate mode)
#  (iii)  transparent: on a veth pair, beside go-mmproxy: scripts/bench_transparent.sh
#  (iv)   userspace: the same server parsing in userspace (libppbpf fallback)
#  (v)    nginx with `listen ... proxy_protocol` against nginx without it
#  (vi)   haproxy: HAProxy `accept-proxy` forwarding to the plain server
#  (d)    hook tax: the plain server in the attached cgroup, on a port with no policy
#
# Scenarios: connection rate at 1 and 64 concurrent clients (connect, header,
# 100-byte request, 100-byte reply, close) with p50/p99 time to first byte;
# bulk throughput of one long connection; CPU per connection and per byte
# from /proc/stat (perf has no hardware counters here; see `perf stat -e
# instructions true`). Writes $OUT/bench-results.json and a plot of the
# ratios ($OUT/bench-ratios.svg, and .png when gnuplot can).
#
# Knobs: QUICK=1 (under 2 minutes), ROUNDS (default 5, at least 5),
# BENCH_SECONDS (per rate run), BENCH_BYTES (per bulk run).
. "$(dirname "$0")/../tests/integration/lib.sh"
. "$(dirname "$0")/bench_lib.sh"
set -eo pipefail
bench_setup "the network benchmarks" 5 bench-results nginx haproxy gnuplot jq taskset
PLOT=$OUT/bench-ratios

new_cgroup CG_K bench-kernel
new_cgroup CG_U bench-plain
new_cgroup CG_E bench-empty
new_pin_dir PIN bench
FLOOR=/sys/fs/bpf/ppbpf-test-$$-floor
CLEANUP+=("bpftool cgroup detach '$CG_E' ingress pinned '$FLOOR'" "rm -f '$FLOOR'")
bpftool prog load "$OUT/tests/bpf/hook_floor.bpf.o" "$FLOOR" type cgroup/skb
bpftool cgroup attach "$CG_E" ingress pinned "$FLOOR" multi

P_PLAIN=$(free_port) P_K=$(free_port) P_U=$(free_port) P_T=$(free_port) P_HA=$(free_port)
P_NGX=$(free_port) P_NGXPP=$(free_port) P_BK=$(free_port) P_HAB=$(free_port) P_HSINK=$(free_port)
P_CALLS=$(free_port)
"$CLI" attach --cgroup "$CG_K" --pin-dir "$PIN" --port "$P_K,$P_BK,$P_CALLS" --trust 127.0.0.1 >/dev/null 2>&1

spawn_in_cgroup "$CG_U" "$B" server "$P_PLAIN" plain
PID_PLAIN=${PIDS[-1]}
spawn_in_cgroup "$CG_K" "$B" server "$P_K" ppbpf
PID_K=${PIDS[-1]}
# (iv): the library's userspace fallback honours headers only from a trust list it is given
spawn_in_cgroup "$CG_U" env PPBPF_FALLBACK_TRUST=127.0.0.1 "$B" server "$P_U" ppbpf
PID_U=${PIDS[-1]}
spawn_in_cgroup "$CG_K" "$B" server "$P_T" plain

# One process each, like the single-threaded bench servers.
REPLY=$(printf 'r%.0s' $(seq 100))
cat > "$TMP/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx.err warn;
events { worker_connections 4096; }
http {
	access_log off;
	server { listen 127.0.0.1:$P_NGX; location / { return 200 "$REPLY"; } }
	server { listen 127.0.0.1:$P_NGXPP proxy_protocol; location / { return 200 "$REPLY"; } }
}
EOF
spawn_in_cgroup "$CG_U" nginx -c "$TMP/nginx.conf" -p "$TMP" -e "$TMP/nginx.err"
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
	bind 127.0.0.1:$P_HA accept-proxy
	default_backend plain
backend plain
	server plain 127.0.0.1:$P_PLAIN
frontend bulk
	bind 127.0.0.1:$P_HAB accept-proxy
	default_backend sink
backend sink
	server sink 127.0.0.1:$P_HSINK
EOF
spawn_in_cgroup "$CG_U" haproxy -f "$TMP/haproxy.cfg" -db
for p in "$P_PLAIN" "$P_K" "$P_U" "$P_T" "$P_NGX" "$P_NGXPP" "$P_HA"; do
	for _ in $(seq 100); do ss -Htln "sport = :$p" | grep -q . && break; sleep 0.05; done
	ss -Htln "sport = :$p" | grep -q . || fail "nothing listens on $p"
done

# Busy CPU time of the whole machine, in USER_HZ ticks (user+nice+system+irq+softirq+steal).

# rate_run MODE CONC ROUND: one connection-rate run, appended to the samples.
rate_run() {
	local mode=$1 conc=$2 round=$3 port hdr=v2 http="" out t0 t1
	case $mode in
	plain) port=$P_PLAIN hdr=none ;;
	kernel) port=$P_K ;;
	userspace) port=$P_U ;;
	hooktax) port=$P_T hdr=none ;;
	haproxy) port=$P_HA ;;
	nginx) port=$P_NGX hdr=none http=http ;;
	nginx_pp) port=$P_NGXPP http=http ;;
	esac
	t0=$(busy_ticks)
	out=$(in_cgroup "$CG_U" "$B" rate "$port" "$hdr" "$SECS" "$conc" $http) || fail "$mode: $out"
	t1=$(busy_ticks)
	[ "$(jq .failed <<< "$out")" = 0 ] || fail "$mode at $conc: failed or wrong answers: $out"
	jq -c --arg m "$mode" --argjson c "$conc" --argjson r "$round" --argjson cpu "$(((t1 - t0) * TICK_US))" \
		'{kind: "rate", mode: $m, conc: $c, round: $r, per_second, p50_us, p99_us,
		  cpu_us_per_conn: ($cpu / .connections)}' <<< "$out" >> "$SAMPLES"
	jq -r --arg m "$mode" --argjson c "$conc" --argjson r "$round" \
		'"  round \($r)  c=\($c)  \($m | .+ "          " | .[0:10]) \(.per_second | floor) conn/s  p50 \(.p50_us) us  p99 \(.p99_us) us"' <<< "$out"
}

# bulk_run MODE ROUND: one bulk transfer, sender and receiver on their own CPUs.
bulk_run() {
	local mode=$1 round=$2 cg=$CG_U port sink_arg="" send_arg="" target t0 t1 sink
	port=$(free_port)
	target=$port
	case $mode in
	plain) ;;
	empty) cg=$CG_E ;;
	attached) cg=$CG_K ;;
	kernel) cg=$CG_K port=$P_BK target=$P_BK sink_arg=ppbpf send_arg=v2 ;;
	haproxy) port=$P_HSINK target=$P_HAB send_arg=v2 ;;
	esac
	in_cgroup "$cg" taskset -c 0 "$B" sink "$port" $sink_arg > "$TMP/sink.json" &
	sink=$!
	for _ in $(seq 100); do ss -Htln "sport = :$port" | grep -q . && break; sleep 0.02; done
	t0=$(busy_ticks)
	in_cgroup "$cg" taskset -c 1 "$B" bulk "$target" "$BYTES" $send_arg > /dev/null
	wait $sink
	t1=$(busy_ticks)
	jq -c --arg m "$mode" --argjson r "$round" --argjson cpu "$(((t1 - t0) * TICK_US))" \
		'{kind: "bulk", mode: $m, round: $r, gbit: .gbit_per_second, cpu_ns_per_byte: ($cpu * 1000 / .bytes)}' \
		"$TMP/sink.json" >> "$SAMPLES"
	jq -r --arg m "$mode" --argjson r "$round" '"  round \($r)  \($m | .+ "          " | .[0:10]) \(.gbit_per_second) Gbit/s"' \
		"$TMP/sink.json"
}

RATE_MODES="plain kernel userspace hooktax haproxy nginx nginx_pp"
BULK_MODES="plain kernel haproxy attached empty"
echo "connection rate: $ROUNDS rounds x ${SECS}s per configuration, 1 and 64 concurrent clients"
for conc in 1 64; do
	for r in $(seq "$ROUNDS"); do
		for mode in $RATE_MODES; do rate_run "$mode" "$conc" "$r"; done
	done
done
echo "bulk throughput: $ROUNDS rounds x $((BYTES >> 20)) MiB per configuration"
for r in $(seq "$ROUNDS"); do
	for mode in $BULK_MODES; do bulk_run "$mode" "$r"; done
done
# ---- where the kernel path's CPU goes: BPF run time, the library's calls, the rest --------------
# Apart from the rounds above: bpf_stats and syscall counting cost CPU themselves.
BREAKDOWN=$OUT/bench-breakdown.jsonl
: > "$BREAKDOWN"
PROG_IDS=$(bpftool cgroup show "$CG_K" --json | jq -r '.[].id' | sort -un)
# prog_snapshot: {"<id>": {name, run_cnt, run_time_ns}} of ppbpf's programs in the kernel cgroup
prog_snapshot() {
	for id in $PROG_IDS; do bpftool prog show id "$id" --json; done |
		jq -s 'map({key: (.id | tostring), value: {name, run_cnt: (.run_cnt // 0), run_time_ns: (.run_time_ns // 0)}}) | from_entries'
}
STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
CLEANUP+=("sysctl -qw kernel.bpf_stats_enabled=$STATS_WAS")
sysctl -qw kernel.bpf_stats_enabled=1
for conc in 1 64; do
	for r in 1 2 3; do
		before=$(prog_snapshot)
		out=$(in_cgroup "$CG_U" "$B" rate "$P_K" v2 "$SECS" "$conc") || fail "breakdown: $out"
		after=$(prog_snapshot)
		jq -c -n --argjson a "$before" --argjson b "$after" --argjson c "$conc" --argjson n "$(jq .connections <<< "$out")" '
			{kind: "bpf", conc: $c, programs: [$b | keys[] as $k | ($b[$k].run_cnt - $a[$k].run_cnt) as $runs |
				select($runs > 0) | {name: $b[$k].name, runs_per_conn: ($runs / $n),
				ns_per_run: (($b[$k].run_time_ns - $a[$k].run_time_ns) / $runs)}]}' >> "$BREAKDOWN"
	done
done
sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
in_cgroup "$CG_K" "$B" calls "$P_CALLS" | jq -c '{kind: "calls"} + .' >> "$BREAKDOWN"
# Syscalls per connection of each server, counted by the kernel's tracepoints.
SYSCALLS="accept4 getsockopt recvfrom recvmsg poll ioctl setsockopt nanosleep sched_yield"
for conc in 1 64; do
	for mode in plain kernel userspace; do
		case $mode in
		plain) pid=$PID_PLAIN port=$P_PLAIN hdr=none ;;
		kernel) pid=$PID_K port=$P_K hdr=v2 ;;
		userspace) pid=$PID_U port=$P_U hdr=v2 ;;
		esac
		perf stat -x, -o "$TMP/perf.csv" -e raw_syscalls:sys_enter$(printf ',syscalls:sys_enter_%s' $SYSCALLS) \
			-p "$pid" -- sleep "$(awk -v s="$SECS" 'BEGIN { print s + 0.5 }')" &
		counter=$!
		sleep 0.2
		out=$(in_cgroup "$CG_U" "$B" rate "$port" "$hdr" "$SECS" "$conc") || fail "syscall count: $out"
		wait "$counter"
		jq -c -R -n --arg m "$mode" --argjson c "$conc" --argjson n "$(jq .connections <<< "$out")" '
			[inputs | split(",") | select(length > 3 and (.[0] | test("^[0-9]+$"))) |
			 {key: (.[2] | sub("^(raw_)?syscalls:sys_enter_?"; "") | if . == "" then "all" else . end),
			  value: ((.[0] | tonumber) / $n)}] | from_entries | {kind: "syscalls", mode: $m, conc: $c, per_conn: .}' \
			"$TMP/perf.csv" >> "$BREAKDOWN"
	done
done

[ "$("$CLI" status --pin-dir "$PIN" --json | jq '.counters.v2 > 0 and .counters.rejected == 0')" = true ] ||
	fail "the kernel side did not parse the benchmark's headers cleanly"

CODEC=$TMP/codec.json
[ -s "$OUT/bench-codec.json" ] && cp "$OUT/bench-codec.json" "$CODEC" || echo '[]' > "$CODEC"
jq -s --argjson quick "$QUICK" --argjson rounds "$ROUNDS" --arg secs "$SECS" --argjson bytes "$BYTES" \
	--slurpfile codec "$CODEC" --slurpfile brk "$BREAKDOWN" --arg kernel "$(uname -r)" --argjson cpus "$(nproc)" "$BENCH_JQ"'
  . as $all |
  def rate_block($conc):
    ($all | series("rate"; $conc; "plain"; "per_second")) as $base |
    reduce ("plain", "kernel", "userspace", "hooktax", "haproxy", "nginx", "nginx_pp") as $m ({};
      .[$m] = {per_second: ($all | series("rate"; $conc; $m; "per_second") | stats),
               p50_us: ($all | series("rate"; $conc; $m; "p50_us") | stats),
               p99_us: ($all | series("rate"; $conc; $m; "p99_us") | stats),
               cpu_us_per_conn: ($all | series("rate"; $conc; $m; "cpu_us_per_conn") | stats),
               vs_plain: ratio($all | series("rate"; $conc; $m; "per_second"); $base)})
    | .nginx_pp.vs_nginx = ratio($all | series("rate"; $conc; "nginx_pp"; "per_second");
                                 $all | series("rate"; $conc; "nginx"; "per_second"))
    | .kernel.vs_userspace = ratio($all | series("rate"; $conc; "kernel"; "per_second");
                                   $all | series("rate"; $conc; "userspace"; "per_second"))
    | .kernel.vs_haproxy = ratio($all | series("rate"; $conc; "kernel"; "per_second");
                                 $all | series("rate"; $conc; "haproxy"; "per_second"));
  def added_p99($conc; $m): ($all | series("rate"; $conc; $m; "p99_us")) as $x |
    ($all | series("rate"; $conc; "plain"; "p99_us")) as $b | [range($x | length) | $x[.] - $b[.]] | stats;
  def delta($conc; $m): ($all | series("rate"; $conc; $m; "cpu_us_per_conn")) as $x |
    ($all | series("rate"; $conc; "plain"; "cpu_us_per_conn")) as $b | [range($x | length) | $x[.] - $b[.]] | stats;
  # (ii) - (i) per connection: BPF run time, the extra syscalls of the library at their measured cost, the rest
  def breakdown($conc):
    ([$brk[] | select(.kind == "bpf" and .conc == $conc) | .programs[]] | group_by(.name) |
      map({name: .[0].name, runs_per_conn: (map(.runs_per_conn) | stats.median),
           ns_per_run: (map(.ns_per_run) | stats.median)} | .us_per_conn = .runs_per_conn * .ns_per_run / 1000)) as $progs |
    ([$brk[] | select(.kind == "calls")][0]) as $calls |
    ([$brk[] | select(.kind == "syscalls" and .conc == $conc)] | map({key: .mode, value: .per_conn}) | from_entries) as $sys |
    (($progs | map(select(.name == "ppbpf_getsockopt")) | .[0].ns_per_run) // 0) as $query_bpf_ns |
    def cost($name): if $name == "getsockopt" then $calls.getsockopt_ns - $query_bpf_ns
                     elif $name == "poll" then $calls.poll_ns else $calls.recv_empty_ns end;
    ([$sys.kernel | keys[] | select(. != "all") as $n |
      {name: $n, extra_per_conn: ($sys.kernel[$n] - ($sys.plain[$n] // 0)), ns: cost($n)}]) as $extra |
    {cpu_delta_us: delta($conc; "kernel").median, programs: $progs, bpf_us: ($progs | map(.us_per_conn) | add),
     syscalls_per_conn: $sys, call_ns: $calls, extra_syscalls: $extra,
     library_syscalls_us: ($extra | map(.extra_per_conn * .ns / 1000) | add)}
    | .rest_us = .cpu_delta_us - .bpf_us - .library_syscalls_us;
  ($all | series("bulk"; null; "plain"; "gbit")) as $bbase |
  {quick: ($quick == 1), rounds: $rounds, rate_seconds: ($secs | tonumber), bulk_bytes: $bytes,
   machine: {kernel: $kernel, cpus: $cpus, cpu_counter: "/proc/stat busy time (perf has no hardware counters here)"},
   transparent: "(iii): .output/bench-transparent.json (scripts/bench_transparent.sh, on a veth pair)",
   connection_rate: {c1: rate_block(1), c64: rate_block(64)},
   latency_added_p99_us: {kernel: added_p99(1; "kernel"), haproxy: added_p99(1; "haproxy")},
   cpu_added_us_per_conn: {c1: {kernel: delta(1; "kernel"), userspace: delta(1; "userspace")},
                           c64: {kernel: delta(64; "kernel"), userspace: delta(64; "userspace")}},
   breakdown: {c1: breakdown(1), c64: breakdown(64)},
   bulk: (reduce ("plain", "kernel", "haproxy", "attached", "empty") as $m ({};
     .[$m] = {gbit: ($all | series("bulk"; null; $m; "gbit") | stats),
              cpu_ns_per_byte: ($all | series("bulk"; null; $m; "cpu_ns_per_byte") | stats),
              vs_plain: ratio($all | series("bulk"; null; $m; "gbit"); $bbase)})),
   codec: $codec[0]}
' "$SAMPLES" > "$RES"

# The table, with the targets of issue 11.
jq -r '
  def r3: . * 1000 | round / 1000;
  def mm: "\(.median | r3) (\(.min | r3)-\(.max | r3))";
  def ok($v; $t): if $v >= $t then "met" else "NOT met" end;
  def row($name; $x): "  \($name | .+ "                                   " | .[0:36]) \($x.per_second.median | floor | tostring | .+ "        " | .[0:8]) \($x.vs_plain | mm | .+ "                       " | .[0:24]) p50 \($x.p50_us.median | r3) p99 \($x.p99_us.median | r3) us  cpu \($x.cpu_us_per_conn.median | r3) us/conn";
  (.connection_rate | to_entries[] |
    "\nconnection rate, \(.key) (conn/s median; ratio vs (i) median (min-max); latency to first byte; CPU per connection)",
    row("(i)   plain, nothing attached"; .value.plain),
    row("(ii)  ppbpf kernel (annotate)"; .value.kernel),
    "  (iii) ppbpf transparent                on a veth pair, beside go-mmproxy: below",
    row("(iv)  ppbpf userspace fallback"; .value.userspace),
    row("(v)   nginx without proxy_protocol"; .value.nginx),
    row("(v)   nginx with proxy_protocol"; .value.nginx_pp),
    row("(vi)  HAProxy accept-proxy hop"; .value.haproxy),
    row("(d)   plain, ppbpf attached, no policy"; .value.hooktax),
    (if .key == "c1" then 0.98 else 0.97 end) as $t |
    "  (ii)/(i) = \(.value.kernel.vs_plain.median | r3) [target \($t): \(ok(.value.kernel.vs_plain.median; $t))]   (ii)/(iv) = \(.value.kernel.vs_userspace.median | r3) [target 1.0: \(ok(.value.kernel.vs_userspace.median; 1.0))]   (ii)/(vi) = \(.value.kernel.vs_haproxy.median | r3) [target 2: \(ok(.value.kernel.vs_haproxy.median; 2))]",
    "  (d)/(i) = \(.value.hooktax.vs_plain.median | r3) [target 0.99: \(ok(.value.hooktax.vs_plain.median; 0.99))]   nginx proxy_protocol / nginx = \(.value.nginx_pp.vs_nginx.median | r3)"),
  (.breakdown | to_entries[] | .key as $c | .value |
    "\nwhere (ii) - (i) goes, \($c): \(.cpu_delta_us | r3) us of CPU per connection [target <= 3: \(if .cpu_delta_us <= 3 then "met" else "NOT met" end)]",
    "  BPF run time      \(.bpf_us | r3) us: " + (.programs | map("\(.name | sub("^ppbpf_"; "")) \(.runs_per_conn | r3) x \(.ns_per_run | round) ns") | join(", ")),
    "  library syscalls  \(.library_syscalls_us | r3) us: " + (.extra_syscalls | map(select(.extra_per_conn | fabs > 0.005)) |
      map("\(.name) \(if .extra_per_conn > 0 then "+" else "" end)\(.extra_per_conn | r3) x \(.ns | round) ns") | join(", ")),
    "  rest of the kernel \(.rest_us | r3) us (sk_storage free, program dispatch, wakeups; by difference)"),
  "\np99 latency added vs (i), 1 client: (ii) \(.latency_added_p99_us.kernel | mm) us [target <= 10: \(if .latency_added_p99_us.kernel.median <= 10 then "met" else "NOT met" end)]   (vi) \(.latency_added_p99_us.haproxy | mm) us",
  "\nbulk throughput, one connection (Gbit/s median; ratio vs (i); CPU ns/byte)",
  (.bulk | to_entries[] | "  \(.key | .+ "          " | .[0:10]) \(.value.gbit.median)  \(.value.vs_plain | mm)  cpu \(.value.cpu_ns_per_byte.median | r3) ns/byte"),
  "  (ii)/(i) = \(.bulk.kernel.vs_plain.median | r3) [target 0.98: \(ok(.bulk.kernel.vs_plain.median; 0.98))]   (d) attached, untracked / (i) = \(.bulk.attached.vs_plain.median | r3) [target 0.99: \(ok(.bulk.attached.vs_plain.median; 0.99))]   empty program / (i) = \(.bulk.empty.vs_plain.median | r3) (the cgroup hook alone)"
' "$RES"

# The plot: ratios against (i), per configuration and scenario.
jq -r '"# config c1 c64 bulk",
  ( [["ppbpf-kernel", "kernel"], ["userspace", "userspace"], ["hook-tax", "hooktax"], ["haproxy-hop", "haproxy"],
     ["nginx", "nginx"], ["nginx-pp", "nginx_pp"]][] as [$name, $m] |
    "\($name) \(.connection_rate.c1[$m].vs_plain.median) \(.connection_rate.c64[$m].vs_plain.median) \(
      if $m == "hooktax" then .bulk.attached.vs_plain.median elif .bulk[$m] then .bulk[$m].vs_plain.median else "NaN" end)")' \
	"$RES" > "$TMP/ratios.dat"
plot_script() {
	cat <<EOF
set title "ppbpf and alternatives: throughput relative to a plain server (1.0), same run"
set ylabel "ratio vs (i) plain, median of $ROUNDS rounds"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:1.2]
set xrange [-0.6:5.6]
set grid ytics
set key top right
set arrow from graph 0, first 0.95 to graph 1, first 0.95 nohead dt 2 lc rgb "red"
set label "0.95 target" at graph 0.01, first 0.97 tc rgb "red"
plot "$TMP/ratios.dat" using 2:xtic(1) title "conn/s, 1 client", '' using 3 title "conn/s, 64 clients", '' using 4 title "bulk Gbit/s"
EOF
}
{ echo "set terminal svg size 900,500"; echo "set output '$PLOT.svg'"; plot_script; } | gnuplot
if gnuplot -e 'set terminal pngcairo' 2>/dev/null; then
	{ echo "set terminal pngcairo size 900,500"; echo "set output '$PLOT.png'"; plot_script; } | gnuplot
elif gnuplot -e 'set terminal png' 2>/dev/null; then
	{ echo "set terminal png size 900,500"; echo "set output '$PLOT.png'"; plot_script; } | gnuplot
fi
[ -s "$PLOT.svg" ] || fail "gnuplot wrote no plot"
echo
echo "results: $RES"
echo "plot:    $PLOT.svg$([ -s "$PLOT.png" ] && echo " and $PLOT.png")"
