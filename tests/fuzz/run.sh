#!/usr/bin/env bash
# Runs the parser fuzzer for a bounded time from the seed corpus, with the
# dictionary. New inputs go to a scratch corpus under .output, never into
# the committed seeds. Usage: run.sh FUZZER SECONDS
set -uo pipefail
fuzzer=$1 seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$(dirname "$fuzzer")" && pwd)
mkdir -p "$out/fuzz-corpus"
echo "== fuzzing the parser for ${seconds}s (libFuzzer, ASan+UBSan)"
"$fuzzer" -max_total_time="$seconds" -max_len=1024 -dict="$here/proxy.dict" -print_final_stats=1 \
	-artifact_prefix="$out/fuzz-crash-" "$out/fuzz-corpus" "$here/corpus" > "$out/fuzz.log" 2>&1
rc=$?
grep -E 'stat::number_of_executed_runs|stat::new_units_added|ERROR|invariant failed|SUMMARY' "$out/fuzz.log"
if [ "$rc" -ne 0 ]; then
	echo "FUZZER FOUND A PROBLEM (exit $rc); full log: $out/fuzz.log; input saved as $out/fuzz-crash-*"
	tail -40 "$out/fuzz.log"
fi
exit "$rc"
