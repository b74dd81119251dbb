#!/usr/bin/env bash
# Transparent mode with unmodified applications: Debian's stock nginx (no
# proxy_protocol, no realip) and stock redis-server run in an attached cgroup
# behind a real HAProxy (send-proxy-v2 and send-proxy, one frontend each per
# app). The kernel removes the PROXY header and rewrites the peer, so nginx's
# access log and redis's CLIENT LIST must name the real client (127.0.0.2-5,
# not HAProxy's 127.0.0.1), and 1 MiB each way must arrive intact.
# First, with nothing attached: the same paths must fail (nginx answers 400,
# redis errors on the header bytes), which proves the header is really there;
# and direct connections must pass the same checks, which proves the checks.
. "$(dirname "$0")/lib.sh"
need_root "the application tests (nginx, redis)"
for prog in nginx redis-server haproxy curl python3 jq; do
	command -v "$prog" >/dev/null || skip "$prog is not installed (scripts/deps.sh installs it)"
done

new_cgroup CG apps
new_pin_dir PIN apps
free_port NGX RDS FE_N2 FE_N1 FE_R2 FE_R1
TMP=$(mktemp -d /tmp/ppbpf-test-apps.XXXXXX)
CLEANUP+=("rm -rf '$TMP'")
chmod 755 "$TMP" # nginx's workers (www-data) read the docroot
MiB=$((1 << 20))

# ---- nginx: Debian's stock nginx.conf and default site, with our paths and port ----
mkdir -p "$TMP/nginx/www" "$TMP/nginx/tmp"
echo "ppbpf apps.sh index $$ $RANDOM" > "$TMP/nginx/www/index.html"
head -c "$MiB" /dev/urandom > "$TMP/nginx/www/big.bin"
chmod 644 "$TMP/nginx/www/"*
INDEX_SHA=$(sha256sum < "$TMP/nginx/www/index.html" | cut -d' ' -f1)
BIG_SHA=$(sha256sum < "$TMP/nginx/www/big.bin" | cut -d' ' -f1)
NGX_USER=root
if id www-data >/dev/null 2>&1; then NGX_USER=www-data; fi
# (the temp paths are ours so that nginx chowns nothing of the system's /var/lib/nginx)
cat > "$TMP/nginx/nginx.conf" <<CFG
user $NGX_USER;
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
daemon off;
master_process on;
events {
	worker_connections 768;
}
http {
	sendfile on;
	tcp_nopush on;
	types_hash_max_size 2048;
	include /etc/nginx/mime.types;
	default_type application/octet-stream;
	ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
	ssl_prefer_server_ciphers on;
	access_log $TMP/nginx/access.log;
	gzip on;
	client_body_temp_path $TMP/nginx/tmp/body;
	proxy_temp_path $TMP/nginx/tmp/proxy;
	fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
	uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
	scgi_temp_path $TMP/nginx/tmp/scgi;
	server {
		listen 127.0.0.1:$NGX default_server;
		root $TMP/nginx/www;
		index index.html index.htm index.nginx-debian.html;
		server_name _;
		location / {
			try_files \$uri \$uri/ =404;
		}
	}
}
CFG
NGINX=(nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log")
"${NGINX[@]}" -t -q || fail "nginx rejected the test configuration: $(tail -3 "$TMP/nginx/error.log")"

# ---- redis: Debian's stock redis.conf, on our port, in the foreground, no persistence ----
# Protected mode stays on, as stock: with no password it admits only 127.0.0.1 and ::1, so
# the real clients (127.0.0.2-9) authenticate, as any client not on the host must.
mkdir "$TMP/redis"
REDIS_PASS=ppbpf-$RANDOM$RANDOM
REDIS_CONF=()
[ ! -r /etc/redis/redis.conf ] || REDIS_CONF=(/etc/redis/redis.conf)
REDIS=(redis-server "${REDIS_CONF[@]}" --port "$RDS" --bind 127.0.0.1 --daemonize no --supervised no
	--pidfile "$TMP/redis/redis.pid" --logfile "$TMP/redis/redis.log" --dir "$TMP/redis"
	--save '' --appendonly no --requirepass "$REDIS_PASS")

# ---- HAProxy in front: one frontend per app and version ----
cat > "$TMP/haproxy.cfg" <<CFG
global
    maxconn 1000
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend nginx_v2
    bind 127.0.0.1:$FE_N2
    default_backend nginx_v2
frontend nginx_v1
    bind 127.0.0.1:$FE_N1
    default_backend nginx_v1
frontend redis_v2
    bind 127.0.0.1:$FE_R2
    default_backend redis_v2
frontend redis_v1
    bind 127.0.0.1:$FE_R1
    default_backend redis_v1
backend nginx_v2
    server s 127.0.0.1:$NGX send-proxy-v2
backend nginx_v1
    server s 127.0.0.1:$NGX send-proxy
backend redis_v2
    server s 127.0.0.1:$RDS send-proxy-v2
backend redis_v1
    server s 127.0.0.1:$RDS send-proxy
CFG
haproxy -c -f "$TMP/haproxy.cfg" -q || fail "haproxy rejected the test configuration"

# ---- a RESP client bound to a source address of its own (redis-cli binds none) ----
cat > "$TMP/resp.py" <<'PY'
"""resp.py SRC PORT check NAME | resp.py SRC PORT control: one connection to 127.0.0.1:PORT
from SRC, the password in $REDIS_PASS. check: AUTH, CLIENT SETNAME, CLIENT LIST, SET/GET/DEL
of a random 1 MiB value; control: send AUTH and PING inline, read until PONG, EOF or 2 s
of silence. One JSON line on stdout."""
import hashlib, json, os, socket, sys

src, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
password = os.environ["REDIS_PASS"]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(10)
s.bind((src, 0))
s.connect(("127.0.0.1", port))
local = "%s:%d" % s.getsockname()
f = s.makefile("rb")

def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += [b"$%d\r\n" % len(a), a, b"\r\n"]
    s.sendall(b"".join(out))
    return reply()

def reply():
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise SystemExit("resp.py: connection closed mid-reply: %r" % line)
    kind, rest = line[:1], line[1:-2]
    if kind in (b"+", b":"):
        return rest.decode()
    if kind == b"-":
        raise SystemExit("resp.py: redis error: %s" % rest.decode(errors="replace"))
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2 or not data.endswith(b"\r\n"):
            raise SystemExit("resp.py: short bulk reply: %d of %d bytes" % (len(data), n + 2))
        return data[:-2]
    raise SystemExit("resp.py: unexpected reply %r" % line)

if mode == "control":
    s.settimeout(2)
    s.sendall(b"AUTH %s\r\nPING\r\n" % password.encode())
    data, closed = b"", False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
            if b"+PONG\r\n" in data:
                break
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    print(json.dumps({"local": local, "reply": data.decode("latin-1"), "closed": closed}))
    sys.exit(0)

name = sys.argv[4]
if cmd("AUTH", password) != "OK":
    raise SystemExit("resp.py: AUTH failed")
if cmd("CLIENT", "SETNAME", name) != "OK":
    raise SystemExit("resp.py: CLIENT SETNAME failed")
listing = cmd("CLIENT", "LIST").decode()
mine = [l for l in listing.splitlines() if (" name=%s " % name) in (" " + l + " ")]
fields = dict(kv.split("=", 1) for kv in mine[0].split(" ") if "=" in kv) if len(mine) == 1 else {}
value = os.urandom(1 << 20)
key = "ppbpf-apps-" + name
set_reply = cmd("SET", key, value)
got = cmd("GET", key)
cmd("DEL", key)
print(json.dumps({
    "local": local, "lines": len(mine), "addr": fields.get("addr"), "laddr": fields.get("laddr"),
    "set": set_reply, "sent_sha": hashlib.sha256(value).hexdigest(),
    "got_len": -1 if got is None else len(got),
    "got_sha": None if got is None else hashlib.sha256(got).hexdigest()}))
PY

# ---- start everything (nothing attached yet) ----
spawn_in_cgroup "$CG" "${NGINX[@]}" > "$TMP/nginx/stdout" 2>&1
NGINX_PID=$!
spawn_in_cgroup "$CG" "${REDIS[@]}" > "$TMP/redis/stdout" 2>&1
REDIS_PID=$!
haproxy -f "$TMP/haproxy.cfg" -db > "$TMP/haproxy.log" 2>&1 &
HAPROXY=$!
PIDS+=("$HAPROXY")
listening() { [ -n "$(ss -Htln "sport = :$1")" ]; }
for p in "$NGX" "$RDS" "$FE_N2" "$FE_N1" "$FE_R2" "$FE_R1"; do
	for _ in $(seq 100); do listening "$p" && break; sleep 0.1; done
	listening "$p" || fail "nothing listens on port $p (nginx: $(tail -2 "$TMP/nginx/error.log" 2>/dev/null);" \
		"redis: $(tail -2 "$TMP/redis/redis.log" 2>/dev/null); haproxy: $(tail -2 "$TMP/haproxy.log"))"
done
alive() {
	kill -0 "$NGINX_PID" 2>/dev/null || fail "nginx exited: $(tail -3 "$TMP/nginx/error.log")"
	kill -0 "$REDIS_PID" 2>/dev/null || fail "redis-server exited: $(tail -3 "$TMP/redis/redis.log")"
	kill -0 "$HAPROXY" 2>/dev/null || fail "haproxy exited: $(tail -3 "$TMP/haproxy.log")"
}
alive

checks=0
ACCESS=$TMP/nginx/access.log
touch "$ACCESS"

# The combined format: $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
COMBINED_GET='^([^ ]+) - [^ ]+ \[[^]]+\] "GET ([^ ]+) HTTP/1\.1" ([0-9]+) ([0-9]+) "[^"]*" "[^"]*"$'
COMBINED_400='^127\.0\.0\.1 - [^ ]+ \[[^]]+\] "([^"]*)" 400 [0-9]+ "[^"]*" "[^"]*"$'

# http SRC PORT PATH TAG: GET PATH?c=TAG from SRC; "STATUS LOCAL-ADDR" on stdout, the body in $TMP/body.TAG
http() {
	curl -sS --max-time 10 --interface "$1" -o "$TMP/body.$4" \
		-w '%{http_code} %{local_ip}:%{local_port}' "http://127.0.0.1:$2$3?c=$4"
}

# log_wait N: wait until the access log has at least N lines
log_wait() {
	for _ in $(seq 50); do
		[ "$(wc -l < "$ACCESS")" -ge "$1" ] && return 0
		sleep 0.1
	done
	fail "nginx's access log has $(wc -l < "$ACCESS") lines, want $1"
}

# log_line TAG: the access log's one line for the request tagged TAG (combined format)
log_line() {
	local lines
	lines=$(grep -F "?c=$1 HTTP/" "$ACCESS" || true)
	[ -n "$lines" ] || fail "nginx logged no request tagged $1: $(tail -3 "$ACCESS")"
	[ "$(wc -l <<< "$lines")" = 1 ] || fail "nginx logged the request tagged $1 more than once: $lines"
	echo "$lines"
}

# expect_nginx SRC PORT IP: index.html and the 1 MiB file from SRC through PORT; nginx must log IP
expect_nginx() {
	local src=$1 port=$2 ip=$3 path want tag out line n
	for path in /index.html /big.bin; do
		if [ "$path" = /index.html ]; then want=$INDEX_SHA; else want=$BIG_SHA; fi
		tag=$port-${src//./-}-${path//[\/.]/}
		n=$(($(wc -l < "$ACCESS") + 1))
		out=$(http "$src" "$port" "$path" "$tag") || fail "curl $path from $src through port $port failed ($out)"
		[ "${out%% *}" = 200 ] || fail "$path from $src through port $port: HTTP ${out%% *}, want 200"
		[ "$(sha256sum < "$TMP/body.$tag" | cut -d' ' -f1)" = "$want" ] ||
			fail "$path from $src through port $port: the body ($(wc -c < "$TMP/body.$tag") bytes) differs from the file"
		log_wait "$n"
		line=$(log_line "$tag")
		[[ $line =~ $COMBINED_GET ]] ||
			fail "nginx's access log line is not in the combined format: $line"
		[ "${BASH_REMATCH[1]}" = "$ip" ] ||
			fail "nginx logged $path from $src through port $port as from ${BASH_REMATCH[1]}, want $ip: $line"
		[ "${BASH_REMATCH[3]}" = 200 ] || fail "nginx logged status ${BASH_REMATCH[3]}, want 200: $line"
		[ "${BASH_REMATCH[4]}" = "$(wc -c < "$TMP/nginx/www${path}")" ] ||
			fail "nginx logged ${BASH_REMATCH[4]} bytes sent for $path: $line"
		checks=$((checks + 1))
	done
}

# expect_redis SRC PORT: CLIENT LIST through PORT names SRC's connection as the client's own
# address and port (the check returns that endpoint), and a 1 MiB value makes the round trip
expect_redis() {
	local src=$1 port=$2 name out
	name=c-$port-${src//./-}
	out=$(REDIS_PASS=$REDIS_PASS python3 "$TMP/resp.py" "$src" "$port" check "$name") ||
		fail "the RESP client from $src through port $port failed"
	jq -e --arg src "$src" '.local | startswith($src + ":")' <<< "$out" >/dev/null ||
		fail "the RESP client did not bind $src: $out"
	jq -e '.lines == 1 and .addr == .local' <<< "$out" >/dev/null ||
		fail "redis's CLIENT LIST names the connection from $src through port $port wrongly (want addr=local): $out"
	jq -e '.set == "OK" and .got_len == 1048576 and .got_sha == .sent_sha' <<< "$out" >/dev/null ||
		fail "1 MiB SET/GET from $src through port $port did not round-trip: $out"
	checks=$((checks + 1))
}

# ---- the checks themselves, where nothing is in the way: direct connections ----
expect_nginx 127.0.0.8 "$NGX" 127.0.0.8
expect_redis 127.0.0.8 "$RDS"

# ---- negative controls, nothing attached: the servers must choke on the headers ----
# nginx_control PORT VERSION: through HAProxy, nginx gets the header and answers 400, logged from HAProxy
nginx_control() {
	local port=$1 v=$2 tag=ctl-$1 out line n
	n=$(($(wc -l < "$ACCESS") + 1))
	out=$(http 127.0.0.6 "$port" /index.html "$tag") || fail "curl through port $port (control) failed ($out)"
	[ "${out%% *}" = 400 ] || fail "without ppbpf, nginx answered a PROXY v$v connection with ${out%% *}, want 400"
	log_wait "$n"
	line=$(tail -n +"$n" "$ACCESS")
	[ "$(wc -l <<< "$line")" = 1 ] || fail "nginx logged $(wc -l <<< "$line") lines for one control request: $line"
	[[ $line =~ $COMBINED_400 ]] ||
		fail "nginx's log of the v$v control is not a 400 from HAProxy's 127.0.0.1: $line"
	if [ "$v" = 1 ]; then
		[[ ${BASH_REMATCH[1]} == "PROXY TCP4 127.0.0.6 127.0.0.1 "* ]] ||
			fail "nginx's bad request is not the v1 header: $line"
	else
		# (the signature is \r\n\r\n\0\r\nQUIT\n: nginx skips the empty lines, stops at the NUL)
		[[ ${BASH_REMATCH[1]} == '\x00'* ]] || fail "nginx's bad request is not the v2 signature: $line"
	fi
	! grep -qF "?c=$tag " "$ACCESS" || fail "nginx served the request behind a v$v header it cannot parse"
	checks=$((checks + 1))
}
# redis_control PORT VERSION: redis takes the header for commands. v1: the line is an unknown
# command PROXY (then AUTH and PING run); v2: it never answers, its inline parser looking for
# a line end behind the signature's NUL byte.
redis_control() {
	local port=$1 v=$2 out
	out=$(REDIS_PASS=$REDIS_PASS python3 "$TMP/resp.py" 127.0.0.7 "$port" control) || fail "the RESP client (control) failed"
	if [ "$v" = 1 ]; then
		jq -e '.reply | startswith("-ERR unknown command '"'PROXY'"'")' <<< "$out" >/dev/null ||
			fail "without ppbpf, redis's first answer to a PROXY v1 connection is not an error about the header: $out"
	else
		jq -e '.reply == "" and (.closed | not)' <<< "$out" >/dev/null ||
			fail "without ppbpf, redis answered a PROXY v2 connection: $out"
	fi
	checks=$((checks + 1))
}
nginx_control "$FE_N2" 2
nginx_control "$FE_N1" 1
redis_control "$FE_R2" 2
redis_control "$FE_R1" 1
alive
[ "$checks" = 7 ] || fail "$checks checks before attaching, want 7"
echo "apps: nothing attached: direct connections pass the checks; through HAProxy nginx answers 400 and redis errors"

# ---- attach transparent mode, the servers already running ----
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$NGX,$RDS" --trust 127.0.0.1 --transparent --rewrite-peer >/dev/null
ERRLOG_AT=$(wc -l < "$TMP/nginx/error.log")

expect_nginx 127.0.0.2 "$FE_N2" 127.0.0.2
expect_nginx 127.0.0.4 "$FE_N1" 127.0.0.4
expect_redis 127.0.0.3 "$FE_R2"
expect_redis 127.0.0.5 "$FE_R1"
# an untrusted peer with no header (direct, not through HAProxy): untouched
expect_nginx 127.0.0.9 "$NGX" 127.0.0.9
expect_redis 127.0.0.9 "$RDS"
alive
[ "$checks" = 16 ] || fail "$checks checks in all, want 16"
errors=$(tail -n +"$((ERRLOG_AT + 1))" "$TMP/nginx/error.log" | grep -E '\[(error|crit|alert|emerg)\]' || true)
[ -z "$errors" ] || fail "nginx logged errors while attached: $errors"
# (nginx 2 + redis 1 connections per version from trusted HAProxy, all with the header taken out;
# the same from the untrusted peer: 3)
"$CLI" status --pin-dir "$PIN" --json | jq -e '.counters | .v1 == 3 and .v2 == 3 and .error_v1 == 0
	and .error_v2 == 0 and .untrusted == 3 and .transparent_flows == 6 and .transparent_resets == 0' >/dev/null ||
	fail "unexpected counters: $("$CLI" status --pin-dir "$PIN" --json | jq -c .counters)"
echo "PASS: transparent mode under $(nginx -v 2>&1 | sed 's/.*: //') and redis $(redis-server --version | sed 's/.* v=\([^ ]*\).*/\1/'),"\
	"behind HAProxy $(haproxy -v | awk 'NR==1{print $3}') (v1 and v2), $checks checks"
