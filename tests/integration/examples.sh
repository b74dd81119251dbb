#!/usr/bin/env bash
# The examples under scripts/examples/, each run against the real kernel side:
# a server in an attached cgroup, a client sending a v2 header from
# 203.0.113.7:4000; each example must print that client.
#   whois.py  the record read with socket.getsockopt and struct only
#   whois.c   the record read with ppbpf_get (built against the tree's libppbpf.a)
. "$(dirname "$0")/lib.sh"
need_root "the examples"
command -v python3 >/dev/null || skip "python3 is not installed (scripts/deps.sh installs it)"
EX=$ROOT/scripts/examples
new_cgroup CG examples
new_pin_dir PIN examples
TMP=$(mktemp -d /tmp/ppbpf-test-examples.XXXXXX)
CLEANUP+=("rm -rf '$TMP'")
free_port P_PY P_C
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$P_PY,$P_C" --trust 127.0.0.1 >/dev/null
cc -Wall -Werror -I"$ROOT/include" -o "$TMP/whois" "$EX/whois.c" "$OUT/libppbpf.a" || fail "whois.c does not build"

# client PORT: a v2 header from 203.0.113.7:4000, then "hello"
client() {
	python3 - "$1" <<'PY'
import socket, struct, sys
port = int(sys.argv[1])
hdr = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack(">H", 12) + socket.inet_aton("203.0.113.7") +
       socket.inet_aton("198.51.100.2") + struct.pack(">HH", 4000, 443))
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(hdr + b"hello")
s.shutdown(socket.SHUT_WR)
try:
    s.recv(1)  # until the example closes (with an RST where it left bytes unread)
except ConnectionResetError:
    pass
PY
}

for ex in py c; do
	port=$([ $ex = py ] && echo "$P_PY" || echo "$P_C")
	cmd=$([ $ex = py ] && echo "$EX/whois.py" || echo "$TMP/whois")
	bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$cmd" "$port" > "$TMP/$ex.out" 2>&1 &
	PIDS+=($!)
	pid=$!
	for _ in $(seq 100); do grep -q listening "$TMP/$ex.out" && break; sleep 0.05; done
	client "$port" || fail "the client of whois.$ex"
	wait "$pid" || fail "whois.$ex failed: $(cat "$TMP/$ex.out")"
	grep -q "^client 203.0.113.7:4000 (PROXY v2" "$TMP/$ex.out" || fail "whois.$ex did not print the client: $(cat "$TMP/$ex.out")"
	echo "whois.$ex: $(grep ^client "$TMP/$ex.out")"
done
grep -q "^payload hello" "$TMP/py.out" || fail "whois.py did not read the payload after the header: $(cat "$TMP/py.out")"
echo "PASS: examples"
