# Shared by the network benchmarks (bench.sh, bench_transparent.sh, bench_send.sh), after
# tests/integration/lib.sh: the knobs, the tools, CPU time from /proc/stat, a veth pair between
# two network namespaces, and the jq functions that turn per-round samples into figures.

# bench_setup WHAT ROUNDS_DEFAULT NAME TOOL...: root and the tools, or a skip; the knobs
# (QUICK, BENCH_SECONDS, BENCH_BYTES, ROUNDS: at least 5) into SECS, BYTES, ROUNDS; B (bench_net),
# RES ($OUT/NAME.json), SAMPLES (emptied) and TMP (removed at exit).
bench_setup() {
	local what=$1 rounds=$2 name=$3 tool
	shift 3
	need_root "$what"
	for tool in "$@"; do
		command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/deps.sh bench installs it)"
	done
	QUICK=${QUICK:-0}
	if [ "$QUICK" = 1 ]; then
		SECS=${BENCH_SECONDS:-0.4} BYTES=${BENCH_BYTES:-268435456}
	else
		SECS=${BENCH_SECONDS:-2} BYTES=${BENCH_BYTES:-1073741824}
	fi
	ROUNDS=${ROUNDS:-$rounds}
	[ "$ROUNDS" -ge 5 ] || fail "ROUNDS must be at least 5"
	B=$OUT/bench_net
	RES=$OUT/$name.json
	SAMPLES=$OUT/$name-samples.jsonl
	TMP=$(mktemp -d "/tmp/ppbpf-$name.XXXXXX")
	CLEANUP+=("rm -rf '$TMP'")
	: > "$SAMPLES"
}

# Busy CPU time of the whole machine, in ticks (TICK_US microseconds each).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# bench_veth_pair TAG: namespaces NC (the client, 203.0.113.1) and NS (the server, SRV=203.0.113.2)
# joined by a veth pair whose ends are named after TAG.
bench_veth_pair() {
	local tag=$1
	new_netns NC client
	new_netns NS server
	ip link add "$tag$$c" netns "$NC" type veth peer name "$tag$$s" netns "$NS"
	ip -n "$NC" addr add 203.0.113.1/24 dev "$tag$$c"
	ip -n "$NS" addr add 203.0.113.2/24 dev "$tag$$s"
	ip -n "$NC" link set "$tag$$c" up
	ip -n "$NS" link set "$tag$$s" up
	SRV=203.0.113.2
}

# jq: a series' median, min and max; the per-round ratios of two series; one configuration's series.
# shellcheck disable=SC2016 # (jq's $variables)
BENCH_JQ='
  def stats: sort | {median: .[length / 2 | floor], min: .[0], max: .[-1], runs: .};
  def ratio($xs; $base): [range($xs | length) | $xs[.] / $base[.]] | stats;
  def series($kind; $conc; $mode; $f):
    [.[] | select(.kind == $kind and .mode == $mode and ($conc == null or .conc == $conc))] | sort_by(.round) | map(.[$f]);
'
