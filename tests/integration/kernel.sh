#!/usr/bin/env bash
# The kernel receive path on real sockets: recv_test in an attached cgroup;
# a header behind a lost segment (in a network namespace of its own); the
# same cases with nothing attached (userspace fallback); then the check that
# detach leaves no program, link, pin or map behind.
. "$(dirname "$0")/lib.sh"
need_root "the kernel receive path tests"
TEST=$OUT/tests/recv_test
check_case "$TEST"
print_scale
scaled N_IN_A_ROW 1000 250 # connections in a row, each a random case, payload and transport
scaled N_CLOSED 10000 1000 # connections opened and closed to show that none leaves an entry

new_cgroup CG kernel
new_cgroup CG_PLAIN plain
new_pin_dir PIN kernel
free_port P_REQ P_RW P_OPT P_NONE P_T2
LOOP=127.0.0.0/8,::1

bpffs_before=$(stat -f -c %T /sys/fs/bpf)
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$P_REQ" --trust $LOOP
# where nothing was mounted (a fresh machine; .ci/run makes it so), attach mounted bpffs itself
[ "$(stat -f -c %T /sys/fs/bpf)" = bpf_fs ] || fail "/sys/fs/bpf is not a bpffs after attach (was: $bpffs_before)"
echo "bpffs at /sys/fs/bpf: $bpffs_before before the first attach, bpf_fs after"
# The feature probe, as the README's kernel table says: bpf_sock_destroy from 6.5 on, nothing else missing.
kernel=$("$CLI" status --pin-dir "$PIN" --json | jq -c .kernel)
echo "kernel: $kernel"
release=$(uname -r)
if [ "$(printf '%s\n' 6.5 "${release%%-*}" | sort -V | head -1)" = 6.5 ]; then want='[]'; else want='["bpf_sock_destroy"]'; fi
jq -e --argjson want "$want" '.supported and ([.lacks[].feature] == $want)' <<< "$kernel" >/dev/null ||
	fail "the probe of $release says $kernel; want lacks = $want"
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$P_RW" --trust $LOOP --rewrite-peer
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$P_OPT" --trust $LOOP --optional
"$CLI" attach --cgroup "$CG" --pin-dir "$PIN" --port "$P_T2" --trust 127.0.0.2

args=("$P_REQ" "$P_RW" "$P_OPT" "$P_NONE" "$P_T2" "$PIN" "$CLI" "$N_IN_A_ROW" "$N_CLOSED")
if selected_group "$TEST" kernel; then
	echo "== receive path, kernel side attached to $CG"
	in_cgroup "$CG" "$TEST" kernel "${args[@]}" || {
		"$CLI" status --pin-dir "$PIN" --json | jq -c .counters
		fail "receive path tests, kernel side"
	}
	"$CLI" status --pin-dir "$PIN" --json | jq -c .counters
fi
if selected_group "$TEST" reorder; then
	echo "== header bytes behind a lost segment, in a network namespace whose loopback loses one"
	# A test-only XDP program on the namespace's lo drops one chosen segment before any hook sees it.
	new_netns NS reorder
	new_dropper DROP "$NS" dropper
	PPBPF_TEST_DROPPER=$DROP in_netns "$NS" "$CG" "$TEST" reorder "${args[@]}" || fail "reordered segments"
	held=$("$CLI" status --pin-dir "$PIN" --json | jq -c '.counters | {out_of_order, retransmits, held_segments}')
	echo "$held"
	[ "$(echo "$held" | jq .out_of_order)" -gt 0 ] || fail "no segment arrived out of order: the loss was not exercised"
fi
if selected_group "$TEST" fallback; then
	echo "== receive path, nothing attached ($CG_PLAIN): userspace fallback"
	in_cgroup "$CG_PLAIN" "$TEST" fallback "${args[@]}" || fail "receive path tests, userspace fallback"
fi

echo "== ppbpf stats: the same counters as status, and Prometheus's text format"
status_counters=$("$CLI" status --pin-dir "$PIN" --json | jq -S -c .counters)
stats_json=$("$CLI" stats --pin-dir "$PIN" --json)
[ "$(jq -S -c .counters <<< "$stats_json")" = "$status_counters" ] ||
	fail "stats --json and status --json disagree: $(jq -c .counters <<< "$stats_json") / $status_counters"
PROM=$(mktemp /tmp/ppbpf-test-stats.XXXXXX)
CLEANUP+=("rm -f '$PROM'")
"$CLI" stats --pin-dir "$PIN" --prometheus > "$PROM" || fail "stats --prometheus failed"
# the exposition format: HELP and TYPE before each metric's samples, names, one sample per counter and
# two gauges, no series twice, and the values status gives
python3 - "$PROM" "$stats_json" <<'PY' || fail "stats --prometheus: not the exposition format it should be"
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
stats = json.loads(sys.argv[2])
meta, series, bad = {}, set(), []
sample = re.compile(r'^(ppbpf_[a-z_]+)(\{[a-z_]+="[a-z0-9_]+"\})? ([0-9]+)$')
for n, l in enumerate(lines, 1):
    m = re.match(r'^# (HELP|TYPE) (ppbpf_[a-z_]+) (.+)$', l)
    if m:
        meta.setdefault(m[2], {})[m[1]] = m[3]
        continue
    m = sample.match(l)
    if not m:
        bad.append(f"line {n}: {l!r}")
        continue
    name, labels = m[1], m[2] or ""
    t = meta.get(name, {})
    if "HELP" not in t or t.get("TYPE") not in ("counter", "gauge"):
        bad.append(f"line {n}: {name} has no HELP and TYPE before it")
    if (t.get("TYPE") == "counter") != name.endswith("_total"):
        bad.append(f"line {n}: {name}: counters end in _total, gauges do not")
    if (name, labels) in series:
        bad.append(f"line {n}: {name}{labels} twice")
    series.add((name, labels))
counters = [s for s in series if s[0].endswith("_total")]
if len(counters) != len(stats["counters"]):
    bad.append(f"{len(counters)} counter samples for {len(stats['counters'])} counters")
want = {'ppbpf_headers_total{version="2"}': stats["counters"]["v2"],
        "ppbpf_connections_tracked_total": stats["counters"]["tracked"],
        "ppbpf_connections": stats["connections"]}
for l in lines:
    key, _, v = l.rpartition(" ")
    if key in want and int(v) != want[key]:
        bad.append(f"{key} is {v}, status says {want[key]}")
print("\n".join(bad) or f"{len(series)} series, each with HELP and TYPE", file=sys.stderr if bad else sys.stdout)
sys.exit(1 if bad else 0)
PY

echo "== ppbpf list: filters and --watch"
# a listener in the cgroup with two connections held open: one whose header came whole (from 203.0.113.5),
# one whose header is still incomplete; the table has them from the handshake on, accepted or not
HOLD_OUT=$(mktemp /tmp/ppbpf-test-list.XXXXXX)
CLEANUP+=("rm -f '$HOLD_OUT'")
bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" python3 - "$P_REQ" > "$HOLD_OUT" 2>&1 <<'PY' &
import socket, struct, sys, time
port = int(sys.argv[1])
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", port)); l.listen(8)
hdr = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack(">H", 12) + socket.inet_aton("203.0.113.5") +
       socket.inet_aton("198.51.100.9") + struct.pack(">HH", 4000, 443))
done, pending = socket.create_connection(("127.0.0.1", port)), socket.create_connection(("127.0.0.1", port))
done.sendall(hdr + b"hello")
pending.sendall(hdr[:10])
print("ready", flush=True)
time.sleep(60)
PY
PIDS+=($!)
HOLDER=$!
for _ in $(seq 100); do grep -q ready "$HOLD_OUT" && [ "$("$CLI" list --pin-dir "$PIN" --json | jq length)" = 2 ] && break; sleep 0.05; done
listed() { "$CLI" list --pin-dir "$PIN" --json "$@" | jq -c '[.[] | {state, src}]'; }
[ "$(listed --state done)" = '[{"state":"done","src":"203.0.113.5:4000"}]' ] || fail "list --state done: $(listed --state done)"
[ "$(listed --state pending)" = '[{"state":"pending","src":null}]' ] || fail "list --state pending: $(listed --state pending)"
[ "$(listed --src 203.0.113.0/24)" = '[{"state":"done","src":"203.0.113.5:4000"}]' ] ||
	fail "list --src 203.0.113.0/24: $(listed --src 203.0.113.0/24)"
for other in "--src 198.51.100.0/24" "--src 2001:db8::/32" "--port 1" "--state error" "--src 203.0.113.5/32 --state pending"; do
	# shellcheck disable=SC2086 # (the options, a word each)
	[ "$(listed $other)" = '[]' ] || fail "list $other: $(listed $other), want nothing"
done
[ "$("$CLI" list --pin-dir "$PIN" --json --port "$P_REQ" | jq length)" = 2 ] || fail "list --port $P_REQ: not both"
"$CLI" list --pin-dir "$PIN" --state bogus >/dev/null 2>&1 && fail "list --state bogus was accepted"
[ $? = 2 ] || fail "list --state bogus: not a usage error"
"$CLI" list --pin-dir "$PIN" --src 300.1.2.3/8 >/dev/null 2>&1 && fail "list --src 300.1.2.3/8 was accepted"
# --watch: a list every 0.2 s until SIGINT, then a clean exit
rc=0
timeout -s INT --preserve-status 1.1 "$CLI" list --pin-dir "$PIN" --json --watch --interval 0.2 > "$HOLD_OUT.watch" || rc=$?
CLEANUP+=("rm -f '$HOLD_OUT.watch'")
[ "$rc" = 0 ] || fail "list --watch did not exit cleanly on SIGINT (status $rc)"
lists=$(jq -s 'map(select(length == 2)) | length' "$HOLD_OUT.watch")
[ "$lists" -ge 4 ] || fail "list --watch --interval 0.2 printed $lists lists of both connections in 1.1 s: $(cat "$HOLD_OUT.watch")"
kill "$HOLDER"
wait "$HOLDER" 2>/dev/null || true
echo "list: --state, --src, --port and their combination pick the right connections; --watch printed $lists lists"

echo "== detach leaves nothing behind"
prog_ids=$("$CLI" status --pin-dir "$PIN" --json | jq -r '.programs[].prog_id')
link_ids=$("$CLI" status --pin-dir "$PIN" --json | jq -r '.programs[].link_id')
# (the folder also holds programs and links: a pin that is no map is skipped, a map must answer)
map_ids=$(for f in "$PIN"/*; do
	if m=$(bpftool -j map show pinned "$f" 2>/dev/null); then jq -r .id <<< "$m"; fi
done)
[ "$(echo "$prog_ids" | wc -w)" = 9 ] || fail "expected 9 programs, got: $prog_ids"
[ "$(echo "$map_ids" | wc -w)" -ge 8 ] || fail "expected the pinned maps, got: $map_ids"
"$CLI" detach --pin-dir "$PIN" --cgroup "$CG"
[ ! -e "$PIN" ] || fail "$PIN still exists"
attached=$(bpftool -j cgroup show "$CG") || fail "bpftool cannot list the programs of $CG"
# (an empty cgroup: no output at all, rather than [])
[ "$(jq -s 'add // [] | length' <<< "$attached")" = 0 ] || fail "programs still attached to $CG: $attached"
for _ in $(seq 50); do # the kernel frees programs and maps after the last reference, asynchronously
	left=""
	for id in $prog_ids; do bpftool prog show id "$id" >/dev/null 2>&1 && left="$left prog:$id"; done
	for id in $link_ids; do bpftool link show id "$id" >/dev/null 2>&1 && left="$left link:$id"; done
	for id in $map_ids; do bpftool map show id "$id" >/dev/null 2>&1 && left="$left map:$id"; done
	[ -z "$left" ] && break
	sleep 0.1
done
[ -z "$left" ] || fail "still present after detach:$left"
echo "PASS: detach removed 9 programs, 9 links, $(echo "$map_ids" | wc -w) maps and every pin"
