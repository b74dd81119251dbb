#!/usr/bin/env bash
# Runs the parser fuzzer for a bounded time from the seed corpus, with the
# dictionary. New inputs go to a scratch corpus under .output, never into
# the committed seeds. Usage: run.sh FUZZER SECONDS
# Fails on a finding (a non-zero exit), and on a run that fuzzed nothing: no
# final stats, or zero inputs executed.
set -uo pipefail
if [ $# -ne 2 ] || ! [[ $2 =~ ^[1-9][0-9]*$ ]]; then
	echo "usage: $0 FUZZER SECONDS (SECONDS > 0: libFuzzer takes 0 as no limit)" >&2
	exit 2
fi
fuzzer=$1 seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$(dirname "$fuzzer")" && pwd) || exit 1
mkdir -p "$out/fuzz-corpus" || exit 1
log=$out/fuzz.log
echo "== fuzzing the parser for ${seconds}s (libFuzzer, ASan+UBSan)"
"$fuzzer" -max_total_time="$seconds" -max_len=1024 -dict="$here/proxy.dict" -print_final_stats=1 \
	-artifact_prefix="$out/fuzz-crash-" "$out/fuzz-corpus" "$here/corpus" > "$log" 2>&1
rc=$?
# libFuzzer's final stats (-print_final_stats=1), and any finding.
grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|ERROR|invariant failed|SUMMARY' "$log"
if [ "$rc" -ne 0 ]; then
	echo "FUZZER FOUND A PROBLEM (exit $rc); full log: $log; input saved as $out/fuzz-crash-*"
	tail -40 "$log"
	exit "$rc"
fi
units=$(awk '$1 == "stat::number_of_executed_units:" { print $2 }' "$log")
if ! [[ $units =~ ^[0-9]+$ ]]; then
	echo "FAIL: no stat::number_of_executed_units in the fuzzer's final stats; full log: $log"
	tail -20 "$log"
	exit 1
fi
if [ "$units" -eq 0 ]; then
	echo "FAIL: the fuzzer executed no input in ${seconds}s; full log: $log"
	tail -20 "$log"
	exit 1
fi
echo "PASS: $units inputs in ${seconds}s, no finding"
