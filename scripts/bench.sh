#!/usr/bin/env bash
# Network benchmarks of `make bench` (after the codec benchmark). All figures
# come from one run, configurations alternated round by round, medians of
# ROUNDS (default 5) with min and max:
#  - connection rate (connect, header, 100-byte request, 100-byte reply, close)
#    for a plain server without header, the same ppbpf_accept server parsing in
#    userspace (nothing attached), and with the kernel side attached;
#  - bulk loopback throughput with ppbpf attached to the sender's and the
#    receiver's cgroup but no policy matching, against nothing attached: the
#    ingress hook's cost on untracked traffic.
# Knobs: ROUNDS, BENCH_SECONDS (per rate run, default 3), BENCH_THREADS (4),
# BENCH_BYTES (per bulk run, default 2 GiB).
. "$(dirname "$0")/../tests/integration/lib.sh"
need_root "the network benchmarks"
set -eo pipefail
ROUNDS=${ROUNDS:-5} SECS=${BENCH_SECONDS:-3} THREADS=${BENCH_THREADS:-4} BYTES=${BENCH_BYTES:-2147483648}
B=$OUT/bench_net
RES=$OUT/bench-net.json

new_cgroup CG_K bench-kernel
new_cgroup CG_U bench-plain
new_pin_dir PIN bench
P_K=$(free_port) P_U=$(free_port) P_PLAIN=$(free_port)
"$CLI" attach --cgroup "$CG_K" --pin-dir "$PIN" --port "$P_K" --trust 127.0.0.1 >/dev/null 2>&1
spawn_in_cgroup "$CG_K" "$B" server "$P_K" ppbpf
spawn_in_cgroup "$CG_U" "$B" server "$P_U" ppbpf
spawn_in_cgroup "$CG_U" "$B" server "$P_PLAIN" plain
for p in "$P_K" "$P_U" "$P_PLAIN"; do
	for _ in $(seq 50); do ss -Htln "sport = :$p" | grep -q . && break; sleep 0.1; done
done

declare -A rate
echo "connection rate: $ROUNDS rounds x ${SECS}s, $THREADS client threads, configurations alternated"
for r in $(seq "$ROUNDS"); do
	for mode in plain userspace kernel; do
		case $mode in
		plain) port=$P_PLAIN hdr=none ;;
		userspace) port=$P_U hdr=v2 ;;
		kernel) port=$P_K hdr=v2 ;;
		esac
		v=$(in_cgroup "$CG_U" "$B" rate "$port" "$hdr" "$SECS" "$THREADS" | jq .per_second)
		rate[$mode]="${rate[$mode]:-} $v"
		printf '  round %d %-10s %10.0f conn/s\n' "$r" "$mode" "$v"
	done
done
[ "$("$CLI" status --pin-dir "$PIN" --json | jq '.counters.v2 > 0 and .counters.error_v2 == 0')" = true ] ||
	fail "the kernel side did not parse the benchmark's headers"

declare -A bulk
echo "bulk throughput, untracked port: $ROUNDS rounds x $((BYTES >> 20)) MiB, attached vs not alternated"
for r in $(seq "$ROUNDS"); do
	for where in detached attached; do
		cg=$CG_U
		[ $where = attached ] && cg=$CG_K
		port=$(free_port)
		in_cgroup "$cg" "$B" sink "$port" > "$OUT/bench-sink.json" &
		sink=$!
		for _ in $(seq 50); do ss -Htln "sport = :$port" | grep -q . && break; sleep 0.05; done
		in_cgroup "$cg" "$B" bulk "$port" "$BYTES"
		wait $sink
		v=$(jq .gbit_per_second "$OUT/bench-sink.json")
		bulk[$where]="${bulk[$where]:-} $v"
		printf '  round %d %-9s %8.2f Gbit/s\n' "$r" "$where" "$v"
	done
done

# median/min/max of a list of numbers, as JSON
stats() { printf '%s\n' $1 | jq -s 'sort | {median: .[length / 2 | floor], min: .[0], max: .[-1], runs: .}'; }
jq -n --argjson plain "$(stats "${rate[plain]}")" --argjson user "$(stats "${rate[userspace]}")" \
	--argjson kern "$(stats "${rate[kernel]}")" --argjson det "$(stats "${bulk[detached]}")" \
	--argjson att "$(stats "${bulk[attached]}")" \
	'{connection_rate: {plain: $plain, userspace: $user, kernel: $kern,
	   kernel_vs_userspace: ($kern.median / $user.median), kernel_vs_plain: ($kern.median / $plain.median)},
	  bulk_untracked: {detached: $det, attached: $att, attached_vs_detached: ($att.median / $det.median)}}' > "$RES"

jq -r '
  "\nconnection rate (median conn/s, min-max)",
  "  plain server, no header, nothing attached  \(.connection_rate.plain.median | floor)  (\(.connection_rate.plain.min | floor)-\(.connection_rate.plain.max | floor))",
  "  ppbpf_accept, userspace parsing (fallback)  \(.connection_rate.userspace.median | floor)  (\(.connection_rate.userspace.min | floor)-\(.connection_rate.userspace.max | floor))",
  "  ppbpf_accept + ppbpf_get, kernel attached   \(.connection_rate.kernel.median | floor)  (\(.connection_rate.kernel.min | floor)-\(.connection_rate.kernel.max | floor))",
  "  kernel / userspace = \(.connection_rate.kernel_vs_userspace * 1000 | round / 1000)   (target >= 1.0)",
  "  kernel / plain     = \(.connection_rate.kernel_vs_plain * 1000 | round / 1000)   (target >= 0.95)",
  "bulk throughput on an untracked port (median Gbit/s, min-max)",
  "  nothing attached  \(.bulk_untracked.detached.median)  (\(.bulk_untracked.detached.min)-\(.bulk_untracked.detached.max))",
  "  ppbpf attached    \(.bulk_untracked.attached.median)  (\(.bulk_untracked.attached.min)-\(.bulk_untracked.attached.max))",
  "  attached / detached = \(.bulk_untracked.attached_vs_detached * 1000 | round / 1000)   (target >= 0.99)"' "$RES"
echo "results: $RES"
