#!/usr/bin/env bash
# The examples under scripts/examples/, each run against the real kernel side,
# the servers in an attached cgroup:
#   whois.py  the record read with socket.getsockopt and struct only
#   whois.go  the same with Go's standard library only (built here, offline)
#   whois.c   the record read with ppbpf_wait and ppbpf_get_tlvs (built against the
#             tree's libppbpf.a)
# A client sends each a v2 header from 203.0.113.7:4000 with the cloud
# balancers' TLVs (AWS 0xEA, GCP 0xE0, Azure 0xEE; made-up ids): each must
# print that client and the three ids decoded.
#   haproxy.cfg  HAProxy (send-proxy-v2, unique-id) in front of whois.py
#   nginx.conf   nginx's stream proxy (proxy_protocol on: v1) in front of whois.go
# A client on 127.0.0.1 connects through each balancer: the example must print
# that client's own port, the header's version, and HAProxy's UNIQUE_ID.
. "$(dirname "$0")/lib.sh"
need_root "the examples"
command -v python3 >/dev/null || skip "python3 is not installed (scripts/deps.sh installs it)"
command -v go >/dev/null || skip "go is not installed (scripts/deps.sh installs golang-go)"
for prog in haproxy nginx; do
	command -v "$prog" >/dev/null || skip "$prog is not installed (scripts/deps.sh installs it)"
done
# (Debian's nginx has the stream module as a module of its own: nginx.conf loads it)
NGX_STREAM=/usr/lib/nginx/modules/ngx_stream_module.so
NGX_BUILD=$(nginx -V 2>&1)
if [[ $NGX_BUILD == *--with-stream=dynamic* ]]; then
	[ -f "$NGX_STREAM" ] || skip "nginx's stream module is not installed (scripts/deps.sh installs libnginx-mod-stream)"
elif [[ $NGX_BUILD != *--with-stream* ]]; then
	skip "this nginx has no stream module"
fi
EX=$ROOT/scripts/examples
new_cgroup CG examples
new_pin_dir PIN examples
TMP=$(mktemp -d /tmp/ppbpf-test-examples.XXXXXX)
CLEANUP+=("rm -rf '$TMP'")
free_port P_PY P_GO P_C P_HA P_NGX FE_HA FE_NGX
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$P_PY,$P_GO,$P_C,$P_HA,$P_NGX" --trust 127.0.0.1 >/dev/null
cc -Wall -Werror -I"$ROOT/include" -o "$TMP/whois" "$EX/whois.c" "$OUT/libppbpf.a" || fail "whois.c does not build"
# (offline: the standard library only; caches in $TMP; no go.mod, so from $TMP, not the tree)
(cd "$TMP" && GOCACHE=$TMP/gocache GOPATH=$TMP/gopath GOFLAGS=-mod=mod GOPROXY=off \
	go build -o "$TMP/whois-go" "$EX/whois.go") || fail "whois.go does not build"

# client PORT: a v2 header from 203.0.113.7:4000 with the AWS, GCP and Azure TLVs, then "hello"
client() {
	python3 - "$1" <<'PY'
import socket, struct, sys
port = int(sys.argv[1])
def tlv(t, v):
    return bytes([t]) + struct.pack(">H", len(v)) + v
tlvs = (tlv(0xEA, b"\x01vpce-0123456789abcdef0") +              # AWS: VPCE_ID, the endpoint id
        tlv(0xE0, struct.pack(">Q", 0x0123456789ABCDEF)) +       # GCP: PSC connection id, big endian
        tlv(0xEE, b"\x01" + struct.pack("<I", 0x12345678)))      # Azure: LINKID, little endian
body = (socket.inet_aton("203.0.113.7") + socket.inet_aton("198.51.100.2") + struct.pack(">HH", 4000, 443) +
        tlvs)
hdr = b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack(">H", len(body)) + body
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(hdr + b"hello")
s.shutdown(socket.SHUT_WR)
try:
    s.recv(1)  # until the example closes (with an RST where it left bytes unread)
except ConnectionResetError:
    pass
PY
}
# The ids as the examples print them: 0x0123456789ABCDEF and 0x12345678 in decimal.
CLOUD_TLVS="tlvs AWS=vpce-0123456789abcdef0 GCP=81985529216486895 AZURE=305419896"

# start NAME PORT CMD...: CMD PORT in the attached cgroup, its output in $TMP/NAME.out; returns
# once it listens, its pid in $EX_PID
start() {
	local name=$1 port=$2
	shift 2
	spawn_in_cgroup "$CG" "$@" "$port" > "$TMP/$name.out" 2>&1
	EX_PID=$!
	for _ in $(seq 200); do
		grep -qx listening "$TMP/$name.out" && return 0
		sleep 0.05
	done
	fail "$name does not listen on port $port: $(cat "$TMP/$name.out")"
}

# finish NAME WANT: NAME exits 0, and its output (the balancer's port and the cookie written P
# and C, HAProxy's unique id's time and counter T and N) is exactly WANT
finish() {
	local name=$1 want=$2 got
	wait "$EX_PID" || fail "$name exited with $?: $(cat "$TMP/$name.out")"
	got=$(sed -E -e 's/via 127\.0\.0\.1:[0-9]+, cookie [1-9][0-9]*\)$/via 127.0.0.1:P, cookie C)/' \
		-e 's/, cookie [1-9][0-9]*\)$/, cookie C)/' \
		-e 's/^(tlvs UNIQUE_ID=127\.0\.0\.1:[0-9]+)_[0-9]+_[0-9]+$/\1_T_N/' "$TMP/$name.out")
	[ "$got" = "$want" ] || fail "$name printed:
$got
want:
$want"
	got=$(grep -E '^(client|tlvs) ' "$TMP/$name.out")
	echo "$name: ${got//$'\n'/; }"
}

# ---- the examples themselves, the header straight from the client ----
for ex in py go c; do
	case $ex in
	py) port=$P_PY cmd=$EX/whois.py ;;
	go) port=$P_GO cmd=$TMP/whois-go ;;
	c) port=$P_C cmd=$TMP/whois ;;
	esac
	start whois.$ex "$port" "$cmd"
	client "$port" || fail "the client of whois.$ex"
	if [ $ex = c ]; then # (it prints no payload)
		finish whois.c "listening
client 203.0.113.7:4000 (PROXY v2, cookie C)
$CLOUD_TLVS"
	else
		finish whois.$ex "listening
client 203.0.113.7:4000 (PROXY v2, via 127.0.0.1:P, cookie C)
$CLOUD_TLVS
payload hello"
	fi
done

# ---- the balancers' configurations, their placeholders filled in ----
# fill SRC DST NAME=VALUE...: SRC with each @NAME@ replaced by VALUE, into DST; none may be left
fill() {
	local src=$1 dst=$2 kv left
	local args=()
	shift 2
	for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
	sed "${args[@]}" "$src" > "$dst"
	left=$(grep -Eo '@[A-Z_]+@' "$dst" | sort -u | paste -sd ' ' || true)
	[ -z "$left" ] || fail "${src##*/}: placeholders the test does not fill in: $left"
}
fill "$EX/haproxy.cfg" "$TMP/haproxy.cfg" LISTEN="127.0.0.1:$FE_HA" BACKEND="127.0.0.1:$P_HA"
haproxy -c -q -f "$TMP/haproxy.cfg" || fail "haproxy rejects scripts/examples/haproxy.cfg"
mkdir "$TMP/nginx"
fill "$EX/nginx.conf" "$TMP/nginx/nginx.conf" LISTEN="127.0.0.1:$FE_NGX" BACKEND="127.0.0.1:$P_NGX" \
	PID_FILE="$TMP/nginx/nginx.pid" ERROR_LOG="$TMP/nginx/error.log"
if [[ $NGX_BUILD != *--with-stream=dynamic* ]]; then
	sed -i '/^load_module .*ngx_stream_module\.so;$/d' "$TMP/nginx/nginx.conf" # (built in)
fi
NGINX=(nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log")
"${NGINX[@]}" -t -q || fail "nginx rejects scripts/examples/nginx.conf: $(tail -3 "$TMP/nginx/error.log")"

# The balancers run outside the attached cgroup, as on a host of their own.
haproxy -f "$TMP/haproxy.cfg" -db > "$TMP/haproxy.log" 2>&1 &
HAPROXY=$!
PIDS+=("$HAPROXY")
"${NGINX[@]}" > "$TMP/nginx/stdout" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
listening() { [ -n "$(ss -Htln "sport = :$1")" ]; }
for p in "$FE_HA" "$FE_NGX"; do
	for _ in $(seq 100); do listening "$p" && break; sleep 0.1; done
	listening "$p" || fail "no balancer listens on port $p (haproxy: $(tail -2 "$TMP/haproxy.log");" \
		"nginx: $(tail -2 "$TMP/nginx/error.log"))"
done

# through FRONTEND: "hello" from 127.0.0.1 through a balancer; the client's port on stdout
through() {
	local out
	out=$(python3 -c "$LINE_CLIENT_PY" 127.0.0.1 "$1" hello half-close) || fail "the client through port $1"
	out=${out%%$'\n'*}
	[[ $out == 127.0.0.1:* ]] || fail "the client through port $1 did not bind 127.0.0.1: $out"
	echo "${out##*:}"
}

start haproxy+whois.py "$P_HA" "$EX/whois.py"
cport=$(through "$FE_HA")
finish haproxy+whois.py "listening
client 127.0.0.1:$cport (PROXY v2, via 127.0.0.1:P, cookie C)
tlvs UNIQUE_ID=127.0.0.1:${cport}_T_N
payload hello"

start nginx+whois.go "$P_NGX" "$TMP/whois-go"
cport=$(through "$FE_NGX")
finish nginx+whois.go "listening
client 127.0.0.1:$cport (PROXY v1, via 127.0.0.1:P, cookie C)
payload hello"

kill -0 "$HAPROXY" 2>/dev/null || fail "haproxy exited during the test: $(tail -3 "$TMP/haproxy.log")"
kill -0 "$NGINX_PID" 2>/dev/null || fail "nginx exited during the test: $(tail -3 "$TMP/nginx/error.log")"
# ---- PPBPF_TLVS in a buffer of 1024 bytes, socket.getsockopt's most ----
# 516 bytes (PPBPF_TLVS_MIN) take TLVs up to the default cap; 515 are EINVAL. With the cap
# raised (live, to 1024), a socket that kept 600 TLV bytes answers a 1024-byte buffer ENOSPC.
free_port P_ABI
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$P_ABI" --trust 127.0.0.1 --tlv-cap 1024 >/dev/null
bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" python3 - "$P_ABI" > "$TMP/abi.out" 2>&1 <<'PY' &
import errno, socket, struct, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(2)
print("listening", flush=True)
def tlvs(c, size):
    for _ in range(300):  # until the header is in
        if struct.unpack_from("<B", c.getsockopt(0x5050, 1, 96), 4)[0] != 1:
            break
        time.sleep(0.01)
    try:
        raw = c.getsockopt(0x5050, 2, size)
        return struct.unpack_from("<I", raw)[0]
    except OSError as e:
        return errno.errorcode[e.errno]
small, _ = s.accept()
print("small", tlvs(small, 516), tlvs(small, 515), tlvs(small, 1024))
big, _ = s.accept()
print("big", tlvs(big, 1024))
PY
PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$TMP/abi.out" && break; sleep 0.05; done
SMALL=$("$CLI" build --src-addr 203.0.113.7 --dst-addr 198.51.100.2 --src-port 4000 --dst-port 443 \
	--tlv-text AUTHORITY:example.com)
BIG=$("$CLI" build --src-addr 203.0.113.7 --dst-addr 198.51.100.2 --src-port 4000 --dst-port 443 \
	--tlv "0xF0:$(printf '%01194d' 0)")
for h in "$SMALL" "$BIG"; do
	python3 - "$P_ABI" "$h" <<'PY'
import socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
c.sendall(bytes.fromhex(sys.argv[2]))
time.sleep(0.5)
PY
done
wait "$!" || fail "the PPBPF_TLVS server: $(cat "$TMP/abi.out")"
grep -qx "small 14 EINVAL 14" "$TMP/abi.out" || fail "PPBPF_TLVS with 516, 515, 1024 bytes: $(cat "$TMP/abi.out")"
grep -qx "big ENOSPC" "$TMP/abi.out" || fail "PPBPF_TLVS of 600 TLV bytes in 1024: $(cat "$TMP/abi.out")"
echo "PPBPF_TLVS: $(tr '\n' ' ' < "$TMP/abi.out")"

echo "PASS: examples (whois.py, whois.go, whois.c; haproxy.cfg and nginx.conf in front; PPBPF_TLVS sizes)"
