#!/usr/bin/env bash
# Runs one fuzz target for a bounded time from its seed corpus and dictionary:
#   run.sh FUZZER SECONDS NAME MAX_LEN
# NAME picks tests/fuzz/corpus-NAME and tests/fuzz/NAME.dict (if there is one).
# New inputs go to a scratch corpus under .output, never into the seeds.
# Fails on a finding (a non-zero exit), and on a run that fuzzed nothing: no
# final stats, or zero inputs executed.
set -uo pipefail
if [ $# -ne 4 ] || ! [[ $2 =~ ^[1-9][0-9]*$ ]] || ! [[ $3 =~ ^[a-z]+$ ]] || ! [[ $4 =~ ^[1-9][0-9]*$ ]]; then
	echo "usage: $0 FUZZER SECONDS NAME MAX_LEN (SECONDS > 0: libFuzzer takes 0 as no limit)" >&2
	exit 2
fi
fuzzer=$1 seconds=$2 name=$3 max_len=$4
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$(dirname "$fuzzer")" && pwd) || exit 1
mkdir -p "$out/fuzz-corpus-$name" || exit 1
log=$out/fuzz-$name.log
dict=()
[ ! -f "$here/$name.dict" ] || dict=(-dict="$here/$name.dict")
echo "== fuzzing $name for ${seconds}s (libFuzzer, ASan+UBSan)"
"$fuzzer" -max_total_time="$seconds" -max_len="$max_len" "${dict[@]}" -print_final_stats=1 \
	-artifact_prefix="$out/fuzz-$name-crash-" "$out/fuzz-corpus-$name" "$here/corpus-$name" > "$log" 2>&1
rc=$?
# libFuzzer's final stats (-print_final_stats=1), and any finding.
grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|ERROR|invariant failed|SUMMARY' "$log"
if [ "$rc" -ne 0 ]; then
	echo "FUZZER FOUND A PROBLEM (exit $rc); full log: $log; input saved as $out/fuzz-$name-crash-*"
	tail -40 "$log"
	exit "$rc"
fi
units=$(awk '$1 == "stat::number_of_executed_units:" { print $2 }' "$log")
if ! [[ $units =~ ^[0-9]+$ ]] || [ "$units" -eq 0 ]; then
	echo "FAIL: the $name fuzzer executed no input in ${seconds}s (or printed no final stats); full log: $log"
	tail -20 "$log"
	exit 1
fi
echo "PASS: $units inputs in ${seconds}s, no finding"
