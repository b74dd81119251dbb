#!/usr/bin/env bash
# Install the Debian packages ppbpf needs to build, test and demo;
# `deps.sh bench` also those `make bench` compares against and plots with;
# `deps.sh vm` those scripts/vm-test.sh boots Debian 12's kernel with.
# Idempotent: packages already present are not touched; safe to run often.
set -euo pipefail

PACKAGES=(
	make gcc clang llvm libclang-rt-14-dev  # compilers, BPF target, libFuzzer/ASan runtimes
	libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config
	libcmocka-dev                           # unit tests
	jq                                      # CLI contract tests read JSON
	iproute2                                # ss, ip (integration tests)
	strace                                  # cli.sh makes a start fail after attaching (fault injection)
	haproxy                                 # the demo and the interop tests
	nginx-light redis-server curl python3   # apps.sh: stock servers behind HAProxy, in transparent mode
	libnginx-mod-stream                     # examples.sh: scripts/examples/nginx.conf (Debian's stream module is a package of its own)
	libmicrohttpd-dev                       # ppbpf run --metrics: the /metrics endpoint
	golang-go                               # examples.sh: the Go example (standard library only)
	groff-base man-db                       # install.sh: the man pages render without warnings
)
if [ "${1:-}" = bench ]; then
	PACKAGES=(gnuplot-nox linux-perf go-mmproxy) # the plot, syscall counts, and what transparent mode replaces
elif [ "${1:-}" = vm ]; then
	PACKAGES=(qemu-system-x86 busybox-static xz-utils) # the VM, its initramfs, unpacking vmlinuz
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

# An index older than a day (or none) is refreshed once; a stale one makes installs fail.
fresh_index() {
	if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
		$SUDO apt-get update -q
	fi
}

# promtool (tests check the metrics format with it) comes out of Debian's
# prometheus package unpacked into .output/tools, not installed: installing it
# would start a Prometheus server on a machine without systemd.
unpack_promtool() {
	local dir out
	dir="$(cd "$(dirname "$0")/.." && pwd)/.output/tools"
	out="$dir/promtool"
	[ -x "$out" ] && return 0
	fresh_index
	rm -rf "$dir/deb" && mkdir -p "$dir/deb"
	(cd "$dir/deb" && apt-get download -q prometheus)
	dpkg-deb --fsys-tarfile "$dir"/deb/prometheus_*.deb | tar -xO ./usr/bin/promtool > "$out.tmp"
	chmod 755 "$out.tmp" && mv "$out.tmp" "$out"
	rm -rf "$dir/deb"
	echo "deps: promtool unpacked into $out" >&2
}

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}" >&2
	fresh_index
	$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
[ -n "${1:-}" ] || unpack_promtool
