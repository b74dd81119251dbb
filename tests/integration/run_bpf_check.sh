#!/usr/bin/env bash
# Runs the in-kernel parser check. A skip is loud, and fatal where
# PPBPF_REQUIRE_ALL=1 (CI): there, nothing may skip.
set -u
"$1"
rc=$?
if [ "$rc" -eq 77 ]; then
	echo "*** SKIPPED: in-kernel parser check (needs root and BPF) ***"
	[ "${PPBPF_REQUIRE_ALL:-0}" = 1 ] && { echo "PPBPF_REQUIRE_ALL=1: a skip is a failure"; exit 1; }
	exit 0
fi
exit "$rc"
