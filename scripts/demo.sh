#!/usr/bin/env bash
# The README's run command. On a fresh machine: installs what is missing,
# builds, creates a demo cgroup and attaches ppbpf to it, starts a real
# HAProxy (send-proxy-v2, proxy-v2-options authority,crc32c,unique-id) in
# front of ppbpf-demo-server running in that cgroup, connects clients bound to
# 127.0.0.2 and 127.0.0.3 through it, and prints what the server learned next
# to the truth. Everything it creates is removed at the end, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it attaches BPF programs to a demo cgroup)" >&2; exit 1; }
scripts/deps.sh
make -s all

OUT=$PWD/.output
CLI=$OUT/ppbpf
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
[ -n "$CG2" ] || { echo "demo: no cgroup2 mount found" >&2; exit 1; }
CG=$CG2/ppbpf-demo
PIN=/sys/fs/bpf/ppbpf-demo
TMP=$(mktemp -d)
PIDS=()
BACKEND=18480 FRONT=18481 EDGE=18482

cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	"$CLI" detach --pin-dir "$PIN" >/dev/null 2>&1
	if [ -d "$CG" ]; then
		while read -r p; do echo "$p" > "$CG2/cgroup.procs"; done < "$CG/cgroup.procs"
		rmdir "$CG"
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
wait_port() { for _ in $(seq 50); do ss -Htln "sport = :$1" | grep -q . && return 0; sleep 0.1; done; return 1; }
for p in $BACKEND $FRONT $EDGE; do
	! ss -Htln "sport = :$p" | grep -q . || { echo "demo: port $p is in use" >&2; exit 1; }
done

say "1. A demo cgroup, with ppbpf attached: port $BACKEND expects PROXY headers from 127.0.0.1"
mkdir -p "$CG"
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port $BACKEND --trust 127.0.0.1 --rewrite-peer

say "2. ppbpf-demo-server in that cgroup, HAProxy in front of it"
bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$OUT/ppbpf-demo-server" --port $BACKEND \
	--reply "hello from behind HAProxy" > "$TMP/server.jsonl" &
PIDS+=($!)
cat > "$TMP/haproxy.cfg" <<CFG
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend clients
    bind 127.0.0.1:$FRONT
    unique-id-format req-%ci-%cp
    default_backend app
frontend behind_an_edge
    # for the AUTHORITY TLV: an edge balancer in front of this one names the client and the host
    bind 127.0.0.1:$EDGE accept-proxy
    unique-id-format req-%ci-%cp
    default_backend app
backend app
    server app 127.0.0.1:$BACKEND send-proxy-v2 proxy-v2-options authority,crc32c,unique-id
CFG
haproxy -f "$TMP/haproxy.cfg" -db > "$TMP/haproxy.log" 2>&1 &
PIDS+=($!)
wait_port $BACKEND && wait_port $FRONT && wait_port $EDGE || { cat "$TMP/haproxy.log"; exit 1; }
echo "HAProxy $(haproxy -v | awk 'NR == 1 { print $3 }'): 127.0.0.1:$FRONT and 127.0.0.1:$EDGE -> 127.0.0.1:$BACKEND"

say "3. Clients bound to 127.0.0.2 and 127.0.0.3 connect through HAProxy"
c1=$("$OUT/ppbpf-demo-client" --bind 127.0.0.2 --connect 127.0.0.1:$FRONT --send $'GET /hello HTTP/1.0\n' | jq -r .local)
c2=$("$OUT/ppbpf-demo-client" --bind 127.0.0.3 --connect 127.0.0.1:$EDGE --proxy-v2 --authority shop.example.com \
	--send $'GET /cart HTTP/1.0\n' | jq -r .local)
for _ in $(seq 30); do [ "$(wc -l < "$TMP/server.jsonl")" -ge 2 ] && break; sleep 0.1; done

say "4. What the server learned, next to the truth"
show() {
	local truth=$1 authority=$2 sent=$3 line
	line=$(jq -c --arg c "$truth" 'select(.client == $c)' "$TMP/server.jsonl")
	[ -n "$line" ] || { echo "the server saw no connection from $truth"; exit 1; }
	printf '  %-26s %-28s %s\n' "" "truth (the client)" "server (ppbpf_get / ppbpf_accept)"
	printf '  %-26s %-28s %s\n' "client address" "$truth" "$(jq -r .client <<< "$line")"
	printf '  %-26s %-28s %s\n' "getpeername() on the fd" "$truth" "$(jq -r .getpeername <<< "$line")"
	printf '  %-26s %-28s %s\n' "answered by" "" "$(jq -r '.mode + ", PROXY v" + (.version | tostring)' <<< "$line")"
	printf '  %-26s %-28s %s\n' "AUTHORITY TLV" "$authority" \
		"$(jq -r '[.tlvs[] | select(.name == "AUTHORITY") | .text] | first // "-"' <<< "$line")"
	printf '  %-26s %-28s %s\n' "UNIQUE_ID TLV" "req-${truth%:*}-${truth##*:}" \
		"$(jq -r '[.tlvs[] | select(.name == "UNIQUE_ID") | .text] | first // "-"' <<< "$line")"
	printf '  %-26s %-28s %s\n' "CRC32C TLV" "checked in the kernel" \
		"$(jq -r '[.tlvs[] | select(.name == "CRC32C") | .hex] | first // "-"' <<< "$line")"
	printf '  %-26s %-28s %s\n' "request bytes" "$(jq -rn --arg s "$sent" '$s | @json')" "$(jq -r '.request | @json' <<< "$line")"
	echo
}
show "$c1" "-" $'GET /hello HTTP/1.0\n'
show "$c2" "shop.example.com" $'GET /cart HTTP/1.0\n'
tag() { jq -r --arg c "$1" 'select(.client == $c) | .client' "$TMP/server.jsonl"; }
[ "$(tag "$c1")" = "$c1" ] && [ "$(tag "$c2")" = "$c2" ] || { echo "demo: the server did not learn the true clients" >&2; exit 1; }

say "5. ppbpf status (the kernel side's counters)"
"$CLI" status --pin-dir "$PIN" --json | jq -c '{tracked: .counters.tracked, v2: .counters.v2,
	peer_rewrites: .counters.peer_rewrites, errors: (.counters.error_v1 + .counters.error_v2)}'
echo
echo "Done: the demo cgroup, the attachment and HAProxy are removed on exit."
