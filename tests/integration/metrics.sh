#!/usr/bin/env bash
# The counters for Prometheus: `ppbpf stats --prometheus` and a scrape of
# `ppbpf run --metrics`'s /metrics are both accepted by promtool (`check
# metrics`, Debian's, unpacked by scripts/deps.sh), hold the counts of a
# scripted scenario, and agree. The endpoint binds to loopback by default,
# answers 404 and 405 off its one route, and a start whose address is taken
# fails, leaving nothing attached.
. "$(dirname "$0")/lib.sh"
need_root "the metrics tests"
PROMTOOL=${PROMTOOL:-$ROOT/.output/tools/promtool}
[ -x "$PROMTOOL" ] || skip "no promtool at $PROMTOOL (scripts/deps.sh unpacks it)"
for prog in curl python3 ss; do
	command -v "$prog" >/dev/null || skip "$prog is not installed (scripts/deps.sh installs it)"
done
new_cgroup CG metrics
new_pin_dir PIN metrics
TMP=$(mktemp -d /tmp/ppbpf-test-metrics.XXXXXX)
CLEANUP+=("rm -rf '$TMP'")
free_port P M

"$CLI" run --cgroup "$CG" --pin-dir "$PIN" --port "$P" --trust 127.0.0.1 --metrics "$M" > "$TMP/run.log" 2>&1 &
RUN=$!
PIDS+=("$RUN")
for _ in $(seq 100); do grep -q "metrics at" "$TMP/run.log" && break; sleep 0.05; done
grep -q "metrics at http://127.0.0.1:$M/metrics" "$TMP/run.log" || fail "run did not serve metrics: $(cat "$TMP/run.log")"
ss -Hltn "sport = :$M" | grep -q "127.0.0.1:$M" || fail "not bound to loopback: $(ss -Hltn "sport = :$M")"

# The scenario: a server in the cgroup; a v2 header, a v1 header, and a stream without one.
in_cgroup "$CG" python3 - "$P" > "$TMP/server.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
print("listening", flush=True)
for _ in range(3):
    c, _ = s.accept()
    c.settimeout(3)
    try:
        while c.recv(4096):
            pass
    except OSError:
        pass
    c.close()
PY
PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$TMP/server.log" && break; sleep 0.05; done
V2=$("$CLI" build --src-addr 203.0.113.7 --dst-addr 198.51.100.2 --src-port 4000 --dst-port 443)
V1=$("$CLI" build --version 1 --src-addr 198.51.100.9 --dst-addr 198.51.100.2 --src-port 5000 --dst-port 443)
NOT_PROXY=$(printf 'GET / HTTP/1.0\r\n\r\n' | od -An -tx1 | tr -d ' \n')
python3 - "$P" "$V2" "$V1" "$NOT_PROXY" <<'PY'
import socket, sys
for h in sys.argv[2:]:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    s.sendall(bytes.fromhex(h) + b"hello")
    s.shutdown(socket.SHUT_WR)
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()
PY
for _ in $(seq 200); do
	[ "$("$CLI" list --pin-dir "$PIN" --json | jq length)" = 0 ] && break
	sleep 0.05
done

# scrape PATH [CURL-OPTIONS]: the body in $TMP/body, the headers in $TMP/headers; prints the status.
scrape() {
	curl -s -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}' "${@:2}" "http://127.0.0.1:$M$1"
}
[ "$(scrape /metrics)" = 200 ] || fail "GET /metrics: $(cat "$TMP/headers")"
cp "$TMP/body" "$TMP/scrape.prom"
grep -qi '^content-type: text/plain; version=0.0.4' "$TMP/headers" || fail "content type: $(cat "$TMP/headers")"
"$CLI" stats --pin-dir "$PIN" --prometheus > "$TMP/stats.prom"
for f in scrape stats; do
	"$PROMTOOL" check metrics < "$TMP/$f.prom" > "$TMP/$f.lint" 2>&1 || fail "promtool refused the $f: $(cat "$TMP/$f.lint")"
	[ ! -s "$TMP/$f.lint" ] || fail "promtool found problems in the $f: $(cat "$TMP/$f.lint")"
done
cmp -s "$TMP/scrape.prom" "$TMP/stats.prom" || fail "the scrape and stats --prometheus differ: $(diff "$TMP/scrape.prom" "$TMP/stats.prom")"
value() { # value SAMPLE: the value of the sample line that starts with SAMPLE
	awk -v s="$1" 'index($0, s " ") == 1 { print $2 }' "$TMP/scrape.prom"
}
[ "$(value 'ppbpf_headers_total{version="2"}')" = 1 ] || fail "v2 headers: $(grep headers_total "$TMP/scrape.prom")"
[ "$(value 'ppbpf_headers_total{version="1"}')" = 1 ] || fail "v1 headers: $(grep headers_total "$TMP/scrape.prom")"
[ "$(value ppbpf_streams_without_header_total)" = 1 ] || fail "streams without a header"
[ "$(value ppbpf_rejected_total)" = 1 ] || fail "rejections: $(grep rejected "$TMP/scrape.prom")"
[ "$(value ppbpf_connections_tracked_total)" = 3 ] || fail "tracked: $(grep tracked "$TMP/scrape.prom")"
grep -q '^# TYPE ppbpf_rejected_by_reason_total counter$' "$TMP/scrape.prom" || fail "no TYPE line for a labelled counter"
[ "$(grep -c '^# HELP ' "$TMP/scrape.prom")" = "$(grep -c '^# TYPE ' "$TMP/scrape.prom")" ] || fail "HELP and TYPE lines differ in number"
echo "scrape: $(grep -vc '^#' "$TMP/scrape.prom") samples, promtool clean, the same as stats --prometheus"
t_checks=1

[ "$(scrape /)" = 404 ] || fail "GET / is not 404"
[ "$(scrape /metrics -X POST -d x=1)" = 405 ] || fail "POST /metrics is not 405"
grep -qi '^allow: GET, HEAD' "$TMP/headers" || fail "405 without Allow: $(cat "$TMP/headers")"
[ "$(scrape /metrics -I)" = 200 ] || fail "HEAD /metrics is not 200"
echo "routes: 404 off /metrics, 405 for POST, HEAD answered"

# A second daemon's metrics address is taken: refused before anything changes (its own pin folder).
new_cgroup CG2 metrics-taken
new_pin_dir PIN2 metrics-taken
free_port P2
rc=0
"$CLI" run --cgroup "$CG2" --pin-dir "$PIN2" --port "$P2" --trust 127.0.0.1 --metrics "127.0.0.1:$M" \
	> "$TMP/taken.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "run with a taken metrics address exited $rc: $(cat "$TMP/taken.log")"
grep -q "cannot serve metrics at 127.0.0.1:$M" "$TMP/taken.log" || fail "taken: $(cat "$TMP/taken.log")"
! "$CLI" status --pin-dir "$PIN2" --json | jq -e .attached >/dev/null || fail "a failed start left an attachment"
echo "taken: refused, nothing left attached"

kill -TERM "$RUN"
wait "$RUN" || fail "ppbpf run did not exit 0 on SIGTERM: $(cat "$TMP/run.log")"
echo "PASS: metrics"
