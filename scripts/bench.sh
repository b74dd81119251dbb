#!/usr/bin/env bash
# Network benchmarks of `make bench` (after the codec benchmark). All figures
# come from one run, configurations alternated round by round, medians of
# ROUNDS (default 5) with min and max:
#  - connection rate (connect, header, 100-byte request, 100-byte reply, close)
#    for a plain server without header, the same ppbpf_accept server parsing in
#    userspace (nothing attached), and with the kernel side attached;
#  - bulk loopback throughput with ppbpf attached to the sender's and the
#    receiver's cgroup but no policy matching, against nothing attached: the
#    ingress hook's cost on untracked traffic; with, as a control, an empty
#    ingress program attached (what the cgroup hook itself costs).
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
new_cgroup CG_E bench-empty
new_pin_dir PIN bench
FLOOR=/sys/fs/bpf/ppbpf-test-$$-floor
CLEANUP+=("bpftool cgroup detach '$CG_E' ingress pinned '$FLOOR'" "rm -f '$FLOOR'")
bpftool prog load "$OUT/bpf/hook_floor.bpf.o" "$FLOOR" type cgroup/skb
bpftool cgroup attach "$CG_E" ingress pinned "$FLOOR" multi
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
		out=$(in_cgroup "$CG_U" "$B" rate "$port" "$hdr" "$SECS" "$THREADS")
		[ "$(jq .failed <<< "$out")" = 0 ] || fail "$mode: failed or wrong answers: $out"
		v=$(jq .per_second <<< "$out")
		rate[$mode]="${rate[$mode]:-} $v"
		printf '  round %d %-10s %10.0f conn/s\n' "$r" "$mode" "$v"
	done
done
[ "$("$CLI" status --pin-dir "$PIN" --json | jq '.counters.v2 > 0 and .counters.error_v2 == 0')" = true ] ||
	fail "the kernel side did not parse the benchmark's headers"

# One bulk transfer in a cgroup, sender and receiver on their own CPUs; prints "Gbit/s cpu_ns_per_byte".
bulk_run() {
	local cg=$1 port
	port=$(free_port)
	in_cgroup "$cg" taskset -c 0 "$B" sink "$port" > "$OUT/bench-sink.json" &
	local sink=$!
	for _ in $(seq 50); do ss -Htln "sport = :$port" | grep -q . && break; sleep 0.05; done
	local send_cpu
	send_cpu=$(in_cgroup "$cg" taskset -c 1 "$B" bulk "$port" "$BYTES" | jq .cpu_seconds)
	wait $sink
	jq -r --argjson s "$send_cpu" '"\(.gbit_per_second) \((.cpu_seconds + $s) * 1e9 / .bytes)"' "$OUT/bench-sink.json"
}

declare -A bulk cpu
echo "bulk throughput, untracked port: $ROUNDS rounds x $((BYTES >> 20)) MiB, configurations alternated"
for r in $(seq "$ROUNDS"); do
	for where in detached empty attached; do
		case $where in
		detached) cg=$CG_U ;;
		empty) cg=$CG_E ;;
		attached) cg=$CG_K ;;
		esac
		read -r g c < <(bulk_run "$cg")
		bulk[$where]="${bulk[$where]:-} $g"
		cpu[$where]="${cpu[$where]:-} $c"
		printf '  round %d %-9s %8.2f Gbit/s  %.4f CPU ns/byte\n' "$r" "$where" "$g" "$c"
	done
done

# median/min/max of a list of numbers, as JSON
stats() { printf '%s\n' $1 | jq -s 'sort | {median: .[length / 2 | floor], min: .[0], max: .[-1], runs: .}'; }
# median of the round-by-round ratios a[i] / b[i]: neighbours in time, so drift cancels
ratio() { jq -n --argjson a "[$(echo $1 | tr ' ' ',')]" --argjson b "[$(echo $2 | tr ' ' ',')]" \
	'[range($a | length) | $a[.] / $b[.]] | sort | .[length / 2 | floor]'; }
jq -n --argjson plain "$(stats "${rate[plain]}")" --argjson user "$(stats "${rate[userspace]}")" \
	--argjson kern "$(stats "${rate[kernel]}")" --argjson det "$(stats "${bulk[detached]}")" \
	--argjson att "$(stats "${bulk[attached]}")" --argjson cdet "$(stats "${cpu[detached]}")" \
	--argjson catt "$(stats "${cpu[attached]}")" --argjson emp "$(stats "${bulk[empty]}")" \
	--argjson cemp "$(stats "${cpu[empty]}")" \
	--argjson ed "$(ratio "${bulk[empty]}" "${bulk[detached]}")" \
	--argjson cde "$(ratio "${cpu[detached]}" "${cpu[empty]}")" \
	--argjson cea "$(ratio "${cpu[empty]}" "${cpu[attached]}")" \
	--argjson ku "$(ratio "${rate[kernel]}" "${rate[userspace]}")" \
	--argjson kp "$(ratio "${rate[kernel]}" "${rate[plain]}")" \
	--argjson ad "$(ratio "${bulk[attached]}" "${bulk[detached]}")" \
	--argjson cad "$(ratio "${cpu[detached]}" "${cpu[attached]}")" \
	'{connection_rate: {plain: $plain, userspace: $user, kernel: $kern,
	   kernel_vs_userspace: $ku, kernel_vs_plain: $kp},
	  bulk_untracked: {detached: $det, empty_program: $emp, attached: $att, attached_vs_detached: $ad,
	   empty_vs_detached: $ed,
	   cpu_ns_per_byte: {detached: $cdet, empty_program: $cemp, attached: $catt},
	   cpu_detached_vs_attached: $cad, cpu_detached_vs_empty: $cde, cpu_empty_vs_attached: $cea}}' > "$RES"

jq -r '
  def r3: . * 1000 | round / 1000;
  "\nconnection rate (median conn/s, min-max); ratios are medians of per-round ratios",
  "  plain server, no header, nothing attached   \(.connection_rate.plain.median | floor)  (\(.connection_rate.plain.min | floor)-\(.connection_rate.plain.max | floor))",
  "  ppbpf_accept, userspace parsing (fallback)  \(.connection_rate.userspace.median | floor)  (\(.connection_rate.userspace.min | floor)-\(.connection_rate.userspace.max | floor))",
  "  ppbpf_accept + ppbpf_get, kernel attached   \(.connection_rate.kernel.median | floor)  (\(.connection_rate.kernel.min | floor)-\(.connection_rate.kernel.max | floor))",
  "  kernel / userspace = \(.connection_rate.kernel_vs_userspace | r3)   (target >= 1.0)",
  "  kernel / plain     = \(.connection_rate.kernel_vs_plain | r3)   (target >= 0.95)",
  "bulk throughput on an untracked port (median Gbit/s, min-max)",
  "  nothing attached  \(.bulk_untracked.detached.median)  (\(.bulk_untracked.detached.min)-\(.bulk_untracked.detached.max))",
  "  ppbpf attached    \(.bulk_untracked.attached.median)  (\(.bulk_untracked.attached.min)-\(.bulk_untracked.attached.max))",
  "  empty program     \(.bulk_untracked.empty_program.median)  (\(.bulk_untracked.empty_program.min)-\(.bulk_untracked.empty_program.max))   (control: the cgroup hook itself)",
  "  attached / detached = \(.bulk_untracked.attached_vs_detached | r3)   (target >= 0.99)",
  "  empty program / detached = \(.bulk_untracked.empty_vs_detached | r3)",
  "  CPU per byte, detached / attached = \(.bulk_untracked.cpu_detached_vs_attached | r3);  detached / empty program = \(.bulk_untracked.cpu_detached_vs_empty | r3);  empty program / attached = \(.bulk_untracked.cpu_empty_vs_attached | r3)"' "$RES"
echo "results: $RES"
