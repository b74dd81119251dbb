#!/usr/bin/env bash
# timed.sh NAME COMMAND...: run COMMAND, then say how long it took ("time: NAME 12.3 s"),
# also appended to $TIMES_FILE if set (make test prints them all at the end).
# The exit status is COMMAND's.
set -u
name=$1
shift
start=$(date +%s%N)
"$@"
rc=$?
line=$(awk -v n="$name" -v t=$(($(date +%s%N) - start)) -v rc=$rc \
	'BEGIN { printf "time: %-12s %7.1f s%s", n, t / 1e9, rc ? "  (failed)" : "" }')
echo "$line"
[ -z "${TIMES_FILE:-}" ] || { mkdir -p "$(dirname "$TIMES_FILE")" && echo "$line" >> "$TIMES_FILE"; }
exit $rc
