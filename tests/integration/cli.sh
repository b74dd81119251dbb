#!/usr/bin/env bash
# Format strings carry \r, \n and \xHH escapes on purpose (SC2059), and the
# bodies given to check() are expanded when eval'ed, not when quoted (SC2016).
# shellcheck disable=SC2059,SC2016
# SPDX-License-Identifier: MIT
#
# Integration tests of the ppbpf command line against its documented contract
# (the --help texts of `ppbpf` and its commands).
#
# Usage: tests/integration/cli.sh path/to/ppbpf
#
# Every check prints one PASS/FAIL line (SKIP where it cannot run); the script
# ends with a summary and exits non-zero if any check failed (or was skipped,
# with PPBPF_REQUIRE_ALL=1). Needs bash and jq; uses xxd when present. Only
# section 9 loads anything: as root, with strace and bpftool, in a cgroup and a
# pin folder of its own, removed at exit; the rest never attaches.
set -eEuo pipefail
# An unexpected failure outside a check ends the script: say where.
trap 'echo "FAIL  cli.sh line $LINENO: \`$BASH_COMMAND\` exited with status $?" >&2' ERR

if [[ $# -ne 1 ]]; then
	echo "usage: $0 path/to/ppbpf" >&2
	exit 2
fi
BIN=$1
[[ $BIN == */* ]] || BIN=./$BIN
if [[ ! -x $BIN ]]; then
	echo "$0: $BIN is not an executable" >&2
	exit 2
fi
command -v jq >/dev/null || { echo "$0: jq is required" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ppbpf-cli.XXXXXX")
TEST_CG=    # section 9's cgroup and pin folder, and its daemon while it runs
TEST_PIN=
DAEMON=
cleanup() {
	[[ -z $DAEMON ]] || kill -TERM "$DAEMON" 2>/dev/null || true
	[[ -z $TEST_PIN ]] || "$BIN" detach --pin-dir "$TEST_PIN" >/dev/null 2>&1 || true
	[[ -z $TEST_CG ]] || rmdir "$TEST_CG" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
OUT=$TMP/stdout
ERR=$TMP/stderr

PASSED=0
FAILED=0
SKIPPED=0
FAILED_NAMES=()

# ---- helpers -------------------------------------------------------------------

pass() {
	PASSED=$((PASSED + 1))
	printf 'PASS  %s\n' "$1"
}

# fail NAME WHY: also shows what the command wrote.
fail() {
	FAILED=$((FAILED + 1))
	FAILED_NAMES+=("$1")
	printf 'FAIL  %s: %s\n' "$1" "$2"
	# (|| true: a stage ended early by head's exit must not end the script under pipefail)
	if [[ -s $OUT ]]; then
		head -c 600 "$OUT" | tr -c '[:print:]\n' '?' | head -n 5 | sed 's/^/        stdout| /' || true
	fi
	if [[ -s $ERR ]]; then
		head -c 300 "$ERR" | tr -c '[:print:]\n' '?' | head -n 3 | sed 's/^/        stderr| /' || true
	fi
}

# skip NAME WHY: a check that cannot run here.
skip() {
	SKIPPED=$((SKIPPED + 1))
	printf 'SKIP  %s: %s\n' "$1" "$2"
}

# run CMD...: runs it with stdout in $OUT, stderr in $ERR, exit code in RC.
run() {
	RC=0
	"$@" >"$OUT" 2>"$ERR" || RC=$?
}

# Bytes from hex text (whitespace allowed), without depending on xxd.
unhex() {
	local h
	h=$(tr -d ' \n\t:')
	if command -v xxd >/dev/null; then
		printf '%s' "$h" | xxd -r -p
		return
	fi
	local i esc=
	for ((i = 0; i < ${#h}; i += 2)); do
		esc+="\\x${h:i:2}"
	done
	printf "$esc"
}

# Lowercase hex text of stdin, one line.
tohex() {
	od -An -v -tx1 | tr -d ' \n'
}

# The ppbpf binary, as a command for the checks below.
pp() { "$BIN" "$@"; }

# parse_bytes FORMAT [PARSE-OPTIONS...]: printf FORMAT (\r, \n, \xHH) into `ppbpf parse`.
parse_bytes() {
	local fmt=$1
	shift
	printf "$fmt" | "$BIN" parse "$@"
}

# parse_stdin_hex HEX [PARSE-OPTIONS...]: the bytes of HEX on stdin of `ppbpf parse`.
parse_stdin_hex() {
	local hex=$1
	shift
	printf '%s' "$hex" | unhex | "$BIN" parse "$@"
}

# parse_hex HEX [PARSE-OPTIONS...]
parse_hex() {
	local hex=$1
	shift
	"$BIN" parse --hex "$hex" "$@"
}

# rt_raw BUILD-OPTIONS...: `ppbpf build --raw ... | ppbpf parse`.
rt_raw() {
	"$BIN" build "$@" --raw | "$BIN" parse
}

# rt_hex BUILD-OPTIONS...: `ppbpf parse --hex "$(ppbpf build ...)"`.
rt_hex() {
	local hex
	hex=$("$BIN" build "$@") || return
	"$BIN" parse --hex "$hex"
}

# flip_parse OFFSET BUILD-OPTIONS...: build as hex, XOR byte OFFSET with 0x01, parse.
flip_parse() {
	local off=$1 hex b
	shift
	hex=$("$BIN" build "$@") || return
	b=${hex:$((2 * off)):2}
	b=$(printf '%02x' $((0x$b ^ 0x01)))
	hex=${hex:0:$((2 * off))}$b${hex:$((2 * off + 2))}
	"$BIN" parse --hex "$hex"
}

# json_verdict JQ-FILTER: "ok" if $OUT holds exactly one JSON value, an object,
# and nothing else, and JQ-FILTER is true of it; "filter" if only the filter
# fails; anything else if $OUT is not a single object. One jq run: jq's start-up
# dominates the run time of this script.
json_verdict() {
	jq -r -s "if length != 1 or (.[0] | type) != \"object\" then \"not-object\"
		  elif (.[0] | $1) then \"ok\" else \"filter\" end" "$OUT" 2>/dev/null || echo not-json
}

# expect_json NAME CODE JQ-FILTER CMD...: exit code CODE, stdout exactly one JSON
# object, and JQ-FILTER true of it.
expect_json() {
	local name=$1 code=$2 filter=$3 verdict
	shift 3
	run "$@"
	verdict=$(json_verdict "$filter")
	if [[ $RC -ne $code ]]; then
		fail "$name" "exit code $RC, expected $code"
	elif [[ $verdict == filter ]]; then
		fail "$name" "JSON does not satisfy: $(printf '%s' "$filter" | tr -s '\t\n' '  ')"
	elif [[ $verdict != ok ]]; then
		fail "$name" "stdout is not exactly one JSON object"
	else
		pass "$name"
	fi
}

# expect_ok NAME JQ-FILTER CMD...: a parse that succeeds.
expect_ok() {
	local name=$1 filter=$2
	shift 2
	expect_json "$name" 0 ".status == \"ok\" and ($filter)" "$@"
}

# expect_error NAME ERROR-NAME CMD...: a parse that fails with this stable name.
expect_error() {
	local name=$1 err=$2
	shift 2
	expect_json "$name" 1 \
		".status == \"error\" and .error == \"$err\" and (.message | type == \"string\" and length > 0)
		 and (keys | sort) == [\"error\", \"message\", \"status\"]" "$@"
}

# expect_incomplete NAME NEED CMD...
expect_incomplete() {
	local name=$1 need=$2
	shift 2
	expect_json "$name" 3 ". == {\"status\": \"incomplete\", \"need\": $need}" "$@"
}

# expect_exit NAME CODE CMD...: only the exit code.
expect_exit() {
	local name=$1 code=$2
	shift 2
	run "$@"
	if [[ $RC -ne $code ]]; then
		fail "$name" "exit code $RC, expected $code"
	else
		pass "$name"
	fi
}

# expect_usage NAME CMD...: exit code 2, nothing on stdout, a message on stderr.
expect_usage() {
	local name=$1
	shift
	run "$@"
	if [[ $RC -ne 2 ]]; then
		fail "$name" "exit code $RC, expected 2"
	elif [[ -s $OUT ]]; then
		fail "$name" "stdout is not empty"
	elif [[ ! -s $ERR ]]; then
		fail "$name" "no message on stderr"
	else
		pass "$name"
	fi
}

# expect_stdout NAME EXPECTED CMD...: exit code 0 and stdout exactly EXPECTED
# followed by one newline.
expect_stdout() {
	local name=$1 want=$2
	shift 2
	run "$@"
	if [[ $RC -ne 0 ]]; then
		fail "$name" "exit code $RC, expected 0"
	elif ! printf '%s\n' "$want" | cmp -s - "$OUT"; then
		fail "$name" "stdout is not '$want' + newline"
	else
		pass "$name"
	fi
}

# expect_help NAME CMD...: exit code 0, a usage line and an "Examples" section on stdout.
expect_help() {
	local name=$1
	shift
	run "$@"
	if [[ $RC -ne 0 ]]; then
		fail "$name" "exit code $RC, expected 0"
	elif ! grep -q '^Usage: ppbpf' "$OUT"; then
		fail "$name" "no 'Usage: ppbpf' line on stdout"
	elif ! grep -q '^Examples:' "$OUT"; then
		fail "$name" "no 'Examples:' section on stdout"
	else
		pass "$name"
	fi
}

# check NAME COMMAND-STRING: a free-form check; passes when the command succeeds.
# errexit does not hold inside (it runs as a condition): chain the steps with &&,
# and compare outputs only once each command has succeeded (pipefail holds). No
# `cmd | grep -q`: grep may exit before cmd has written all, which fails cmd.
check() {
	local name=$1
	shift
	if (eval "$1") >"$OUT" 2>"$ERR"; then
		pass "$name"
	else
		fail "$name" "check failed: $1"
	fi
}

# jq: no address or port key present.
NOADDR='(has("src_addr") or has("dst_addr") or has("src_port") or has("dst_port") or has("transport")) | not'

SIG=0d0a0d0a000d0a515549540a

# ---- 1. known inputs ---------------------------------------------------------------
echo "# known inputs"

V1_TCP4='PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n'
expect_ok "v1 TCP4 + payload: exact object" \
	'. == {"status":"ok","version":1,"command":"PROXY","family":"TCP4",
	       "src_addr":"192.0.2.1","dst_addr":"198.51.100.2","src_port":51000,
	       "dst_port":443,"header_len":45,"tlvs":[]}' \
	parse_bytes "${V1_TCP4}GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
expect_ok "v1 TCP4 via --hex" \
	'.version == 1 and .family == "TCP4" and .header_len == 45 and .src_port == 51000' \
	parse_hex "$(printf "$V1_TCP4" | tohex)"
expect_ok "v1 TCP6" \
	'. == {"status":"ok","version":1,"command":"PROXY","family":"TCP6",
	       "src_addr":"2001:db8::1","dst_addr":"2001:db8::2","src_port":51000,
	       "dst_port":443,"header_len":46,"tlvs":[]}' \
	parse_bytes 'PROXY TCP6 2001:db8::1 2001:db8::2 51000 443\r\npayload'
expect_ok "v1 UNKNOWN: no address keys" \
	". == {\"status\":\"ok\",\"version\":1,\"command\":\"PROXY\",\"family\":\"UNKNOWN\",
	       \"header_len\":15,\"tlvs\":[]} and ($NOADDR)" \
	parse_bytes 'PROXY UNKNOWN\r\n'
expect_ok "v1 UNKNOWN with trailing fields: ignored, no address keys" \
	".family == \"UNKNOWN\" and .header_len == 49 and ($NOADDR)" \
	parse_bytes 'PROXY UNKNOWN 2001:db8::1 2001:db8::2 51000 443\r\nxyz'

# v2 PROXY TCP4 192.0.2.1:51000 -> 198.51.100.2:443
V2_TCP4=${SIG}2111000c'c0000201''c6336402''c738''01bb'
expect_ok "v2 TCP4 via --hex: exact object" \
	'. == {"status":"ok","version":2,"command":"PROXY","family":"TCP4",
	       "src_addr":"192.0.2.1","dst_addr":"198.51.100.2","src_port":51000,
	       "dst_port":443,"header_len":28,"tlvs":[]}' \
	parse_hex "$V2_TCP4"
expect_ok "v2 TCP4 on stdin + payload" \
	'.version == 2 and .family == "TCP4" and .header_len == 28 and .dst_addr == "198.51.100.2"' \
	parse_stdin_hex "${V2_TCP4}474554202f20485454502f312e310d0a"
expect_ok "v2 TCP4 via --hex with ' ' and ':' separators" \
	'.family == "TCP4" and .header_len == 28 and .src_port == 51000' \
	parse_hex "$(printf '%s' "$V2_TCP4" | sed 's/../&:/g; s/:$//; s/:\(..\):/:\1 /g')"
expect_ok "v2 LOCAL: command LOCAL, family UNSPEC, no address keys" \
	". == {\"status\":\"ok\",\"version\":2,\"command\":\"LOCAL\",\"family\":\"UNSPEC\",
	       \"header_len\":16,\"tlvs\":[]} and ($NOADDR)" \
	parse_hex "${SIG}20000000"
expect_ok "v2 LOCAL carrying a TCP4 block: addresses ignored" \
	".command == \"LOCAL\" and .family == \"UNSPEC\" and .header_len == 28 and ($NOADDR)" \
	parse_hex "${SIG}2011000cc0000201c6336402c73801bb"

# Captured from HAProxy 2.6: CRC32C and UNIQUE_ID "abc-123".
HAPROXY=${SIG}2111001d7f0000027f000001981342690300041e77aca30500076162632d313233
expect_ok "HAProxy 2.6 header with CRC32C + UNIQUE_ID" \
	'.version == 2 and .command == "PROXY" and .family == "TCP4"
	 and .src_addr == "127.0.0.2" and .src_port == 38931
	 and .dst_addr == "127.0.0.1" and .dst_port == 17001 and .header_len == 45
	 and (.tlvs | length == 2) and (.tlvs | map(.type) == [3, 5])
	 and .tlvs[0].hex == "1e77aca3"
	 and .tlvs[1].hex == "6162632d313233" and .tlvs[1].text == "abc-123"' \
	parse_hex "$HAPROXY"
expect_ok "HAProxy 2.6 header on stdin" \
	'.header_len == 45 and .tlvs[1].text == "abc-123"' \
	parse_stdin_hex "$HAPROXY"

# ---- 2. one input per error name ------------------------------------------------------
echo "# errors"

expect_error "not_proxy: HTTP request" not_proxy parse_bytes 'GET / HTTP/1.1\r\n\r\n'
expect_error "not_proxy: broken v2 signature" not_proxy parse_hex 0d0a0d0a000d0a515549540b2111000c
expect_error "too_large: v1 45 bytes, --max 44" too_large parse_bytes "$V1_TCP4" --max 44
expect_ok "v1 45 bytes, --max 45 is ok" '.header_len == 45' parse_bytes "$V1_TCP4" --max 45
expect_error "too_large: v2 28 bytes, --max 27" too_large parse_hex "$V2_TCP4" --max 27
expect_ok "v2 28 bytes, --max 28 is ok" '.header_len == 28' parse_hex "$V2_TCP4" --max 28
expect_error "v1_too_long: no CRLF within 107 bytes" v1_too_long \
	parse_bytes "PROXY UNKNOWN $(printf '%0100d' 0)\r\n"
expect_error "v1_bad_proto: UDP4" v1_bad_proto parse_bytes 'PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n'
expect_error "v1_bad_proto: TCP5" v1_bad_proto parse_bytes 'PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n'
expect_error "v1_syntax: missing field" v1_syntax parse_bytes 'PROXY TCP4 192.0.2.1 198.51.100.2 51000\r\n'
expect_error "v1_syntax: doubled space" v1_syntax parse_bytes 'PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n'
expect_error "v1_bad_crlf: LF only" v1_bad_crlf parse_bytes 'PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\n'
expect_error "v1_bad_crlf: CR CR" v1_bad_crlf parse_bytes 'PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\r'
expect_error "v1_bad_addr: octet 256" v1_bad_addr parse_bytes 'PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n'
expect_error "v1_bad_addr: IPv6 in TCP4" v1_bad_addr parse_bytes 'PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n'
expect_error "v1_bad_addr: two '::' in TCP6" v1_bad_addr parse_bytes 'PROXY TCP6 2001:db8::1::2 2001:db8::2 1 2\r\n'
expect_error "v1_bad_port: 65536" v1_bad_port parse_bytes 'PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n'
expect_error "v1_bad_port: leading zero" v1_bad_port parse_bytes 'PROXY TCP4 192.0.2.1 198.51.100.2 51000 0443\r\n'
expect_error "v2_bad_version: version 1" v2_bad_version parse_hex "${SIG}1111000cc0000201c6336402c73801bb"
expect_error "v2_bad_command: command 2" v2_bad_command parse_hex "${SIG}2211000cc0000201c6336402c73801bb"
expect_error "v2_bad_family: family 4" v2_bad_family parse_hex "${SIG}2141000cc0000201c6336402c73801bb"
expect_error "v2_bad_family: transport 3" v2_bad_family parse_hex "${SIG}2113000cc0000201c6336402c73801bb"
expect_error "v2_short_addr: TCP4 with length 8" v2_short_addr parse_hex "${SIG}21110008c0000201c6336402"
expect_error "v2_short_addr: TCP6 with length 12" v2_short_addr parse_hex "${SIG}2121000cc0000201c6336402c73801bb"
# TCP4 block + TLV type 1 announcing 5 bytes with only 1 present.
expect_error "tlv_truncated: value past the end" tlv_truncated \
	parse_hex "${SIG}21110010c0000201c6336402c73801bb""01000561"
expect_error "tlv_truncated: 2 stray bytes" tlv_truncated \
	parse_hex "${SIG}2111000ec0000201c6336402c73801bb""0100"
expect_error "crc32c_bad_len: 3-byte CRC32C" crc32c_bad_len \
	parse_hex "${SIG}21110012c0000201c6336402c73801bb""03000300000000"
expect_error "crc32c_duplicate: two CRC32C TLVs" crc32c_duplicate \
	parse_hex "${SIG}2111001ac0000201c6336402c73801bb""03000400000000""03000400000000"
# The HAProxy header with the low byte of the source port changed (0x13 -> 0x14).
expect_error "crc32c_mismatch: HAProxy header, port byte changed" crc32c_mismatch \
	parse_hex "${HAPROXY:0:50}14${HAPROXY:52}"
expect_error "unique_id_too_long: 129 bytes" unique_id_too_long \
	parse_hex "${SIG}21110090c0000201c6336402c73801bb""050081$(printf '61%.0s' {1..129})"
expect_ok "UNIQUE_ID of 128 bytes is ok" '.tlvs[0].type == 5 and (.tlvs[0].text | length == 128)' \
	parse_hex "${SIG}2111008fc0000201c6336402c73801bb""050080$(printf '61%.0s' {1..128})"
expect_error "ssl_malformed: SSL value of 4 bytes" ssl_malformed \
	parse_hex "${SIG}21110013c0000201c6336402c73801bb""20000401000000"
expect_error "ssl_malformed: sub-TLV overrun" ssl_malformed \
	parse_hex "${SIG}21110017c0000201c6336402c73801bb""2000080100000000210005"

# ---- 3. incomplete -----------------------------------------------------------------
echo "# incomplete"

expect_incomplete "empty stdin" 15 pp parse </dev/null
expect_incomplete "empty --hex" 15 parse_hex ''
expect_incomplete "v1 TCP4 missing its LF" 1 parse_bytes 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r'
expect_incomplete "v2 signature only (12 bytes)" 4 parse_hex "$SIG"
expect_incomplete "v2 signature only, on stdin" 4 parse_stdin_hex "$SIG"
expect_incomplete "v2 TCP4 missing 4 address bytes" 4 parse_hex "${SIG}2111000cc0000201c6336402"

# ---- 4. build -> parse round trips -----------------------------------------------------
echo "# build -> parse"

# roundtrip NAME JQ-FILTER BUILD-OPTIONS...: both through a raw pipe and through --hex.
roundtrip() {
	local name=$1 filter=$2
	shift 2
	expect_ok "$name (raw pipe)" "$filter" rt_raw "$@"
	expect_ok "$name (--hex)" "$filter" rt_hex "$@"
}

roundtrip "v1 TCP4" \
	'. == {"status":"ok","version":1,"command":"PROXY","family":"TCP4",
	       "src_addr":"192.0.2.1","dst_addr":"198.51.100.2","src_port":51000,
	       "dst_port":443,"header_len":45,"tlvs":[]}' \
	--version 1 --src-addr 192.0.2.1 --dst-addr 198.51.100.2 --src-port 51000 --dst-port 443
roundtrip "v1 TCP6" \
	'.version == 1 and .family == "TCP6" and .src_addr == "2001:db8::1"
	 and .dst_addr == "2001:db8:0:1::2" and .src_port == 0 and .dst_port == 65535' \
	--version 1 --family TCP6 --src-addr 2001:db8::1 --dst-addr 2001:DB8:0:1:0:0:0:2 \
	--src-port 0 --dst-port 65535
roundtrip "v1 UNKNOWN" \
	".version == 1 and .family == \"UNKNOWN\" and .header_len == 15 and ($NOADDR)" \
	--version 1 --family UNKNOWN
roundtrip "v2 TCP4" \
	'. == {"status":"ok","version":2,"command":"PROXY","family":"TCP4",
	       "src_addr":"192.0.2.1","dst_addr":"198.51.100.2","src_port":51000,
	       "dst_port":443,"header_len":28,"tlvs":[]}' \
	--src-addr 192.0.2.1 --dst-addr 198.51.100.2 --src-port 51000 --dst-port 443
roundtrip "v2 TCP6 (family from the address)" \
	'.version == 2 and .family == "TCP6" and .src_addr == "2001:db8::1"
	 and .dst_addr == "2001:db8::2" and .src_port == 1 and .dst_port == 2 and .header_len == 52' \
	--src-addr 2001:db8::1 --dst-addr 2001:db8::2 --src-port 1 --dst-port 2
roundtrip "v2 UDP4" \
	'.family == "UDP4" and .src_addr == "203.0.113.7" and .dst_addr == "198.51.100.9"
	 and .src_port == 5353 and .dst_port == 53 and .header_len == 28' \
	--family UDP4 --src-addr 203.0.113.7 --dst-addr 198.51.100.9 --src-port 5353 --dst-port 53
roundtrip "v2 UDP6" \
	'.family == "UDP6" and .src_addr == "2001:db8:1::7" and .dst_addr == "2001:db8:2::9"
	 and .src_port == 443 and .dst_port == 4433 and .header_len == 52' \
	--family UDP6 --src-addr 2001:db8:1::7 --dst-addr 2001:db8:2::9 --src-port 443 --dst-port 4433
roundtrip "v2 UNIX stream" \
	'.family == "UNIX" and .transport == "STREAM" and .src_addr == "/run/x.sock"
	 and .dst_addr == "@abstract" and .header_len == 232
	 and (has("src_port") or has("dst_port") | not)' \
	--family UNIX --src-addr /run/x.sock --dst-addr @abstract
roundtrip "v2 UNIX dgram" \
	'.family == "UNIX" and .transport == "DGRAM" and .src_addr == "@abstract"
	 and .dst_addr == "/run/x.sock" and .header_len == 232' \
	--family UNIX --transport DGRAM --src-addr @abstract --dst-addr /run/x.sock
roundtrip "v2 LOCAL" \
	". == {\"status\":\"ok\",\"version\":2,\"command\":\"LOCAL\",\"family\":\"UNSPEC\",
	       \"header_len\":16,\"tlvs\":[]}" \
	--command LOCAL
roundtrip "v2 LOCAL with TCP4 addresses: none printed" \
	".command == \"LOCAL\" and .family == \"UNSPEC\" and .header_len == 28 and ($NOADDR)" \
	--command LOCAL --src-addr 192.0.2.1 --dst-addr 198.51.100.2 --src-port 1 --dst-port 2
roundtrip "v2 UNSPEC" \
	". == {\"status\":\"ok\",\"version\":2,\"command\":\"PROXY\",\"family\":\"UNSPEC\",
	       \"header_len\":16,\"tlvs\":[]}" \
	--family UNSPEC
roundtrip "v2 TLVs: AUTHORITY, ALPN, UNIQUE_ID, NETNS, custom 0xF0" \
	'.family == "TCP4" and (.tlvs | map(.type) == [2, 1, 5, 48, 240])
	 and .tlvs[0].name == "AUTHORITY" and .tlvs[0].text == "example.com"
	 and .tlvs[0].hex == "6578616d706c652e636f6d"
	 and .tlvs[1].name == "ALPN" and .tlvs[1].hex == "6832" and .tlvs[1].text == "h2"
	 and .tlvs[2].name == "UNIQUE_ID" and .tlvs[2].text == "abc-123"
	 and .tlvs[3].name == "NETNS" and .tlvs[3].text == "blue"
	 and .tlvs[4].hex == "00deadbeef" and (.tlvs[4] | has("text") | not)
	 and .header_len == 28 + 14 + 5 + 10 + 7 + 8' \
	--src-addr 192.0.2.1 --dst-addr 198.51.100.2 --src-port 51000 --dst-port 443 \
	--tlv-text AUTHORITY:example.com --tlv ALPN:6832 --tlv-text UNIQUE_ID:abc-123 \
	--tlv-text NETNS:blue --tlv 0xF0:00deadbeef
roundtrip "v2 TLV types by number and empty value" \
	'(.tlvs | map(.type) == [2, 240, 4]) and .tlvs[0].text == "a.example"
	 and .tlvs[1].hex == "ff" and .tlvs[2].hex == ""' \
	--command LOCAL --tlv-text 2:a.example --tlv 240:FF --tlv NOOP:
roundtrip "v2 cloud TLVs: AWS, Azure, GCP" \
	'(.tlvs | map(.type) == [234, 238, 224])
	 and .tlvs[0].vpce_id == "vpce-08d2bf15fac5001c9"
	 and .tlvs[1].link_id == 305419896 and .tlvs[1].hex == "0178563412"
	 and .tlvs[2].psc_connection_id == "18446744073709551615"
	 and (.tlvs[2].psc_connection_id | type) == "string"
	 and .tlvs[2].hex == "ffffffffffffffff"' \
	--src-addr 192.0.2.1 --dst-addr 198.51.100.2 --src-port 1 --dst-port 2 \
	--aws-vpce-id vpce-08d2bf15fac5001c9 --azure-link-id 305419896 \
	--gcp-psc-id 18446744073709551615
roundtrip "v2 SSL with VERSION and CN sub-TLVs" \
	'(.tlvs | length == 1) and .tlvs[0].type == 32 and .tlvs[0].name == "SSL"
	 and .tlvs[0].client == 7 and .tlvs[0].verify == 1
	 and (.tlvs[0].sub | map(.name) == ["VERSION", "CN"])
	 and (.tlvs[0].sub | map(.type) == [33, 34])
	 and .tlvs[0].sub[0].text == "TLSv1.3" and .tlvs[0].sub[1].text == "client.example.com"' \
	--src-addr 2001:db8::1 --dst-addr 2001:db8::2 --src-port 1 --dst-port 2 \
	--ssl 7,1 --ssl-sub-text VERSION:TLSv1.3 --ssl-sub-text CN:client.example.com
roundtrip "v2 SSL with hex sub-TLV" \
	'.tlvs[0].client == 1 and .tlvs[0].verify == 0
	 and .tlvs[0].sub[0].name == "CIPHER" and .tlvs[0].sub[0].hex == "414553"
	 and .tlvs[0].sub[0].text == "AES"' \
	--src-addr 192.0.2.1 --dst-addr 198.51.100.2 --src-port 1 --dst-port 2 \
	--ssl 1,0 --ssl-sub CIPHER:414553
CRC_ARGS=(--src-addr 192.0.2.1 --dst-addr 198.51.100.2 --src-port 51000 --dst-port 443
	--tlv-text AUTHORITY:example.com --crc32c)
roundtrip "v2 --crc32c verifies" \
	'.family == "TCP4" and (.tlvs | map(.type) == [2, 3])
	 and (.tlvs[1].hex | test("^[0-9a-f]{8}$")) and .header_len == 28 + 14 + 7' \
	"${CRC_ARGS[@]}"
roundtrip "v2 UNIX + TLVs + --crc32c verifies" \
	'.family == "UNIX" and (.tlvs | map(.type) == [5, 3]) and .tlvs[0].text == "id-1"' \
	--family UNIX --src-addr /run/x.sock --dst-addr @abstract --tlv-text UNIQUE_ID:id-1 --crc32c
# Byte 25 is the low byte of the source port; 31 the first of the AUTHORITY value.
expect_error "v2 --crc32c, source port byte flipped -> crc32c_mismatch" crc32c_mismatch \
	flip_parse 25 "${CRC_ARGS[@]}"
expect_error "v2 --crc32c, TLV byte flipped -> crc32c_mismatch" crc32c_mismatch \
	flip_parse 31 "${CRC_ARGS[@]}"

# Exact bytes from build.
expect_stdout "build v2 TCP4: exact lowercase hex + newline" "$V2_TCP4" \
	pp build --src-addr 192.0.2.1 --dst-addr 198.51.100.2 --src-port 51000 --dst-port 443
expect_stdout "build v1 TCP4: exact hex" "$(printf "$V1_TCP4" | tohex)" \
	pp build --version 1 --src-addr 192.0.2.1 --dst-addr 198.51.100.2 --src-port 51000 --dst-port 443
expect_stdout "build v1 UNKNOWN: exact hex" "$(printf 'PROXY UNKNOWN\r\n' | tohex)" \
	pp build --version 1
expect_stdout "build LOCAL: exact hex" "${SIG}20000000" pp build --command LOCAL
check "build --raw writes the same bytes as the hex" \
	'raw=$(pp build --src-addr 2001:db8::1 --dst-addr 2001:db8::2 --src-port 1 --dst-port 2 --tlv-text AUTHORITY:x --raw | tohex) &&
	 hex=$(pp build --src-addr 2001:db8::1 --dst-addr 2001:db8::2 --src-port 1 --dst-port 2 --tlv-text AUTHORITY:x) &&
	 [[ -n $raw && $raw == "$hex" ]]'
check "build --raw v1 writes exactly the line" \
	'raw=$(pp build --version 1 --src-addr 192.0.2.1 --dst-addr 198.51.100.2 --src-port 51000 --dst-port 443 --raw | tohex) &&
	 [[ $raw == "$(printf "$V1_TCP4" | tohex)" ]]'

# ---- 5. usage errors, help, version ----------------------------------------------------------
echo "# usage"

expect_usage "no arguments -> 2" pp
expect_usage "unknown command -> 2" pp frobnicate
expect_usage "parse: unknown option" pp parse --bogus
expect_usage "parse: --hex not hex" pp parse --hex zz
expect_usage "parse: --hex odd digit count" pp parse --hex 0d0a0
expect_usage "parse: --hex without a value" pp parse --hex
expect_usage "parse: extra argument" pp parse --hex "$V2_TCP4" extra
expect_usage "parse: extra argument (stdin)" pp parse extra </dev/null
expect_usage "parse: --max not a number" pp parse --max abc --hex "$V2_TCP4"
expect_usage "parse: --max negative" pp parse --max -1 --hex "$V2_TCP4"
expect_usage "parse: --max above 65551" pp parse --max 65552 --hex "$V2_TCP4"
expect_usage "parse: --max without a value" pp parse --max
expect_usage "build: unknown option" pp build --bogus
expect_usage "build: extra argument" pp build --command LOCAL extra
expect_usage "build: --version 3" pp build --version 3
expect_usage "build: --version 0" pp build --version 0
expect_usage "build: --command bad" pp build --command PROXYY
expect_usage "build: --family bad" pp build --family TCP5
expect_usage "build: --transport bad" pp build --family UNIX --transport SEQPACKET --src-addr /a --dst-addr /b
expect_usage "build: --src-addr not an address" pp build --src-addr 192.0.2.256 --dst-addr 198.51.100.2
expect_usage "build: TCP4 family, IPv6 address" pp build --family TCP4 --src-addr 2001:db8::1 --dst-addr 2001:db8::2
expect_usage "build: TCP4 without --dst-addr" pp build --src-addr 192.0.2.1
expect_usage "build: UNIX path over 108 bytes" pp build --family UNIX --src-addr "/$(printf 'p%.0s' {1..108})" --dst-addr /b
expect_usage "build: --src-port 65536" pp build --src-addr 192.0.2.1 --dst-addr 198.51.100.2 --src-port 65536
expect_usage "build: --dst-port -1" pp build --src-addr 192.0.2.1 --dst-addr 198.51.100.2 --dst-port -1
expect_usage "build: --tlv without ':'" pp build --tlv ALPN
expect_usage "build: --tlv value not hex" pp build --tlv ALPN:zz
expect_usage "build: --tlv type 256" pp build --tlv 256:00
expect_usage "build: --tlv unknown type name" pp build --tlv BOGUS:00
expect_usage "build: --ssl without ','" pp build --ssl 1
expect_usage "build: --ssl client 256" pp build --ssl 256,0
expect_usage "build: --ssl-sub unknown name" pp build --ssl 1,0 --ssl-sub BOGUS:00
expect_usage "build: --azure-link-id 2^32" pp build --azure-link-id 4294967296
expect_usage "build: --gcp-psc-id 2^64" pp build --gcp-psc-id 18446744073709551616
expect_usage "build: v1 cannot carry TLVs" pp build --version 1 --tlv-text AUTHORITY:x
expect_usage "build: v1 cannot carry --crc32c" pp build --version 1 --crc32c
expect_usage "build: v1 cannot be LOCAL" pp build --version 1 --command LOCAL
expect_usage "build: v1 cannot be UDP4" pp build --version 1 --family UDP4 --src-addr 192.0.2.1 --dst-addr 198.51.100.2
expect_usage "build: v2 cannot be UNKNOWN" pp build --family UNKNOWN

expect_help "ppbpf --help" pp --help
expect_help "ppbpf -h" pp -h
expect_help "ppbpf parse --help" pp parse --help
expect_help "ppbpf build --help" pp build --help
check "ppbpf parse --help ignores stdin and prints no JSON" \
	'help=$(pp parse --help </dev/null) && grep -q "^Usage: ppbpf parse" <<<"$help" && ! jq -e . >/dev/null 2>&1 <<<"$help"'
run pp --version
if [[ $RC -eq 0 ]] && grep -Eqx 'ppbpf [0-9]+\.[0-9]+\.[0-9]+' "$OUT" && [[ $(wc -l <"$OUT") -eq 1 ]]; then
	pass "ppbpf --version"
else
	fail "ppbpf --version" "exit code $RC, expected 0 and one line 'ppbpf X.Y.Z'"
fi

# ---- 6. canonical v1 addresses ---------------------------------------------------------------
echo "# canonical addresses"

expect_ok "v1 TCP6 addresses printed canonically" \
	'.src_addr == "2001:db8::1" and .dst_addr == "::ffff:192.0.2.1"
	 and .src_port == 1 and .dst_port == 2' \
	parse_bytes 'PROXY TCP6 2001:0DB8:0:0:0:0:0:1 ::FFFF:192.0.2.1 1 2\r\n'
expect_ok "v1 TCP6 '::' and first of equal zero runs compressed" \
	'.src_addr == "::" and .dst_addr == "2001:db8::1:0:0:1"' \
	parse_bytes 'PROXY TCP6 0:0:0:0:0:0:0:0 2001:db8:0:0:1:0:0:1 1 2\r\n'

# ---- 7. policy options and the daemon (usage only: nothing is loaded) -----------------------------
echo "# policy options and ppbpf run"

expect_help "ppbpf attach --help" pp attach --help
expect_help "ppbpf run --help" pp run --help
expect_help "ppbpf detach --help" pp detach --help
check "attach and run --help document every policy option" \
	'attach=$(pp attach --help) && run=$(pp run --help) &&
	 for o in --trust --untrusted --mode --versions --timeout --max-header --rewrite-peer --table-size; do
	   grep -q -- "$o" <<<"$attach" && grep -q -- "$o" <<<"$run" || exit 1; done'
check "run --help documents --config, --keep, SIGHUP and SIGTERM" \
	'run=$(pp run --help) && grep -q -- --config <<<"$run" && grep -q -- --keep <<<"$run" &&
	 grep -q SIGHUP <<<"$run" && grep -q SIGTERM <<<"$run"'
expect_usage "attach: --port is required" pp attach --trust 127.0.0.1
expect_usage "attach: --untrusted must be plain or reject" pp attach --port 1 --untrusted drop
expect_usage "attach: --mode must be required or optional" pp attach --port 1 --mode sometimes
expect_usage "attach: --versions must be 1, 2 or 1,2" pp attach --port 1 --versions 3
expect_usage "attach: --timeout beyond an hour" pp attach --port 1 --timeout 3600001
expect_usage "attach: --max-header below the smallest header" pp attach --port 1 --max-header 14
expect_usage "attach: --trust not a CIDR" pp attach --port 1 --trust 10.0.0.0/33
expect_usage "attach: --local-uid of no user" pp attach --port 1 --local-uid no-such-user-ppbpf
expect_usage "attach: --local-uid -1" pp attach --port 1 --local-uid -1
expect_usage "attach: --local-uid 4294967295 (no user)" pp attach --port 1 --local-uid 4294967295
check "run --check: --local-uid takes a name or a uid" \
	'a=$(pp run "${SAFE[@]}" --port 7 --trust 127.0.0.1 --local-uid root --check) &&
	 b=$(pp run "${SAFE[@]}" --port 7 --trust 127.0.0.1 --local-uid 65534 --check) &&
	 jq -e ".ports[0].local_uid == 0" <<<"$a" >/dev/null && jq -e ".ports[0].local_uid == 65534" <<<"$b" >/dev/null'
expect_usage "attach: run-only option --keep" pp attach --port 1 --keep
expect_usage "run: --sweep-ms below 10" pp run --port 1 --sweep-ms 5
expect_usage "run: no port anywhere" pp run --keep
printf 'port 1 trust 127.0.0.1\nport 2 untrusted maybe\n' > "$TMP/bad.conf"
expect_usage "run: a config line with a bad value" pp run --config "$TMP/bad.conf"
check "run: the config error names the file and line" \
	'out=$(pp run --config "$TMP/bad.conf" 2>&1 || true); grep -q "bad.conf:2: " <<<"$out"'
printf 'trust 127.0.0.1\n' > "$TMP/noport.conf"
expect_usage "run: a config policy line without a port" pp run --config "$TMP/noport.conf"
check "run: a missing config file is a failure (1)" \
	'pp run --config "$TMP/none.conf" 2>/dev/null; [ $? = 1 ]'

# JSON output escapes every string it prints (the JSON writer is the only way out; these are the
# strings that come from outside: TLV text, UNIX paths, the pin folder; status and list are
# checked attached, with a cgroup path full of quotes, in trust.sh).
expect_ok "parse: a TLV's quotes and backslashes are escaped" '.tlvs[0].text == "a\"b\\\\c\",\"x\":\"" and (.tlvs | length == 1)' \
	rt_raw --command LOCAL --tlv-text 'AUTHORITY:a"b\\c","x":"'
expect_ok "parse: a UNIX path's quotes and control bytes are escaped" \
	'.src_addr == "/run/\"x\"\n\u007f" and .dst_addr == "@\\"' \
	rt_raw --family UNIX --src-addr "$(printf '/run/"x"\n\177')" --dst-addr '@\'
expect_json "status --json escapes a pin folder with control bytes" 0 \
	'.attached == false and .pin_dir == "/x\u0001\n\t\"}"' pp status --pin-dir "$(printf '/x\001\n\t"}')" --json

# ---- 7b. policy parsing fails closed --------------------------------------------------------------
# Every input below is ambiguous or wrong: it must be a usage error (2), never a policy. The
# commands name a cgroup that does not exist and a pin folder on tmpfs (not a bpffs), so a
# policy that is wrongly accepted fails with 1 before anything is loaded or mounted.
echo "# policy parsing fails closed"
NOBPF=$TMP/not-bpffs
mkdir -p "$NOBPF"
SAFE=(--cgroup /nonexistent-ppbpf-cli-test --pin-dir "$NOBPF/pins")

# refused NAME ARGS...: `ppbpf attach SAFE ARGS` is a usage error.
refused() {
	local name=$1
	shift
	expect_usage "attach refuses $name" pp attach "${SAFE[@]}" "$@"
}
check "an accepted policy reaches the pin folder, and stops there (1)" \
	'rc=0; pp attach "${SAFE[@]}" --port 1 --trust 127.0.0.1 2>"$TMP/e" || rc=$?; [ $rc = 1 ] && grep -q "not on a bpffs" "$TMP/e"'
refused "an empty --trust (it would trust every source)" --port 1 --trust ''
refused "--trust ','" --port 1 --trust ,
refused "--trust with an empty item at the end" --port 1 --trust 127.0.0.1,
refused "--trust with an empty item at the start" --port 1 --trust ,127.0.0.1
refused "--trust with an empty item inside" --port 1 --trust 127.0.0.1,,127.0.0.2
refused "a prefix length of -0 (read as /0)" --port 1 --trust 10.0.0.1/-0
refused "a prefix length of -0 on a network" --port 1 --trust 10.0.0.0/-0
refused "a prefix length with a sign" --port 1 --trust 10.0.0.0/+8
refused "a prefix length with a space" --port 1 --trust '10.0.0.0/ 8'
refused "a prefix length with a leading zero" --port 1 --trust 10.0.0.0/08
refused "a prefix length in hex" --port 1 --trust 10.0.0.0/0x8
refused "a prefix length with trailing garbage" --port 1 --trust 10.0.0.0/8x
refused "an empty prefix length" --port 1 --trust 10.0.0.0/
refused "a prefix without an address" --port 1 --trust /8
refused "two prefix lengths" --port 1 --trust 10.0.0.0/8/8
refused "an IPv4 prefix over 32" --port 1 --trust 10.0.0.0/33
refused "an IPv6 prefix over 128" --port 1 --trust 2001:db8::/129
refused "a huge prefix length" --port 1 --trust 10.0.0.0/18446744073709551616
refused "IPv4 host bits set under the prefix" --port 1 --trust 10.0.0.1/8
refused "IPv6 host bits set under the prefix" --port 1 --trust 2001:db8::1/32
refused "a v4-mapped IPv6 address (IPv4 peers are matched as IPv4)" --port 1 --trust ::ffff:127.0.0.1
refused "a v4-mapped address in hex" --port 1 --trust ::ffff:7f00:1
refused "the v4-mapped block" --port 1 --trust ::ffff:0:0/96
refused "an IPv6 zone" --port 1 --trust fe80::1%lo
refused "an IPv4 octet with a leading zero" --port 1 --trust 010.0.0.1
refused "an address with a space" --port 1 --trust ' 127.0.0.1'
refused "an empty --port" --port ''
refused "--port ','" --port ,
refused "--port with an empty item" --port 80,
refused "--port with an empty item inside" --port 80,,81
refused "a port with a leading zero" --port 080
refused "a port with a sign" --port +80
refused "a port with a space" --port ' 80'
refused "a port with a tab" --port "$(printf '\t80')"
refused "a port of '0x'" --port 0x
refused "a port given twice in a list" --port 80,80
refused "a port given twice" --port 80 --port 80
refused "a second --port in one policy (one --trust applies to both)" --port 80 --trust 127.0.0.1 --port 81
refused "a second --trust in one policy" --port 80 --trust 127.0.0.1 --trust 127.0.0.2
refused "--timeout 0x (read as 0: no timeout)" --port 1 --timeout 0x
refused "--timeout with a tab" --port 1 --timeout "$(printf '\t5')"
refused "--timeout -0" --port 1 --timeout -0
refused "--timeout with trailing garbage" --port 1 --timeout 5ms
refused "--timeout past 2^64" --port 1 --timeout 18446744073709551617
refused "--timeout given twice" --port 1 --timeout 1 --timeout 2
refused "--max-header 0x" --port 1 --max-header 0x
refused "--max-header given twice" --port 1 --max-header 100 --max-header 200
refused "--tlv-cap 0x (read as 0)" --port 1 --tlv-cap 0x
refused "--tlv-cap given twice" --port 1 --tlv-cap 1 --tlv-cap 2
refused "--mode given twice" --port 1 --mode optional --mode required
refused "--optional and --mode required" --port 1 --optional --mode required
refused "--untrusted given twice" --port 1 --untrusted reject --untrusted plain
refused "--versions given twice" --port 1 --versions 1 --versions 2
refused "an empty --versions (every header refused)" --port 1 --versions ''
refused "--versions with an empty item" --port 1 --versions 1,
refused "--versions with a version twice" --port 1 --versions 2,2
refused "--rewrite-peer given twice" --port 1 --rewrite-peer --rewrite-peer
# refused_why NAME REGEX ARGS...: `ppbpf attach ARGS` is a usage error whose message matches REGEX.
refused_why() {
	local name=$1 why=$2
	shift 2
	run pp attach "$@"
	if [[ $RC -ne 2 ]]; then
		fail "attach refuses $name" "exit code $RC, expected 2"
	elif ! grep -Eq -- "$why" "$ERR"; then
		fail "attach refuses $name" "the message does not say /$why/"
	else
		pass "attach refuses $name"
	fi
}
refused_why "--cgroup given twice" "'cgroup' given twice" "${SAFE[@]}" --port 1 --cgroup a
refused_why "an empty --cgroup (it would mean the root)" "an empty path" --pin-dir "$NOBPF/pins" --port 1 --cgroup ''
refused_why "a --cgroup with '..'" "'\.\.' component" --pin-dir "$NOBPF/pins" --port 1 --cgroup ../../x
refused_why "--pin-dir given twice" "'pin-dir' given twice" "${SAFE[@]}" --port 1 --pin-dir "$NOBPF/other"
refused_why "an empty --pin-dir" "an empty path" --cgroup /nonexistent-ppbpf-cli-test --pin-dir '' --port 1
refused_why "a relative --pin-dir" "absolute" --cgroup /nonexistent-ppbpf-cli-test --pin-dir pins --port 1
refused_why "an empty item, naming the list" "port '80,,81': an empty item" "${SAFE[@]}" --port 80,,81
refused_why "host bits, saying why" "host bits are set" "${SAFE[@]}" --port 1 --trust 10.0.0.1/8
refused_why "a v4-mapped block, saying why" "v4-mapped" "${SAFE[@]}" --port 1 --trust ::ffff:7f00:1
refused "--table-size 0x" --port 1 --table-size 0x
expect_usage "run refuses --sweep-ms 0x" pp run "${SAFE[@]}" --port 1 --sweep-ms 0x
expect_usage "run refuses --log-rate 0x (read as 0: no lines)" pp run "${SAFE[@]}" --port 1 --log-rate 0x
expect_usage "run refuses --log-rate given twice" pp run "${SAFE[@]}" --port 1 --log-rate 1 --log-rate 2
expect_usage "run refuses --sweep-ms given twice" pp run "${SAFE[@]}" --port 1 --sweep-ms 50 --sweep-ms 60
expect_usage "run refuses --config given twice" pp run "${SAFE[@]}" --config /dev/null --config /dev/null
for bad in 0 70000 9100x 10.0.0.01:9100 ::1:9100 '[::1]9100' '[192.0.2.1]:9100' 'localhost:9100' ':9100'; do
	expect_usage "run refuses --metrics '$bad'" pp run "${SAFE[@]}" --port 1 --metrics "$bad"
done
expect_usage "run refuses --metrics given twice" pp run "${SAFE[@]}" --port 1 --metrics 9100 --metrics 9101
for good in 9100 127.0.0.1:9100 '[::1]:9100' 0.0.0.0:9100; do
	run pp run "${SAFE[@]}" --port 1 --metrics "$good" --check
	if [[ $RC -eq 0 ]]; then pass "run takes --metrics '$good'"; else fail "run takes --metrics '$good'" "exit $RC: $(head -1 "$ERR")"; fi
done

check "detach --help documents --port (one port's policy removed, the programs stay)" \
	'h=$(pp detach --help) && grep -q -- "--port P" <<<"$h" && grep -q "programs stay" <<<"$h"'
expect_usage "detach refuses --port 0" pp detach --pin-dir "$NOBPF/pins" --port 0
expect_usage "detach refuses an empty --port" pp detach --pin-dir "$NOBPF/pins" --port ''
expect_usage "detach refuses --port given twice" pp detach --pin-dir "$NOBPF/pins" --port 1 --port 2
expect_usage "detach refuses a relative --pin-dir" pp detach --pin-dir pins
check "detach of a pin folder that does not exist is not an error" \
	'out=$(pp detach --pin-dir "$NOBPF/none") && grep -q "nothing attached" <<<"$out"'

# config_refused NAME LINE FORMAT: a config file (printf FORMAT) is a usage error naming FILE:LINE.
config_refused() {
	local name=$1 line=$2
	printf "$3" > "$TMP/p.conf"
	run pp run "${SAFE[@]}" --config "$TMP/p.conf"
	if [[ $RC -ne 2 ]]; then
		fail "config refuses $name" "exit code $RC, expected 2"
	elif ! grep -q "p.conf:$line: " "$ERR"; then
		fail "config refuses $name" "the error does not name p.conf:$line"
	else
		pass "config refuses $name"
	fi
}
config_refused "'trust ,'" 1 'port 1 trust ,\n'
config_refused "a trust list of commas" 2 '# x\nport 1 trust ,,,\n'
config_refused "a prefix length of -0" 1 'port 1 trust 10.0.0.1/-0\n'
config_refused "a line over the limit (not split into two)" 1 \
	"port 1 trust 127.0.0.1$(printf '%*s' 70000 '')port 2\n"
config_refused "a line split at 4095 bytes before (two 'port' keys on one line)" 1 \
	"port 1 trust 127.0.0.1$(printf '%*s' 4073 '')port 2\n"
config_refused "a NUL byte" 1 'port 1 trust 127.0.0.1\0 untrusted reject\n'
config_refused "a NUL byte at the start of a line" 2 'port 1 trust 127.0.0.1\n\0port 2\n'
config_refused "a policy option on a line without 'port'" 2 'port 1 trust 127.0.0.1\ntrust 127.0.0.9\n'
config_refused "a port on two lines" 2 'port 1 trust 127.0.0.1\nport 1 untrusted reject\n'
config_refused "a port in two groups" 2 'port 1,2 trust 127.0.0.1\nport 2 trust 127.0.0.1\n'
config_refused "two 'port' keys on one line" 1 'port 1 port 2\n'
config_refused "two 'trust' keys on one line" 1 'port 1 trust 127.0.0.1 trust 127.0.0.9\n'
config_refused "an abbreviated key" 1 'port 1 trus 127.0.0.1\n'
config_refused "key=value" 1 'port=1 trust=127.0.0.1\n'
config_refused "a 'config' key" 1 'port 1 config /dev/null\n'
config_refused "a 'help' key" 1 'port 1 help\n'
config_refused "a whole-attachment option on two lines" 2 'tlv-cap 1\ntlv-cap 2\nport 1\n'
config_refused "a cgroup both on the command line and in the config" 1 'cgroup a\nport 1\n'
config_refused "trailing garbage" 1 'port 1 trust 127.0.0.1 junk\n'
config_refused "a value after a flag" 1 'port 1 rewrite-peer yes\n'
config_refused "a control character" 1 'port 1 trust 127.0.0.1 \001\n'
config_refused "a byte-order mark" 1 '\357\273\277port 1\n'
config_refused "more ports than the kernel side holds (1024)" 17 \
	"$(for g in $(seq 0 16); do printf 'port '; seq -s, $((g * 64 + 1)) $((g * 64 + 64)) | tr -d '\n'; printf '\\n'; done)"
printf 'port 5\n' > "$TMP/p5.conf"
expect_usage "run refuses command-line policy options without --port beside a config" \
	pp run "${SAFE[@]}" --trust 127.0.0.9 --config "$TMP/p5.conf"

# What is accepted is exactly what was written (run --check prints the policy, loads nothing).
check "run --check prints the policy and loads nothing" \
	'out=$(pp run "${SAFE[@]}" --port 7 --trust 10.0.0.0/8,2001:db8::/32 --untrusted reject --check) &&
	 jq -e ".ports == [{\"port\":7,\"trust\":[\"10.0.0.0/8\",\"2001:db8::/32\"],\"mode\":\"required\",
	   \"untrusted\":\"reject\",\"versions\":\"1,2\",\"timeout_ms\":3000,\"max_header\":4096,\"rewrite_peer\":false,
	   \"transparent\":false,\"local_uid\":null}]" <<<"$out" >/dev/null &&
	 [ ! -e "$NOBPF/pins" ]'
check "--transparent takes the header out and implies --rewrite-peer" \
	'out=$(pp run "${SAFE[@]}" --port 7 --trust 10.0.0.0/8 --transparent --check) &&
	 jq -e ".ports[0] | .transparent == true and .rewrite_peer == true" <<<"$out" >/dev/null'
check "--transparent with --local-uid is refused, and says why" \
	'! out=$(pp attach "${SAFE[@]}" --port 7 --transparent --local-uid 0 --check 2>&1) &&
	 grep -q "tc sees no socket owner" <<<"$out"'
# The sending side's policy: --send P[:v1|v2] with --send-to, on the command line and in a config.
check "--send and --send-to: each remote port with its version and the destinations" \
	'out=$(pp attach "${SAFE[@]}" --send 8443,25:v1 --send-to 10.1.0.0/16,2001:db8::/32 --check) &&
	 jq -e ".ports == [] and [.send[] | {port, version, to}] == [{\"port\":8443,\"version\":2,\"to\":[\"10.1.0.0/16\",\"2001:db8::/32\"]},
	   {\"port\":25,\"version\":1,\"to\":[\"10.1.0.0/16\",\"2001:db8::/32\"]}]" <<<"$out" >/dev/null'
check "--send without --send-to: any destination" \
	'out=$(pp attach "${SAFE[@]}" --port 7 --send 80:v2 --check) &&
	 jq -e ".ports[0].port == 7 and [.send[] | {port, version, to}] == [{\"port\":80,\"version\":2,\"to\":[\"0.0.0.0/0\",\"::/0\"]}]" <<<"$out" >/dev/null'
check "--send-tlv: crc32c, unique-id, authority and alpn, for every port of the group" \
	'out=$(pp attach "${SAFE[@]}" --send 443,8443 --send-tlv crc32c,unique-id,authority=ppbpf.example,alpn=h2 --check) &&
	 jq -e "[.send[].tlvs] == [range(2) | {\"crc32c\":true,\"unique_id\":true,\"authority\":\"ppbpf.example\",\"alpn\":\"h2\"}]" <<<"$out" >/dev/null'
check "--send without --send-tlv: no TLV" \
	'out=$(pp attach "${SAFE[@]}" --send 443 --check) &&
	 jq -e ".send[0].tlvs == {\"crc32c\":false,\"unique_id\":false,\"authority\":null,\"alpn\":null}" <<<"$out" >/dev/null'
expect_usage "--send-tlv on a :v1 port (TLVs need v2)" pp attach "${SAFE[@]}" --send 443:v1 --send-tlv crc32c --check
expect_usage "--send-tlv with an unknown TLV" pp attach "${SAFE[@]}" --send 443 --send-tlv ssl --check
expect_usage "--send-tlv with an empty authority" pp attach "${SAFE[@]}" --send 443 --send-tlv authority= --check
expect_usage "--send-tlv with crc32c twice" pp attach "${SAFE[@]}" --send 443 --send-tlv crc32c,crc32c --check
expect_usage "--send-tlv without --send" pp attach "${SAFE[@]}" --send-tlv crc32c --check
expect_usage "--send with a version other than v1 or v2" pp attach "${SAFE[@]}" --send 80:v3 --check
expect_usage "--send with a port listed twice" pp attach "${SAFE[@]}" --send 80,80:v1 --check
expect_usage "--send-to without --send" pp attach "${SAFE[@]}" --send-to 10.0.0.0/8 --check
expect_usage "--send-to with host bits under the prefix" pp attach "${SAFE[@]}" --send 80 --send-to 10.0.0.1/8 --check
printf 'send 443:v1,8443 send-to 192.0.2.0/24\nsend 25\nport 7 trust 127.0.0.1\n' > "$TMP/send.conf"
check "config: 'send' lines are sending-side policies, apart from 'port' lines" \
	'out=$(pp run "${SAFE[@]}" --config "$TMP/send.conf" --check) &&
	 jq -e "[.ports[].port] == [7] and [.send[] | {port, version, to}] == [{\"port\":443,\"version\":1,\"to\":[\"192.0.2.0/24\"]},
	   {\"port\":8443,\"version\":2,\"to\":[\"192.0.2.0/24\"]},{\"port\":25,\"version\":2,\"to\":[\"0.0.0.0/0\",\"::/0\"]}]" \
	   <<<"$out" >/dev/null'
printf 'send 443\nsend 443:v1\n' > "$TMP/send-twice.conf"
expect_usage "config: a remote port on two 'send' lines" pp run "${SAFE[@]}" --config "$TMP/send-twice.conf" --check
printf 'port 7 send 443\n' > "$TMP/send-port.conf"
expect_usage "config: 'port' and 'send' on one line" pp run "${SAFE[@]}" --config "$TMP/send-port.conf" --check
printf 'port 7 send-to 10.0.0.0/8\n' > "$TMP/send-to-port.conf"
expect_usage "config: 'send-to' on a line without 'send'" pp run "${SAFE[@]}" --config "$TMP/send-to-port.conf" --check
printf 'port 1 trust 127.0.0.1%*suntrusted reject\r\n# c\r\n\tport\t2 # comment\r\n' 5000 '' > "$TMP/long.conf"
check "config: a 5000-byte line, CRLF, tabs and comments are read as written" \
	'out=$(pp run "${SAFE[@]}" --config "$TMP/long.conf" --check) &&
	 jq -e "[.ports[] | {port, trust, untrusted}] == [{\"port\":1,\"trust\":[\"127.0.0.1/32\"],\"untrusted\":\"reject\"},
	   {\"port\":2,\"trust\":[\"0.0.0.0/0\",\"::/0\"],\"untrusted\":\"plain\"}]" <<<"$out" >/dev/null'
check "config: command-line ports and config ports are separate groups (listed by port)" \
	'out=$(pp run "${SAFE[@]}" --port 9 --trust 127.0.0.9 --config "$TMP/p5.conf" --check) &&
	 jq -e "[.ports[] | {port, trust}] == [{\"port\":5,\"trust\":[\"0.0.0.0/0\",\"::/0\"]},{\"port\":9,\"trust\":[\"127.0.0.9/32\"]}]" <<<"$out" >/dev/null'
check "the explicit 'every source' blocks are accepted" \
	'out=$(pp run "${SAFE[@]}" --port 3 --trust 0.0.0.0/0,::/0 --check) &&
	 jq -e ".ports[0].trust == [\"0.0.0.0/0\",\"::/0\"]" <<<"$out" >/dev/null'
expect_json "status --json unattached: the kernel's release and what it lacks" 0 \
	'.attached == false and (.kernel.release | length > 0) and (.kernel.supported | type == "boolean")
	 and (.kernel.lacks | type == "array") and all(.kernel.lacks[]; (.feature | length > 0) and (.since | length > 0))' \
	pp status --pin-dir "$TMP/nothing-here" --json
check "status unattached: one line on the kernel" \
	'out=$(pp status --pin-dir "$TMP/nothing-here") && grep -q "^not attached" <<<"$out" && grep -q "^kernel: " <<<"$out"'
expect_json "status --json escapes the pin folder it names" 0 '.attached == false and .pin_dir == "/x\",\"attached\":true,\"y\":\""' \
	pp status --pin-dir '/x","attached":true,"y":"' --json
# What the hardened unit scores at most (systemd-analyze security; 10 is no sandbox at all).
UNIT_EXPOSURE_MAX=2.0
if command -v systemd-analyze >/dev/null; then
	check "the systemd unit installs and passes systemd-analyze verify" \
		'make -s -C "$(dirname "$0")/../.." install PREFIX="$TMP/usr" SYSTEMD_UNIT_DIR="$TMP/unit" SYSCONFDIR="$TMP/etc" \
			>/dev/null &&
		 out=$(systemd-analyze verify "$TMP/unit/ppbpf.service" 2>&1) && [ -z "$out" ] &&
		 grep -q "^ExecStart=$TMP/usr/bin/ppbpf run --config $TMP/etc/ppbpf/ppbpf.conf --keep$" "$TMP/unit/ppbpf.service"'
	# The sandbox the daemon tolerates (see the unit's comments), as systemd itself scores it.
	if systemd-analyze security --offline=yes "$TMP/unit/ppbpf.service" >"$TMP/security" 2>&1; then
		for d in ProtectKernelModules= ProtectKernelLogs= ProtectKernelTunables= ProtectControlGroups= \
			PrivateDevices= 'RestrictAddressFamilies=~AF_PACKET' 'RestrictAddressFamilies=~AF_UNIX' \
			'RestrictAddressFamilies=~…' 'RestrictNamespaces=~user' 'RestrictNamespaces=~mnt' \
			'SystemCallFilter=~@mount' 'SystemCallFilter=~@module' 'SystemCallFilter=~@reboot' \
			'SystemCallFilter=~@swap' 'SystemCallFilter=~@raw-io' 'SystemCallFilter=~@debug' \
			'SystemCallFilter=~@clock' 'SystemCallFilter=~@cpu-emulation' 'SystemCallFilter=~@obsolete' \
			MemoryDenyWriteExecute= SystemCallArchitectures= LockPersonality= RestrictRealtime= \
			RestrictSUIDSGID= ProtectHostname= ProtectClock= 'CapabilityBoundingSet=~CAP_SYS_ADMIN' \
			'CapabilityBoundingSet=~CAP_SYS_(NICE|RESOURCE)' PrivateMounts= UMask= ProtectProc= ProcSubset=; do
			if grep -qF "✓ $d " "$TMP/security"; then
				pass "systemd-analyze security: $d"
			else
				fail "systemd-analyze security: $d" "not set in the unit: $(grep -F " $d " "$TMP/security" | tr -s ' ')"
			fi
		done
		score=$(sed -n 's/.*Overall exposure level for ppbpf.service: \([0-9.]*\).*/\1/p' "$TMP/security")
		check "systemd-analyze security: exposure $score, at most $UNIT_EXPOSURE_MAX" \
			'[[ $score =~ ^[0-9]+\.[0-9]$ ]] && awk -v s="$score" -v m="$UNIT_EXPOSURE_MAX" "BEGIN { exit !(s <= m) }"'
	else
		fail "systemd-analyze security --offline=yes reads the unit" "$(tail -3 "$TMP/security")"
	fi
else
	fail "the systemd unit installs and passes systemd-analyze verify" "systemd-analyze is not installed"
fi

# ---- 8. one option table per command: the help, getopt and the errors agree -----------------------
# Each command's options come from one table that makes both its --help and what getopt
# accepts. Read the options from the help and check that getopt agrees on each: it is known,
# and it takes a value exactly when the help names one. The commands get the options that
# keep them away from every real attachment first (SAFE, a pin folder that does not exist),
# so that nothing here loads, attaches or detaches anything; values are a path that does
# not exist.
echo "# option tables"
COMMANDS=(attach run detach status list stats trace parse build)
NONE=$TMP/none

# safe_args CMD: the options given before the one under test.
safe_args() {
	case $1 in
	attach | run) SAFE_ARGS=("${SAFE[@]}") ;;
	detach | status | list | stats | trace) SAFE_ARGS=(--pin-dir "$NONE") ;;
	*) SAFE_ARGS=() ;;
	esac
}

# help_options HELP-FILE: the options a --help text lists, one "LETTER NAME METAVAR" line
# each ("-" for no letter, or no value). An option line is "  -x, --name METAVAR  help" or
# "      --name METAVAR  help"; the help may be on the next line.
help_options() {
	sed -nE '/^Examples:/q; s/^  (-([[:alnum:]]), |    )--([a-z0-9-]+)( ([^ ]+))?( .*)?$/\2\t\3\t\5/p' "$1" |
		awk -F '\t' '{ print ($1 == "" ? "-" : $1), $2, ($3 == "" ? "-" : $3) }'
}

# expect_refused NAME MESSAGE CMD ARGS...: exit code 2, nothing on stdout, and stderr
# exactly "ppbpf CMD: MESSAGE" and the hint.
expect_refused() {
	local name=$1 msg=$2 cmd=$3
	run pp "${@:3}"
	if [[ $RC -ne 2 ]]; then
		fail "$name" "exit code $RC, expected 2"
	elif [[ -s $OUT ]]; then
		fail "$name" "stdout is not empty"
	elif ! printf 'ppbpf %s: %s\nTry '\''ppbpf %s --help'\''.\n' "$cmd" "$msg" "$cmd" | cmp -s - "$ERR"; then
		fail "$name" "stderr is not \"ppbpf $cmd: $msg\" and the hint"
	else
		pass "$name"
	fi
}

# expect_known NAME CMD ARGS...: whatever else happens, getopt took the options as given.
expect_known() {
	local name=$1
	shift
	run pp "$@"
	if grep -Eq "unknown option|ambiguous option|needs a value|takes no value|unexpected argument" "$ERR"; then
		fail "$name" "getopt refused it: $(head -1 "$ERR")"
	else
		pass "$name"
	fi
}

for cmd in "${COMMANDS[@]}"; do
	safe_args "$cmd"
	"$BIN" "$cmd" --help > "$TMP/help.$cmd"
	help_options "$TMP/help.$cmd" > "$TMP/options.$cmd"
	valued=$(awk '$3 != "-" { print $2; exit }' "$TMP/options.$cmd") # its first option with a value
	check "$cmd --help lists its options, --help among them" \
		'[ "$(wc -l < "$TMP/options.$cmd")" -ge 2 ] && grep -qx "h help -" "$TMP/options.$cmd"'
	while read -r letter name metavar; do
		[[ $name != help ]] || continue
		if [[ $metavar != - ]]; then
			expect_known "$cmd --$name $metavar: getopt knows it, with a value" "$cmd" "${SAFE_ARGS[@]}" --"$name" "$NONE"
			expect_known "$cmd --$name=$metavar: the same" "$cmd" "${SAFE_ARGS[@]}" --"$name=$NONE"
			expect_refused "$cmd --$name without its value: named" "option '--$name' needs a value" \
				"$cmd" "${SAFE_ARGS[@]}" --"$name"
		else
			expect_known "$cmd --$name: getopt knows it, without a value" "$cmd" "${SAFE_ARGS[@]}" --"$name"
			expect_refused "$cmd --$name=x: named, it takes no value" "option '--$name' takes no value" \
				"$cmd" "${SAFE_ARGS[@]}" --"$name=x"
		fi
		[[ $letter != - ]] || continue
		if [[ $metavar != - ]]; then
			expect_known "$cmd -$letter (--$name): getopt knows it" "$cmd" "${SAFE_ARGS[@]}" -"$letter" "$NONE"
			expect_refused "$cmd -$letter without its value: named" "option '-$letter' needs a value" \
				"$cmd" "${SAFE_ARGS[@]}" -"$letter"
		else
			expect_known "$cmd -$letter (--$name): getopt knows it" "$cmd" "${SAFE_ARGS[@]}" -"$letter"
		fi
	done < "$TMP/options.$cmd"

	expect_refused "$cmd --bogus-option: named" "unknown option '--bogus-option'" "$cmd" --bogus-option
	expect_refused "$cmd --bogus-option=1: named without its value" "unknown option '--bogus-option'" \
		"$cmd" --bogus-option=1
	expect_refused "$cmd -Q: named" "unknown option '-Q'" "$cmd" -Q
	expect_refused "$cmd: an argument that is not an option" "unexpected argument 'extra'" \
		"$cmd" "${SAFE_ARGS[@]}" extra

	# --help (or -h) wins over anything else on the line, valid or not, before or after it.
	for args in "--help" "-h" "--bogus-option --help" "--help --bogus-option" "-Q -h" "extra --help" \
		"--help extra" "--$valued x -h" "-h --$valued"; do
		read -ra words <<< "$args"
		run pp "$cmd" "${words[@]}"
		if [[ $RC -ne 0 ]]; then
			fail "$cmd $args: the help, exit 0" "exit code $RC"
		elif [[ -s $ERR ]]; then
			fail "$cmd $args: the help, exit 0" "stderr is not empty"
		elif ! cmp -s "$OUT" "$TMP/help.$cmd"; then
			fail "$cmd $args: the help, exit 0" "stdout is not the --help text"
		else
			pass "$cmd $args: the help, exit 0"
		fi
	done
done
expect_refused "attach --p: ambiguous (--port, --pin-dir), named so" "ambiguous option '--p'" attach --p 1
expect_refused "attach -vp: the letter without its value, named" "option '-p' needs a value" attach -vp
expect_refused "attach -vQ: the unknown letter in a group, named" "unknown option '-Q'" attach -vQ
expect_refused "attach --port=: an empty value is a value (refused as a port)" \
	"port '': an empty list" attach "${SAFE[@]}" --port=
check "attach --por (an abbreviation) is --port" \
	'rc=0; pp attach "${SAFE[@]}" --por 0 2>"$TMP/e" || rc=$?; [ $rc = 2 ] && grep -q "^ppbpf attach: port .0.: not a port" "$TMP/e"'
check "attach --help does not list the options of ppbpf run" \
	'! grep -Eq -- "--(config|keep|sweep-ms|log-rate)" "$TMP/options.attach"'
check "run --help lists its own options and the policy options" \
	'for o in config keep sweep-ms log-rate port trust check; do grep -q " $o " "$TMP/options.run" || exit 1; done'

# ---- 9. a start that fails takes back what it attached (root) ------------------------------------
# Real failures, made from outside with strace's fault injection: the first map that
# `attach` or `run` opens after attaching (bpf(BPF_OBJ_GET) fails), and the event ring
# buffer of `run` (epoll_create1 fails). A fresh attachment must be gone after such a
# failure, --keep or not; one that was picked up must stay as it was. Everything happens in
# a cgroup and a pin folder of this script's own, removed at exit.
echo "# a failed start takes back its attach"
START_CHECKS=("attach: the maps fail to open after attaching" "run: the maps fail to open after attaching"
	"run --keep: the ring buffer fails after attaching" "run: the ring buffer fails on a picked-up attachment")
CG2_ROOT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
why_not=
if [[ $(id -u) != 0 ]]; then
	why_not="needs root"
elif ! command -v strace >/dev/null || ! command -v bpftool >/dev/null; then
	why_not="needs strace and bpftool"
elif [[ -z $CG2_ROOT ]]; then
	why_not="needs a cgroup2 mount"
fi # (no bpffs needed: the first attach mounts it at /sys/fs/bpf, as on a fresh machine)
if [[ -n $why_not ]]; then
	for name in "${START_CHECKS[@]}"; do skip "$name" "$why_not"; done
else
	TEST_CG=$CG2_ROOT/ppbpf-cli-test-$$
	TEST_PIN=/sys/fs/bpf/ppbpf-cli-test-$$
	mkdir "$TEST_CG"
	# The probe names what the host lacks, in one line: here a cgroup2 mount, hidden in a
	# mount namespace of its own.
	no_cgroup2() { unshare --mount --propagation private bash -c 'umount -l "$1" && shift && exec "$@"' _ "$CG2_ROOT" "$@"; }
	check "the probe: without a cgroup2 mount, status --json lists cgroup2 as lacking, and unsupported" \
		'out=$(no_cgroup2 "$BIN" status --pin-dir "$TMP/nothing-here" --json) &&
		 jq -e "([.kernel.lacks[].feature] | index(\"cgroup2\")) and .kernel.supported == false" <<<"$out" >/dev/null'
	check "the probe: without a cgroup2 mount, one line says what to do" \
		'out=$(no_cgroup2 "$BIN" status --pin-dir "$TMP/nothing-here") &&
		 grep -q "^kernel: this host lacks a cgroup2 mount (cgroup v2): mount one" <<<"$out"'
	TARGET=(--cgroup "$TEST_CG" --pin-dir "$TEST_PIN" --port 9) # no --trust: its warning marks the end of the attach

	# nothing_attached: no pin folder, and no program on the test cgroup.
	nothing_attached() {
		[[ ! -e $TEST_PIN && -z $(bpftool cgroup show "$TEST_CG") ]]
	}
	# still_attached: the attachment and port 9's policy are there.
	still_attached() {
		pp status --pin-dir "$TEST_PIN" --json | jq -e '.attached and ([.ports[].port] == [9])' >/dev/null &&
			[[ -n $(bpftool cgroup show "$TEST_CG") ]]
	}
	# under_strace STRACE-OPTIONS... -- CMD ARGS...: `run` ppbpf CMD under strace (at most 60 s).
	under_strace() {
		local opts=()
		while [[ $1 != -- ]]; do opts+=("$1"); shift; done
		shift
		run timeout 60 strace -qq -o /dev/null "${opts[@]}" "$BIN" "$@"
	}
	# bpf_calls_until_open TRACE MARK: the number of bpf() calls up to and with the first
	# BPF_OBJ_GET after the last line that matches MARK (an awk regex): where one of
	# loader_open_maps() starts.
	bpf_calls_until_open() {
		awk -v mark="$2" '$0 ~ mark { k = 0; marked = 1 } /^bpf\(/ { n++ }
			marked && !k && /^bpf\(BPF_OBJ_GET/ { k = n } END { print k + 0 }' "$1"
	}
	# start_clean: nothing attached, whatever the check before left.
	start_clean() {
		"$BIN" detach --pin-dir "$TEST_PIN" >/dev/null 2>&1 || true
	}
	# what_is_left: the pins and the programs on the test cgroup, in one line.
	what_is_left() {
		local pins=()
		[[ ! -d $TEST_PIN ]] || pins=("$TEST_PIN"/*)
		echo "pins: ${pins[*]##*/}; programs: $(bpftool cgroup show "$TEST_CG" | awk 'NR > 1 { print $NF }' | tr '\n' ' ')"
	}
	# expect_taken_back NAME MESSAGE: the command just run failed (1) saying MESSAGE, and left nothing attached.
	expect_taken_back() {
		if [[ $RC -ne 1 ]]; then
			fail "$1" "exit code $RC, expected 1"
		elif ! grep -q "$2" "$ERR"; then
			fail "$1" "stderr does not say '$2'"
		elif ! nothing_attached; then
			fail "$1" "left behind: $(what_is_left)"
		else
			pass "$1"
		fi
	}

	# expect_maps_fail NAME CALL CMD: CMD, started clean, fails at its CALLth bpf() call (where
	# it opens the maps after attaching; 0: not found in the trace) and leaves nothing attached.
	expect_maps_fail() {
		local name=$1 call=$2 cmd=$3
		start_clean
		if [[ $call -eq 0 ]]; then
			fail "$name" "the trace of $cmd has no BPF_OBJ_GET where it opens the maps"
			return
		fi
		under_strace -e trace=bpf -e inject=bpf:error=EPERM:when="$call" -- "$cmd" "${TARGET[@]}"
		expect_taken_back "$name" "ppbpf $cmd: failed to open the maps"
	}

	# Where each command opens the maps after attaching, from a trace of a start that works.
	check "attach: a start that works (traced)" \
		'timeout 60 strace -qq -s 64 -o "$TMP/attach.trace" -e trace=bpf "$BIN" attach "${TARGET[@]}" &&
		 still_attached && pp detach --pin-dir "$TEST_PIN" && nothing_attached'
	attach_open=$(bpf_calls_until_open "$TMP/attach.trace" '^bpf\\(BPF_OBJ_PIN')
	timeout 60 strace -qq -s 64 -o "$TMP/run.trace" -e trace=bpf,write "$BIN" run "${TARGET[@]}" 2>"$TMP/run.log" &
	tracer=$!
	for _ in $(seq 300); do
		if grep -q "ppbpf: running" "$TMP/run.log"; then break; fi
		sleep 0.1
	done
	DAEMON=$(sed -n 's/.*ppbpf: running (.*; pid \([0-9]*\))$/\1/p' "$TMP/run.log")
	[[ -z $DAEMON ]] || kill -TERM "$DAEMON"
	RC=0
	wait "$tracer" || RC=$?
	DAEMON=
	check "run: a start that works (traced), then SIGTERM, detaches" '[ $RC = 0 ] && nothing_attached'
	run_open=$(bpf_calls_until_open "$TMP/run.trace" '^write\\(2, "ppbpf run: port 9 has no trust list')

	expect_maps_fail "${START_CHECKS[0]}" "$attach_open" attach
	expect_maps_fail "${START_CHECKS[1]}" "$run_open" run
	start_clean
	under_strace -e trace=epoll_create1 -e inject=epoll_create1:error=EMFILE -- run "${TARGET[@]}" --keep
	expect_taken_back "${START_CHECKS[2]}" "ppbpf run: failed to open the event ring buffer"

	start_clean
	if pp attach "${TARGET[@]}" >/dev/null 2>&1; then
		under_strace -e trace=epoll_create1 -e inject=epoll_create1:error=EMFILE -- run "${TARGET[@]}"
	else
		RC=attach-failed
	fi
	if [[ $RC != 1 ]]; then
		fail "${START_CHECKS[3]}" "exit code $RC, expected 1"
	elif ! still_attached; then
		fail "${START_CHECKS[3]}" "the attachment it picked up is gone"
	else
		pass "${START_CHECKS[3]}"
	fi
	start_clean
fi

# ---- summary ----------------------------------------------------------------------------------
echo
echo "cli.sh: $((PASSED + FAILED + SKIPPED)) checks, $PASSED passed, $FAILED failed, $SKIPPED skipped"
if [[ $FAILED -ne 0 ]]; then
	printf '  failed: %s\n' "${FAILED_NAMES[@]}"
	exit 1
fi
if [[ $SKIPPED -ne 0 && ${PPBPF_REQUIRE_ALL:-0} = 1 ]]; then
	echo "PPBPF_REQUIRE_ALL=1: a skip is a failure"
	exit 1
fi
