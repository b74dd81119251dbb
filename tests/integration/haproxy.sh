#!/usr/bin/env bash
# Interop with a real HAProxy: send-proxy (v1), send-proxy-v2, and
# send-proxy-v2 with proxy-v2-options authority,crc32c,unique-id, in front of
# ppbpf-demo-server (ppbpf_accept + ppbpf_get) in an attached cgroup. Clients
# bound to 127.0.0.2-4: the server must see their real address and port, the
# TLV values, and the request bytes intact. A fourth backend runs the server
# where nothing is attached: the userspace fallback must say the same.
. "$(dirname "$0")/lib.sh"
need_root "the HAProxy interop tests"
command -v haproxy >/dev/null || skip "haproxy is not installed (scripts/deps.sh installs it)"

new_cgroup CG haproxy
new_cgroup CG_PLAIN haproxy-plain
new_pin_dir PIN haproxy
free_port SRV SRV_PLAIN FE_V1 FE_V2 FE_OPT FE_PLAIN
TMP=$(mktemp -d /tmp/ppbpf-test-haproxy.XXXXXX)
CLEANUP+=("rm -rf '$TMP'")

"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$SRV" --trust 127.0.0.1 --rewrite-peer >/dev/null

cat > "$TMP/haproxy.cfg" <<CFG
global
    maxconn 1000
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend v1
    bind 127.0.0.1:$FE_V1
    default_backend v1
frontend v2
    bind 127.0.0.1:$FE_V2
    default_backend v2
frontend v2opts
    # the client sends its own header naming itself, with an AUTHORITY for HAProxy to pass on
    bind 127.0.0.1:$FE_OPT accept-proxy
    unique-id-format id-%ci-%cp
    default_backend v2opts
frontend plain
    bind 127.0.0.1:$FE_PLAIN
    unique-id-format id-%ci-%cp
    default_backend plain
backend v1
    server s 127.0.0.1:$SRV send-proxy
backend v2
    server s 127.0.0.1:$SRV send-proxy-v2
backend v2opts
    server s 127.0.0.1:$SRV send-proxy-v2 proxy-v2-options authority,crc32c,unique-id
backend plain
    server s 127.0.0.1:$SRV_PLAIN send-proxy-v2 proxy-v2-options crc32c,unique-id
CFG
haproxy -c -f "$TMP/haproxy.cfg" -q || fail "haproxy rejected the test configuration"

spawn_in_cgroup "$CG" "$OUT/ppbpf-demo-server" --port "$SRV" --count 9 > "$TMP/server.jsonl"
SERVER=$!
# (nothing attached there: the fallback honours HAProxy's headers because it is told to trust HAProxy)
spawn_in_cgroup "$CG_PLAIN" "$OUT/ppbpf-demo-server" --port "$SRV_PLAIN" --count 3 --fallback-trust 127.0.0.1 \
	> "$TMP/plain.jsonl"
SERVER_PLAIN=$!
haproxy -f "$TMP/haproxy.cfg" -db > "$TMP/haproxy.log" 2>&1 &
HAPROXY=$!
PIDS+=("$HAPROXY")
listening() { [ -n "$(ss -Htln "sport = :$1")" ]; }
for p in "$SRV" "$SRV_PLAIN" "$FE_V1" "$FE_V2" "$FE_OPT" "$FE_PLAIN"; do
	for _ in $(seq 50); do listening "$p" && break; sleep 0.1; done
	listening "$p" || fail "nothing listens on port $p"
done

# client FRONTEND SOURCE EXTRA...: one request through HAProxy, its own endpoint on stdout
client() {
	local fe=$1 src=$2
	shift 2
	"$OUT/ppbpf-demo-client" --bind "$src" --connect "127.0.0.1:$fe" \
		--send "GET /via/$fe/from/$src HTTP/1.0 with bytes \\ \" intact" "$@" | jq -r .local
}

checks=0 clients=0
# expect FILE CLIENT JQ-CONDITION: the server's line for this client satisfies the condition
expect() {
	local file=$1 who=$2 cond=$3 line
	line=$(jq -c --arg who "$who" 'select(.client == $who)' "$file")
	[ -n "$line" ] || fail "the server saw no connection from $who"
	echo "$line" | jq -e "$cond" >/dev/null || fail "server line for $who fails: $cond
  $line"
	checks=$((checks + 1))
}

for src in 127.0.0.2 127.0.0.3 127.0.0.4; do
	c1=$(client "$FE_V1" $src)
	c2=$(client "$FE_V2" $src)
	c3=$(client "$FE_OPT" $src --proxy-v2 --authority "app-$src.example")
	cp=$(client "$FE_PLAIN" $src)
	clients=$((clients + 1)) # the servers' lines so far: 3 per source to $SRV, 1 to $SRV_PLAIN
	for _ in $(seq 30); do
		[ "$(wc -l < "$TMP/server.jsonl")" -ge $((3 * clients)) ] && [ "$(wc -l < "$TMP/plain.jsonl")" -ge $clients ] && break
		sleep 0.1
	done
	req_ok='.request | startswith("GET /via/") and endswith("with bytes \\ \" intact")'
	expect "$TMP/server.jsonl" "$c1" ".mode == \"kernel\" and .version == 1 and .family == \"TCP4\" and .getpeername == \"$c1\" and .tlvs == [] and ($req_ok)"
	expect "$TMP/server.jsonl" "$c2" ".mode == \"kernel\" and .version == 2 and .getpeername == \"$c2\" and .dst == \"127.0.0.1:$FE_V2\" and ($req_ok)"
	ip=${c3%:*} port=${c3##*:}
	expect "$TMP/server.jsonl" "$c3" ".mode == \"kernel\" and .version == 2 and .getpeername == \"$c3\" and ($req_ok)
		and ([.tlvs[] | select(.name == \"AUTHORITY\") | .text] == [\"app-$src.example\"])
		and ([.tlvs[] | select(.name == \"UNIQUE_ID\") | .text] == [\"id-$ip-$port\"])
		and ([.tlvs[] | select(.name == \"CRC32C\")] | length == 1)"
	ip=${cp%:*} port=${cp##*:}
	expect "$TMP/plain.jsonl" "$cp" ".mode == \"userspace\" and .version == 2 and .getpeername != \"$cp\" and ($req_ok)
		and ([.tlvs[] | select(.name == \"UNIQUE_ID\") | .text] == [\"id-$ip-$port\"])"
done
# (one wait each: `wait A B` returns B's status only)
wait "$SERVER" || fail "the demo server in the attached cgroup exited with $?"
wait "$SERVER_PLAIN" || fail "the demo server where nothing is attached exited with $?"
[ "$checks" = 12 ] || fail "$checks connections checked, want 12"
kill -0 "$HAPROXY" || fail "haproxy exited during the test: $(tail -3 "$TMP/haproxy.log")"
"$CLI" status --pin-dir "$PIN" --json | jq -e '.counters.v1 == 3 and .counters.v2 == 6 and .counters.error_v2 == 0' >/dev/null ||
	fail "unexpected counters: $("$CLI" status --pin-dir "$PIN" --json | jq -c .counters)"
echo "PASS: HAProxy $(haproxy -v | awk 'NR==1{print $3}') interop, $checks connections checked (v1, v2, v2 with authority/crc32c/unique-id, userspace fallback)"
