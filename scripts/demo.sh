#!/usr/bin/env bash
# The README's run command. Sets up what it needs on a fresh machine, builds,
# then shows the PROXY protocol codec at work: headers built and parsed by the
# CLI, and a header sent by a real HAProxy parsed the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
command -v haproxy >/dev/null || {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends haproxy >/dev/null
}
make -s all
P=.output/ppbpf
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "v1 header, parsed"
printf 'PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\nGET / HTTP/1.1\r\n' | $P parse

say "v2 header with TLVs and CRC32C, built then parsed"
$P build --src-addr 2001:db8::1 --dst-addr 2001:db8::2 --src-port 51000 --dst-port 443 \
	--tlv-text ALPN:h2 --tlv-text AUTHORITY:example.com --tlv-text UNIQUE_ID:req-42 \
	--ssl 1,0 --ssl-sub-text VERSION:TLSv1.3 --aws-vpce-id vpce-0a1b2c3d --crc32c --raw | $P parse

say "a corrupted header is refused with a reason"
$P build --src-addr 192.0.2.1 --dst-addr 198.51.100.2 --src-port 1 --dst-port 2 --crc32c |
	sed 's/^\(.\{40\}\)../\1ff/' | xargs $P parse --hex || true

say "an incomplete header says how much more it needs"
printf 'PROXY TCP4 192.0.2.1' | $P parse || true

say "what a real HAProxy sends (send-proxy-v2, proxy-v2-options crc32c,unique-id)"
tmp=$(mktemp -d)
hap_pid=""
cleanup() { [ -n "$hap_pid" ] && kill "$hap_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fe=$((20000 + RANDOM % 10000)) be=$((fe + 1))
cat > "$tmp/haproxy.cfg" <<CFG
defaults
    mode tcp
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend demo
    bind 127.0.0.1:$fe
    unique-id-format demo-%[uuid]
    default_backend app
backend app
    server app 127.0.0.1:$be send-proxy-v2 proxy-v2-options crc32c,unique-id
CFG
wait_port() { for _ in $(seq 50); do ss -ltn "sport = :$1" | grep -q LISTEN && return 0; sleep 0.1; done; return 1; }
# A one-shot backend that saves the first bytes it receives.
timeout 10 python3 - "$be" "$tmp/received" <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
c, _ = s.accept(); c.settimeout(2); data = b""
while b"hello" not in data:
    chunk = c.recv(4096)
    if not chunk: break
    data += chunk
open(sys.argv[2], "wb").write(data)
PY
backend_pid=$!
wait_port "$be"
haproxy -f "$tmp/haproxy.cfg" -db >/dev/null 2>&1 &
hap_pid=$!
wait_port "$fe"
timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$fe; printf 'hello' >&3; sleep 0.5" || true
wait "$backend_pid" || true
if [ -s "$tmp/received" ]; then
	$P parse < "$tmp/received"
else
	echo "(HAProxy did not connect within 5 s; skipped this part)"
fi
printf '\nThe kernel side (eBPF parsing per socket) builds on this codec; see README.md.\n'
