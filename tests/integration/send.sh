#!/usr/bin/env bash
# The sending side: connections that processes of an attached cgroup open to
# a --send port start with a PROXY header the kernel wrote (sk_msg), and the
# application's bytes follow unchanged.
#
#   receivers  Debian's HAProxy (`accept-proxy`, %ci/%cp in its log) and nginx
#              (`listen ... proxy_protocol`, $proxy_protocol_addr in a reply)
#              read the client's own address and port from the header, v1 and
#              v2; so do ppbpf's own receive path in annotate mode
#              (ppbpf-demo-server, ppbpf_accept) and in transparent mode (a
#              plain server on a namespace's loopback: getpeername)
#   patterns   every way of writing (write, writev, sendmsg with many iovecs,
#              MSG_MORE, TCP_CORK, sendfile, splice, a non-blocking connect, a
#              1-byte first write), v1 and v2: the stream after the header is
#              exact
#   many       1,000 connections with random write patterns and lengths
#   bulk       a 2 GiB counter stream through one injected connection
#   full       a connection that finds the sockhash full fails closed: no byte
#              of its data leaves, and it ends in ETIMEDOUT (a 2-socket
#              sockhash, PPBPF_TEST_SEND_SOCKS)
#   policy     --send-to leaves other destinations alone; `detach --send`
#              stops new headers; every socket leaves the sockhash once its
#              header is out, and nothing is left in it
#
# PPBPF_SCALE=small: 200 connections, 256 MiB.
. "$(dirname "$0")/lib.sh"
need_root "the sending-side tests"
for prog in haproxy nginx python3 jq curl; do
	command -v "$prog" >/dev/null || skip "$prog is not installed (scripts/deps.sh installs it)"
done
print_scale
SEND_TEST=$OUT/tests/send_test
DEMO_SERVER=$OUT/ppbpf-demo-server
[ -x "$SEND_TEST" ] || fail "no $SEND_TEST (make $SEND_TEST)"
check_case "$SEND_TEST" receivers patterns many bulk policy full
scaled N_MANY 1000 200
scaled BULK $((2 << 30)) $((256 << 20))

new_cgroup CG send
new_cgroup CG_R send-recv
new_pin_dir PIN send
new_pin_dir PIN_R send-recv
TMP=$(mktemp -d /tmp/ppbpf-test-send.XXXXXX)
CLEANUP+=("rm -rf '$TMP'")
chmod 755 "$TMP"
free_port H1 H2 H3 P_TLV N1 N2 ECHO A1 A2 P_RAW1 P_RAW2 P_OTHER P_PAT1 P_PAT2 P_MANY P_BULK

# in_cg CG CMD...: CMD in cgroup CG (the sending side looks at its sockets' cgroup).
in_cg() {
	local cg=$1
	shift
	bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}
listening() { ss -Htln "sport = :$1" | grep -q .; }
wait_listening() {
	for _ in $(seq 100); do listening "$1" && return 0; sleep 0.05; done
	fail "nothing listens on port $1${2:+: $2}"
}
status() { "$CLI" status --pin-dir "$PIN" --json; }
counter() { status | jq ".counters.$1"; }

"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" \
	--send "$H1:v1,$H2:v2,$N1:v1,$N2:v2,$A1:v1,$A2:v2,$P_RAW1:v1,$P_RAW2:v2,$P_PAT1:v1,$P_PAT2:v2,$P_MANY:v2,$P_BULK:v2" \
	--send-to 127.0.0.0/8,::1/128 >/dev/null
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --send "$H3,$P_TLV" --send-to 127.0.0.0/8 \
	--send-tlv crc32c,unique-id,authority=backend.ppbpf.example,alpn=h2 >/dev/null

# a small TCP client in the sending cgroup (LINE_CLIENT_PY: client SRC PORT LINE [half-close])
client() { in_cg "$CG" python3 -c "$LINE_CLIENT_PY" "$@"; }

# receiver OUT ARGS...: send_test recv in the background (outside the sending cgroup); waits for it.
receiver() {
	local out=$1
	shift
	"$SEND_TEST" recv "$@" > "$out" 2> "$out.err" &
	PIDS+=($!)
	RECV=$!
	for _ in $(seq 100); do grep -q listening "$out" && return 0; sleep 0.05; done
	fail "send_test recv $* did not start: $(cat "$out.err")"
}
# received OUT WHAT: the receiver ended with every connection ok (exact stream, header from the client's own ends).
received() {
	wait "$RECV" ||
		fail "$2: $(jq -c 'select(.summary)' "$1") failures: $(jq -c -s 'map(select(.ok == false) | {index, version, src, peer, error})[0:4]' "$1")"
}
PATTERNS="write writev sendmsg more cork sendfile splice nonblock first-small"

# ---- receivers -----------------------------------------------------------------------------------
if selected receivers; then
	# an echo server behind HAProxy (it answers with what it got)
	echo_server "$ECHO" "$TMP/echo.log"
	{ haproxy_tcp_head; cat <<EOF; } > "$TMP/haproxy.cfg"
	log-format "hap %ci:%cp %fi:%fp %[fc_pp_authority] %[fc_pp_unique_id]"
frontend tlvs
	bind 127.0.0.1:$H3 accept-proxy
	default_backend echo
frontend v1
	bind 127.0.0.1:$H1 accept-proxy
	default_backend echo
frontend v2
	bind 127.0.0.1:$H2 accept-proxy
	default_backend echo
backend echo
	server echo 127.0.0.1:$ECHO
EOF
	haproxy -f "$TMP/haproxy.cfg" -db > "$TMP/haproxy.log" 2>&1 &
	PIDS+=($!)
	mkdir -p "$TMP/nginx/tmp"
	cat > "$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
daemon off;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path $TMP/nginx/tmp/body;
	proxy_temp_path $TMP/nginx/tmp/proxy;
	fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
	uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
	scgi_temp_path $TMP/nginx/tmp/scgi;
	server {
		listen 127.0.0.1:$N1 proxy_protocol;
		listen 127.0.0.1:$N2 proxy_protocol;
		location / { return 200 "nginx \$proxy_protocol_addr:\$proxy_protocol_port \$proxy_protocol_server_addr:\$proxy_protocol_server_port\n"; }
	}
}
EOF
	nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" &
	PIDS+=($!)
	for p in "$ECHO" "$H1" "$H2" "$H3" "$N1" "$N2"; do wait_listening "$p" "see $TMP/haproxy.log, $TMP/nginx/error.log"; done

	# HAProxy: the header's source is the client's own address and port, its destination the frontend's
	for port in "$H1" "$H2"; do
		out=$(client 127.0.0.2 "$port" "ping $port" half-close)
		me=$(head -1 <<< "$out")
		[ "$(tail -n +2 <<< "$out")" = "ping $port" ] || fail "HAProxy on $port: the echo came back as '$(tail -n +2 <<< "$out")'"
		for _ in $(seq 50); do grep -q "hap $me 127.0.0.1:$port" "$TMP/haproxy.log" && break; sleep 0.1; done
		grep -q "hap $me 127.0.0.1:$port" "$TMP/haproxy.log" ||
			fail "HAProxy on $port did not log the header's client $me: $(grep hap "$TMP/haproxy.log" | tail -3)"
	done
	echo "receivers: HAProxy accept-proxy logged the client's own address (127.0.0.2) and port from v1 and v2 headers"

	# v2 TLVs: HAProxy checks the CRC32C (a wrong one is refused: the check is real) and logs AUTHORITY and UNIQUE_ID
	python3 - "$H3" <<'PY' || fail "HAProxy accepted a v2 header whose CRC32C is wrong: it does not check it"
import socket, struct, sys
tlvs = b"\x03\x00\x04\xde\xad\xbe\xef"  # a CRC32C TLV with a wrong value
hdr = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack(">H", 12 + len(tlvs)) + socket.inet_aton("198.51.100.7") +
       socket.inet_aton("127.0.0.1") + struct.pack(">HH", 4000, int(sys.argv[1])) + tlvs)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
got = b""
try:  # HAProxy resets the connection as soon as it has read the header: any step may find it gone
    s.sendall(hdr + b"crc?")
    s.shutdown(socket.SHUT_WR)
    got = s.recv(100)
except OSError:
    pass
sys.exit(0 if got == b"" else 1)
PY
	out=$(client 127.0.0.4 "$H3" "tlvs" half-close)
	me=$(head -1 <<< "$out")
	[ "$(tail -n +2 <<< "$out")" = "tlvs" ] || fail "HAProxy refused the kernel's v2 header with TLVs: $(grep -v '^hap' "$TMP/haproxy.log" | tail -2)"
	for _ in $(seq 50); do grep -q "hap $me 127.0.0.1:$H3 backend.ppbpf.example [0-9a-f]\{32\}$" "$TMP/haproxy.log" && break; sleep 0.1; done
	grep -q "hap $me 127.0.0.1:$H3 backend.ppbpf.example [0-9a-f]\{32\}$" "$TMP/haproxy.log" ||
		fail "HAProxy did not log the AUTHORITY and a 32-digit UNIQUE_ID: $(grep "hap $me" "$TMP/haproxy.log")"
	echo "receivers: HAProxy checked the kernel's CRC32C (and refused a wrong one), and logged its AUTHORITY and UNIQUE_ID"

	# nginx: $proxy_protocol_addr and _port are the client's
	for port in "$N1" "$N2"; do
		out=$(client 127.0.0.2 "$port" $'GET / HTTP/1.0\r\nHost: t\r\n\r\n')
		me=$(head -1 <<< "$out")
		grep -q "^nginx $me 127.0.0.1:$port" <<< "$out" ||
			fail "nginx on $port did not see the header's client $me: $(tail -n +2 <<< "$out" | tail -2) $(tail -2 "$TMP/nginx/error.log")"
	done
	echo "receivers: nginx listen proxy_protocol returned the client's address and port from v1 and v2 headers"

	# ppbpf's receive path, annotate mode: a second attachment on the receiving cgroup
	"$CLI" attach --cgroup "$CG_R" --pin-dir "$PIN_R" --port "$A1,$A2" --trust 127.0.0.0/8 >/dev/null
	for port in "$A1" "$A2"; do
		bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG_R" "$DEMO_SERVER" --port "$port" --count 1 --reply "ok" \
			> "$TMP/demo.$port" 2>&1 &
		PIDS+=($!)
		pid=$!
		wait_listening "$port" "see $TMP/demo.$port"
		out=$(client 127.0.0.3 "$port" "hello" half-close)
		me=$(head -1 <<< "$out")
		wait "$pid" || fail "ppbpf-demo-server on $port: $(cat "$TMP/demo.$port")"
		want=$([ "$port" = "$A1" ] && echo 1 || echo 2)
		jq -e --arg me "$me" --argjson v "$want" '.mode == "kernel" and .client == $me and .version == $v and
			.request == "hello"' "$TMP/demo.$port" >/dev/null ||
			fail "ppbpf annotate mode on $port did not record the client $me (v$want): $(cat "$TMP/demo.$port")"
	done
	"$CLI" detach --pin-dir "$PIN_R" >/dev/null
	echo "receivers: ppbpf's own kernel side (annotate mode, ppbpf_accept) parsed v1 and v2 headers with the client's address"

	# transparent mode, on a namespace's loopback: a plain server reads only the payload, and its peer is the client
	new_netns NS send
	in_ns() { nsenter --net="/run/netns/$NS" "$@"; }
	in_ns "$CLI" attach --cgroup "$CG_R" --pin-dir "$PIN_R" --port "$A2" --trust 127.0.0.0/8 --transparent >/dev/null
	in_ns bash -c 'echo $$ > "$0/cgroup.procs" && exec python3 - "$1"' "$CG_R" "$A2" > "$TMP/plain" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
print("listening", flush=True)
c, a = s.accept(); c.settimeout(10); data = b""
while True:
    d = c.recv(65536)
    if not d:
        break
    data += d
print("%s:%d %r" % (c.getpeername() + (data,)), flush=True)
PY
	PIDS+=($!)
	pid=$!
	for _ in $(seq 100); do grep -q listening "$TMP/plain" && break; sleep 0.05; done
	out=$(in_ns bash -c 'echo $$ > "$0/cgroup.procs" && exec python3 -c "$1" "$2"' "$CG" '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"transparent hello"); s.shutdown(socket.SHUT_WR); s.recv(1)
print("%s:%d" % s.getsockname())' "$A2")
	wait "$pid" || fail "the plain server behind transparent mode: $(cat "$TMP/plain")"
	[ "$(tail -1 "$TMP/plain")" = "$out b'transparent hello'" ] ||
		fail "transparent mode behind a sent header: the server got '$(tail -1 "$TMP/plain")', want '$out b'transparent hello''"
	in_ns "$CLI" detach --pin-dir "$PIN_R" >/dev/null
	echo "receivers: ppbpf's transparent mode took the sent header out: a plain server read only the payload, from $out"
fi

# ---- patterns ------------------------------------------------------------------------------------
if selected patterns; then
	n_pat=$(wc -w <<< "$PATTERNS")
	for spec in "127.0.0.1 $P_PAT1 v1" "127.0.0.1 $P_PAT2 v2" "::1 $P_PAT2 v2"; do
		read -r addr port v <<< "$spec"
		receiver "$TMP/pat" "$addr" "$port" $((2 * n_pat)) --expect "$v" --threads 4
		i=0
		for p in $PATTERNS; do
			for nb in "" --nb-connect; do
				in_cg "$CG" "$SEND_TEST" send "$addr" "$port" --bytes 1M --pattern "$p" --index "$i" $nb --seed 7 \
					> "$TMP/pat.send" 2>&1 || fail "send --pattern $p $nb to $addr: $(cat "$TMP/pat.send")"
				i=$((i + 1))
			done
		done
		received "$TMP/pat" "every write pattern ($v, $addr)"
	done
	# writes before the handshake completes: the receiver holds the SYNs, the writers find SYN_SENT (EAGAIN)
	receiver "$TMP/early" 127.0.0.1 "$P_PAT2" "$n_pat" --expect v2 --threads 4 --syn-hold-ms 300
	pids=()
	i=0
	for p in $PATTERNS; do
		in_cg "$CG" "$SEND_TEST" send 127.0.0.1 "$P_PAT2" --bytes 256K --pattern "$p" --index "$i" --nb-connect \
			> "$TMP/early.$i" 2>&1 &
		pids+=($!)
		i=$((i + 1))
	done
	for k in "${!pids[@]}"; do
		if ! wait "${pids[$k]}"; then fail "an early writer: $(cat "$TMP/early.$k")"; fi
	done
	received "$TMP/early" "writes tried before the handshake completed"
	# (Linux queues nothing on a connecting socket: such a write gets EAGAIN; how often it happened depends
	# on whether the receiver's trick holds SYNs on this kernel: 6.18 yes, 6.1 not)
	early=$(cat "$TMP"/early.[0-9]* | grep -c '"early_tries":[1-9]' || true)
	echo "patterns: $PATTERNS: the header first, then the stream exact (v1, v2, IPv4, IPv6; blocking and"
	echo "  non-blocking connects; $early of $n_pat writers tried first while the handshake was incomplete: EAGAIN)"
fi

# ---- many ----------------------------------------------------------------------------------------
if selected many; then
	receiver "$TMP/many" ::1 "$P_MANY" "$N_MANY" --expect v2 --threads 32
	if ! in_cg "$CG" "$SEND_TEST" many ::1 "$P_MANY" "$N_MANY" --concurrency 32 --seed 11 --bytes-max 1M \
		> "$TMP/many.send" 2>&1; then
		wait "$RECV" || true
		fail "many: $(tail -1 "$TMP/many.send" | jq -c '{conns, ok, failed, first_failure}')
	the receiver: $(jq -c 'select(.summary)' "$TMP/many") $(jq -c -s 'map(select(.ok == false) | {index, version, error, bytes, expected, total, ms})[0:4]' "$TMP/many")
	counters: $(status | jq -c '.counters | {sent, send_released, send_failed, send_no_room}')"
	fi
	received "$TMP/many" "$N_MANY connections with random write patterns"
	echo "many: $N_MANY connections, random write patterns and lengths: every one exact, with its own header"
fi

# ---- bulk ----------------------------------------------------------------------------------------
if selected bulk; then
	receiver "$TMP/bulk" 127.0.0.1 "$P_BULK" 1 --expect v2 --timeout 120
	in_cg "$CG" "$SEND_TEST" send 127.0.0.1 "$P_BULK" --bytes "$BULK" --pattern write --timeout 120 > "$TMP/bulk.send" 2>&1 ||
		fail "bulk: $(cat "$TMP/bulk.send")"
	received "$TMP/bulk" "a $((BULK >> 20)) MiB counter stream"
	echo "bulk: $((BULK >> 20)) MiB of counters through one injected connection: exact"
fi

# ---- policy --------------------------------------------------------------------------------------
if selected policy; then
	# raw receivers: what arrives, byte for byte
	raw_recv() {
		python3 - "$1" > "$2" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
print("listening", flush=True)
c, a = s.accept(); c.settimeout(10); data = b""
while True:
    d = c.recv(65536)
    if not d:
        break
    data += d
print(repr(data), flush=True)
PY
		PIDS+=($!)
		RAW=$!
		wait_listening "$1"
	}
	raw_recv "$P_RAW2" "$TMP/raw2"
	out=$(client 127.0.0.1 "$P_RAW2" "abc" half-close)
	wait "$RAW"
	me=$(head -1 <<< "$out")
	python3 - "$TMP/raw2" "$me" "$P_RAW2" <<'PY' || fail "the v2 header on the wire is not the one expected: $(cat "$TMP/raw2")"
import ast, socket, struct, sys
data = ast.literal_eval(open(sys.argv[1]).read().splitlines()[-1])
ip, port = sys.argv[2].rsplit(":", 1)
want = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack(">H", 12) + socket.inet_aton(ip) +
        socket.inet_aton("127.0.0.1") + struct.pack(">HH", int(port), int(sys.argv[3])) + b"abc")
sys.exit(0 if data == want else 1)
PY
	raw_recv "$P_RAW1" "$TMP/raw1"
	out=$(client 127.0.0.1 "$P_RAW1" "abc" half-close)
	wait "$RAW"
	me=$(head -1 <<< "$out")
	want="b'PROXY TCP4 ${me%:*} 127.0.0.1 ${me##*:} $P_RAW1\\r\\nabc'"
	[ "$(tail -1 "$TMP/raw1")" = "$want" ] || fail "the v1 header on the wire: $(tail -1 "$TMP/raw1"), want $want"
	# the TLVs on the wire, in order, with the header's length and the CRC32C over all of it
	raw_recv "$P_TLV" "$TMP/rawtlv"
	client 127.0.0.1 "$P_TLV" "abc" half-close >/dev/null
	wait "$RAW"
	python3 - "$TMP/rawtlv" <<'PY' || fail "the v2 TLVs on the wire: $(tail -1 "$TMP/rawtlv")"
import ast, struct, sys
data = ast.literal_eval(open(sys.argv[1]).read().splitlines()[-1])
n = struct.unpack(">H", data[14:16])[0]
hdr, rest = data[:16 + n], data[16 + n:]
tlvs, at = [], 28
while at < len(hdr):
    t, l = hdr[at], struct.unpack(">H", hdr[at + 1:at + 3])[0]
    tlvs.append((t, hdr[at + 3:at + 3 + l]))
    at += 3 + l
def crc32c(b):
    c = 0xffffffff
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ (0x82f63b78 if c & 1 else 0)
    return c ^ 0xffffffff
types = [t for t, _ in tlvs]
uid, crc = tlvs[2][1], tlvs[3][1]
zeroed = hdr[:len(hdr) - 4] + b"\0\0\0\0"
ok = (rest == b"abc" and at == len(hdr) and types == [0x02, 0x01, 0x05, 0x03] and tlvs[0][1] == b"backend.ppbpf.example"
      and tlvs[1][1] == b"h2" and len(uid) == 32 and all(c in b"0123456789abcdef" for c in uid)
      and struct.unpack(">I", crc)[0] == crc32c(zeroed))
sys.exit(0 if ok else 1)
PY
	echo "policy: the bytes on the wire are exactly the header (v1 and v2) and then the application's;"
	echo "  v2 TLVs in order (AUTHORITY, ALPN, UNIQUE_ID, CRC32C over the whole header)"

	# a destination outside --send-to gets nothing
	"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --send "$P_OTHER" --send-to 192.0.2.0/24 >/dev/null
	raw_recv "$P_OTHER" "$TMP/other"
	client 127.0.0.1 "$P_OTHER" "abc" half-close >/dev/null
	wait "$RAW"
	[ "$(tail -1 "$TMP/other")" = "b'abc'" ] || fail "a destination outside --send-to got: $(tail -1 "$TMP/other")"
	# `detach --send` stops new headers
	"$CLI" detach --pin-dir "$PIN" --send "$P_RAW2" >/dev/null
	status | jq -e --argjson p "$P_RAW2" '[.send[].port] | index($p) == null' >/dev/null ||
		fail "detach --send left the port's policy: $(status | jq -c .send)"
	raw_recv "$P_RAW2" "$TMP/raw2b"
	client 127.0.0.1 "$P_RAW2" "abc" half-close >/dev/null
	wait "$RAW"
	[ "$(tail -1 "$TMP/raw2b")" = "b'abc'" ] || fail "after detach --send, a connection got: $(tail -1 "$TMP/raw2b")"
	echo "policy: a destination outside --send-to and a port after detach --send got no header"

	# TCP Fast Open would put the first bytes in the SYN, before the header can be written: refused, both ways
	raw_recv "$P_RAW1" "$TMP/tfo"
	before=$(counter send_fastopen_refused)
	out=$(in_cg "$CG" python3 - "$P_RAW1" <<'PY'
import errno, socket, sys
port = int(sys.argv[1])
res = []
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, 30, 1)  # TCP_FASTOPEN_CONNECT
try:
    s.connect(("127.0.0.1", port)); res.append("connected")
except OSError as e:
    res.append(errno.errorcode[e.errno])
s = socket.socket()
try:
    s.sendto(b"tfo", 0x20000000, ("127.0.0.1", port)); res.append("sent")  # MSG_FASTOPEN
except OSError as e:
    res.append(errno.errorcode[e.errno])
s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"plain"); s.close(); res.append("plain")
print(" ".join(res))
PY
)
	wait "$RAW"
	[ "$out" = "EPERM EPERM plain" ] || fail "TCP Fast Open to a --send destination: '$out', want 'EPERM EPERM plain'"
	[ "$(counter send_fastopen_refused)" = $((before + 2)) ] ||
		fail "send_fastopen_refused went from $before to $(counter send_fastopen_refused), want +2"
	grep -q "^b'PROXY TCP4 .*plain'" "$TMP/tfo" || fail "after the refused Fast Opens, a plain connect got: $(tail -1 "$TMP/tfo")"
	echo "policy: TCP Fast Open to a --send destination was refused (EPERM, counted) both ways; a plain connect got its header"

	# ppbpf run: 'send' config lines, and a reload (SIGHUP) that drops one removes its outbound policy
	new_cgroup CG_RUN send-run
	new_pin_dir PIN_RUN send-run
	printf 'send %s:v1,%s send-to 127.0.0.0/8\n' "$P_RAW1" "$P_RAW2" > "$TMP/run.conf"
	"$CLI" run --cgroup "$CG_RUN" --pin-dir "$PIN_RUN" --config "$TMP/run.conf" > "$TMP/run.log" 2>&1 &
	PIDS+=($!)
	daemon=$!
	for _ in $(seq 100); do grep -q "ppbpf: running (" "$TMP/run.log" && break; sleep 0.1; done
	run_send() { "$CLI" status --pin-dir "$PIN_RUN" --json | jq -c '[.send[] | {port, version}] | sort_by(.port)'; }
	want=$(jq -nc --argjson a "$P_RAW1" --argjson b "$P_RAW2" '[{port: $a, version: 1}, {port: $b, version: 2}] | sort_by(.port)')
	[ "$(run_send)" = "$want" ] || fail "ppbpf run's 'send' line gave $(run_send), want $want; log: $(tail -3 "$TMP/run.log")"
	printf 'send %s:v2\n' "$P_RAW1" > "$TMP/run.conf"
	kill -HUP "$daemon"
	for _ in $(seq 50); do grep -q "policy reloaded" "$TMP/run.log" && break; sleep 0.1; done
	[ "$(run_send)" = "[{\"port\":$P_RAW1,\"version\":2}]" ] ||
		fail "after the reload, the outbound policy is $(run_send); log: $(tail -3 "$TMP/run.log")"
	kill -TERM "$daemon"
	wait "$daemon" || fail "ppbpf run did not stop cleanly: $(tail -3 "$TMP/run.log")"
	echo "policy: ppbpf run took 'send' lines, and a reload made the outbound policy exactly the new config's"
fi

# ---- a full sockhash: fail closed -------------------------------------------------------------------
if selected full; then
	new_cgroup CG_F send-full
	new_pin_dir PIN_F send-full
	free_port P_FULL
	PPBPF_TEST_SEND_SOCKS=2 "$CLI" attach --cgroup "$CG_F" --pin-dir "$PIN_F" --send "$P_FULL" --send-to 127.0.0.0/8 \
		>/dev/null
	# the receiver: per connection, the number of bytes it got before EOF or 4 s of silence
	python3 - "$P_FULL" > "$TMP/full.log" 2>&1 <<'PY' &
import json, socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
def serve(c, peer):
    got = b""
    c.settimeout(4)
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            got += d
    except OSError:
        pass
    print(json.dumps({"peer": "%s:%d" % peer[:2], "bytes": len(got), "head": got[:6].decode(errors="replace")}), flush=True)
    c.close()
while True:
    c, peer = s.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
PY
	PIDS+=($!)
	wait_listening "$P_FULL" "see $TMP/full.log"
	# two idle connections fill the sockhash (they wait there for a first send); a third cannot join it
	out=$(in_cg "$CG_F" python3 - "$P_FULL" <<'PY'
import errno, socket, struct, sys, time
port = int(sys.argv[1])
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
time.sleep(0.2)
s = socket.create_connection(("127.0.0.1", port))
me = "%s:%d" % s.getsockname()[:2]
relay = "none"  # PPBPF_RELAY on it: no room for a header (whatever the token)
try:
    s.setsockopt(0x5050, 4, struct.pack("<QII", 1, 0, 0))
except OSError as e:
    relay = errno.errorcode[e.errno]
start = time.monotonic()
err = "none"
try:
    s.sendall(b"no header, no data")
    s.settimeout(10)
    s.recv(1)
except OSError as e:
    err = (e.strerror or str(e)).replace(" ", "_")
print(me, err, "%.1f" % (time.monotonic() - start), relay)
for c in idle:
    c.sendall(b"late")
    c.close()
PY
	) || fail "the client of a full sockhash: $out"
	read -r me err took relay <<< "$out"
	[ "$err" = Connection_timed_out ] || fail "a connection that found the sockhash full: '$err' after ${took}s, want ETIMEDOUT"
	[ "$relay" = ENOMEM ] || fail "PPBPF_RELAY on a connection that could get no header: $relay, want ENOMEM"
	for _ in $(seq 60); do grep -q "\"$me\"" "$TMP/full.log" && break; sleep 0.1; done
	got=$(grep "\"$me\"" "$TMP/full.log" | jq .bytes) || fail "the receiver did not see $me: $(cat "$TMP/full.log")"
	[ "$got" = 0 ] || fail "a connection without its header sent $got bytes"
	# (a v2 header of 28 bytes, then "late")
	with_header() { jq -s 'map(select(.bytes == 32 and (.head | startswith("\r\n\r\n")))) | length' "$TMP/full.log"; }
	for _ in $(seq 60); do [ "$(with_header)" = 2 ] && break; sleep 0.1; done
	[ "$(with_header)" = 2 ] ||
		fail "the two idle connections did not send their header first: $(cat "$TMP/full.log")"
	st=$("$CLI" status --pin-dir "$PIN_F" --json)
	jq -e '.counters.send_no_room == 1 and .counters.send_dropped >= 1 and .counters.sent == 2' <<< "$st" >/dev/null ||
		fail "counters: $(jq -c '.counters | {sent, send_no_room, send_dropped}' <<< "$st")"
	"$CLI" detach --pin-dir "$PIN_F" >/dev/null
	echo "full: with the sockhash full, a connection sent none of its bytes and failed with ETIMEDOUT in ${took} s" \
		"($(jq .counters.send_dropped <<< "$st") data segments dropped); the others sent their header first"
fi

# ---- every socket left the sockhash once its header was out ---------------------------------------
if selected receivers patterns many bulk policy; then
for _ in $(seq 50); do
	left=$(bpftool map dump pinned "$PIN/send_socks" -j 2>/dev/null | jq length)
	[ "$left" = 0 ] && break
	sleep 0.1
done
[ "$left" = 0 ] || fail "$left sockets left in the sockhash send_socks"
st=$(status)
jq -e '.counters.sent > 0 and .counters.sent == .counters.send_released and .counters.send_failed == 0 and
	.counters.send_no_room == 0' <<< "$st" >/dev/null ||
	fail "counters: $(jq -c '.counters | {sent, send_released, send_failed, send_no_room}' <<< "$st")"
echo "released: $(jq .counters.sent <<< "$st") headers sent, every socket out of the sockhash once its header went out"
fi
echo "PASS: the sending side"
