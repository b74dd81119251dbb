#!/usr/bin/env bash
# Run a command as root inside Debian 12's kernel (6.1) under qemu; its exit
# status is ours (125: the guest gave none, i.e. a timeout or a panic).
#
#   scripts/vm-test.sh                        # runs `make -s vm-suite` in the guest
#   scripts/vm-test.sh 'make -s vm-suite; dmesg | tail'   # any shell command line
#
# The guest sees the host's root filesystem read-only over virtio-9p (the same
# bash, bpftool, libbpf and paths), the project read-write at the same path,
# tmpfs on /tmp, /run, /var/tmp and /dev/shm, and no network card (loopback
# and network namespaces only). Like a booted Debian system it has proc, sys,
# devtmpfs, devpts, cgroup2, debugfs, tracefs, /dev/fd and its modules loaded,
# but no bpffs at /sys/fs/bpf: mounting it is ppbpf's own job, under test.
# COMMAND's words are joined with spaces and run by bash in the project root
# (as ssh does), with PPBPF_GUEST=1 and the host's values of $VM_PASS_ENV.
#
# Host packages: scripts/deps.sh vm (qemu-system-x86, busybox-static).
# The first run downloads the kernel package with `apt-get download` (~70 MB)
# and keeps the kernel and an initramfs in $VM_CACHE/<kver>-<hash of this
# script and the module list>: a change to either builds a new one.
#
# Env: VM_KPKG     kernel package (default: what linux-image-amd64 depends on)
#      VM_MODULES  modules loaded at boot, with their dependencies, if the
#                  package has them (default below)
#      VM_PASS_ENV host variables passed to the guest when set (default below)
#      VM_ACCEL    kvm|tcg (default: kvm if /dev/kvm is usable and the CPU has vmx/svm)
#      VM_MEM (MiB, 2048), VM_SMP (2), VM_TIMEOUT (s, 1500),
#      VM_CACHE    (default ${XDG_CACHE_HOME:-$HOME/.cache}/ppbpf-vm)
set -euo pipefail

SELF=$(realpath "${BASH_SOURCE[0]}")
ROOT=$(dirname "$(dirname "$SELF")")
cd "$ROOT"

CMD=${*:-make -s vm-suite}
# SOCK_DESTROY over NETLINK_SOCK_DIAG needs inet_diag + tcp_diag; tc in network
# namespaces needs veth, sch_ingress (also clsact), sch_htb (the tests' reordering), cls_bpf, act_bpf.
VM_MODULES=${VM_MODULES:-inet_diag tcp_diag veth sch_ingress sch_htb cls_bpf act_bpf}
VM_PASS_ENV=${VM_PASS_ENV:-PPBPF_REQUIRE_ALL PPBPF_SCALE QUICK FUZZ_SECONDS V}
BOOT_MODULES="virtio_pci 9pnet_virtio 9p" # what /init needs to mount the shares
VM_CACHE=${VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ppbpf-vm}

die() { echo "vm-test: $*" >&2; exit 125; }

command -v qemu-system-x86_64 >/dev/null || die "no qemu-system-x86_64: run scripts/deps.sh vm"
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
	die "no static /bin/busybox: run scripts/deps.sh vm (busybox-static)"
fi

KPKG=${VM_KPKG:-$(apt-cache depends linux-image-amd64 2>/dev/null |
	awk '/Depends: linux-image-[0-9]/ { print $2; exit }')}
[ -n "$KPKG" ] || die "cannot tell the kernel package: is this Debian? (set VM_KPKG)"
KVER=${KPKG#linux-image-}
HASH=$({ cat "$SELF"; echo "$KPKG|$BOOT_MODULES|$VM_MODULES"; } | sha256sum | cut -c1-12)
K=$VM_CACHE/$KVER-$HASH

# ko_cat FILE: a module's contents, uncompressed (busybox insmod takes plain .ko only).
ko_cat() {
	case $1 in
	*.ko) cat "$1" ;;
	*.ko.xz) xz -dc "$1" ;;
	*.ko.zst) zstd -qdc "$1" ;;
	*.ko.gz) gzip -dc "$1" ;;
	*) die "unknown module format: $1" ;;
	esac
}

# build_modules MODDIR DEST NAME...: copy the modules NAME... into DEST,
# uncompressed, and write DEST/order (the insmod order: each module after its
# dependencies) and DEST/skipped (those built in or absent from the package).
# The package has no modules.dep (depmod writes it at install time), so the
# dependencies come from each module's own modinfo "depends=" field.
build_modules() {
	local mdir=$1 dest=$2 f n
	shift 2
	declare -A file=() seen=()
	local order=() builtin=() absent=()
	while read -r f; do
		n=${f##*/}
		n=${n%%.ko*}
		file[${n//-/_}]=$f
	done < <(find "$mdir/kernel" -name '*.ko*')
	visit() {
		local m=${1//-/_} d
		[ -z "${seen[$m]:-}" ] || return 0
		seen[$m]=1
		if [ -z "${file[$m]:-}" ]; then
			if tr - _ < "$mdir/modules.builtin" | grep -q "/$m\.ko$"; then builtin+=("$m"); else absent+=("$m"); fi
			return 0
		fi
		ko_cat "${file[$m]}" > "$dest/$m.ko"
		for d in $(LC_ALL=C tr '\0' '\n' < "$dest/$m.ko" | sed -n 's/^depends=//p' | head -1 | tr , ' '); do
			visit "$d"
		done
		order+=("$m")
	}
	for n in "$@"; do visit "$n"; done
	printf '%s\n' "${order[@]}" > "$dest/order"
	echo "${builtin[*]:+; built in: ${builtin[*]}}${absent[*]:+; not in the package: ${absent[*]}}" > "$dest/skipped"
}

# The initramfs's /init (busybox sh). The host's / becomes the guest's root; the
# control share (mounted at /run/vm-test) brings the project path and run.sh in
# and takes the exit status out.
write_init() {
	cat > "$1" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
stty -onlcr < /dev/console 2>/dev/null # plain \n line ends in the host's log
hostname ppbpf-vm
loaded= failed=
for m in $(cat /lib/modules/order); do
  if insmod /lib/modules/$m.ko; then loaded="$loaded $m"; else failed="$failed $m"; fi
done
echo "vm-test: modules loaded:$loaded; failed:${failed:- none}$(cat /lib/modules/skipped)"

R=/newroot; O=trans=virtio,version=9p2000.L,msize=512000
C=$R/run/vm-test
give_up() { echo "vm-test: $*"; reboot -f; }
mount -t 9p -o $O,ro hostroot $R || give_up "cannot mount the host's /"
for d in proc sys dev; do mount --move /$d $R/$d; done
for d in tmp run var/tmp; do mount -t tmpfs tmpfs $R/$d; done
mkdir $C && mount -t 9p -o $O ctl $C || give_up "cannot mount the control share"
P=$(cat $C/proj)
mkdir -p $R$P 2>/dev/null; mount -t 9p -o $O proj $R$P || give_up "cannot mount the project"
# /dev as a booted system has it; bash's <(...) needs /dev/fd
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
ln -s /proc/self/fd $R/dev/fd
ln -s /proc/self/fd/0 $R/dev/stdin; ln -s /proc/self/fd/1 $R/dev/stdout; ln -s /proc/self/fd/2 $R/dev/stderr
# not bpffs: ppbpf mounts it itself
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
mount -t debugfs debugfs $R/sys/kernel/debug; mount -t tracefs tracefs $R/sys/kernel/tracing
ip link set lo up
ulimit -Hn 524288 # open files: soft 1024, hard 524288, as systemd sets them
echo "vm-test: booted in $(cut -d' ' -f1 $R/proc/uptime) s, kernel $(uname -r)"

chroot $R /usr/bin/env -i HOME=/tmp TERM=dumb LANG=C.UTF-8 \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /bin/bash /run/vm-test/run.sh < /dev/null
rc=$?
echo $rc > $C/rc
echo "vm-test: exit status $rc"
sync; reboot -f
EOF
	chmod +x "$1"
}

# ---- 1. the kernel and the initramfs, built once per version of this script ----
if [ ! -f "$K/vmlinux" ] || [ ! -f "$K/initramfs.cpio.gz" ]; then
	echo "vm-test: building $K" >&2
	mkdir -p "$VM_CACHE"
	B=$(mktemp -d "$VM_CACHE/.build.XXXXXX")
	trap 'rm -rf "$B"' EXIT
	opts=()
	[ "$(id -u)" -ne 0 ] || opts=(-o APT::Sandbox::User=root) # _apt cannot write to root's cache
	(cd "$B" && apt-get -q "${opts[@]}" download "$KPKG" >&2) ||
		die "apt-get download $KPKG failed (an old index? apt-get update)"
	dpkg-deb -x "$B"/"$KPKG"_*.deb "$B/pkg"

	# An uncompressed ELF vmlinux: qemu boots it through PVH and skips the slow
	# in-guest decompression under TCG. If none is found, the bzImage as it is.
	z=$B/pkg/boot/vmlinuz-$KVER
	off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$z" | head -1 | cut -d: -f1)
	[ -z "$off" ] || tail -c +$((off + 1)) "$z" | xz -dc 2>/dev/null > "$B/vmlinux" || true
	[ -s "$B/vmlinux" ] || cp "$z" "$B/vmlinux"

	I=$B/initramfs
	mkdir -p "$I"/{bin,proc,sys,dev,newroot,lib/modules}
	cp /bin/busybox "$I/bin/busybox"
	# shellcheck disable=SC2086 # the lists are words
	build_modules "$B/pkg/lib/modules/$KVER" "$I/lib/modules" $BOOT_MODULES $VM_MODULES
	write_init "$I/init"
	(cd "$I" && find . | busybox cpio -o -H newc -R 0:0 2>/dev/null) | gzip -1 > "$B/initramfs.cpio.gz"

	mkdir -p "$K"
	mv "$B/vmlinux" "$B/initramfs.cpio.gz" "$K/"
	rm -rf "$B"
	trap - EXIT
fi
# Each run marks its entry as used; entries unused for two weeks (older versions of
# this script, older kernels) are removed.
touch "$K"
find "$VM_CACHE" -mindepth 1 -maxdepth 1 -type d -mtime +14 -exec rm -rf {} +

# ---- 2. the control share: the project path, run.sh (environment + command), rc ----
CTL=$(mktemp -d /tmp/ppbpf-vm.XXXXXX)
trap 'rm -rf "$CTL"' EXIT
echo "$ROOT" > "$CTL/proj"
{
	echo "# written by scripts/vm-test.sh"
	echo "export PPBPF_GUEST=1"
	for v in $VM_PASS_ENV; do
		[ -z "${!v+set}" ] || printf 'export %s=%q\n' "$v" "${!v}"
	done
	printf 'cd %q || exit 1\n' "$ROOT"
	printf '%s\n' "$CMD"
} > "$CTL/run.sh"

# ---- 3. boot; the console is streamed to stdout ----
if [ -z "${VM_ACCEL:-}" ]; then
	if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then VM_ACCEL=kvm; else VM_ACCEL=tcg; fi
fi
case $VM_ACCEL in
kvm) ACCEL=(-enable-kvm -cpu host) ;;
*) ACCEL=(-accel tcg -cpu max) ;;
esac
S=security_model=none,multidevs=remap
timeout --foreground "${VM_TIMEOUT:-1500}" qemu-system-x86_64 "${ACCEL[@]}" \
	-m "${VM_MEM:-2048}" -smp "${VM_SMP:-2}" \
	-display none -vga none -serial stdio -monitor none -nic none -no-reboot \
	-kernel "$K/vmlinux" -initrd "$K/initramfs.cpio.gz" \
	-append "console=ttyS0 quiet panic=-1 oops=panic" \
	-virtfs "local,path=/,mount_tag=hostroot,readonly=on,$S" \
	-virtfs "local,path=$ROOT,mount_tag=proj,$S" \
	-virtfs "local,path=$CTL,mount_tag=ctl,$S" \
	</dev/null || qemu_rc=$?

rc=$(cat "$CTL/rc" 2>/dev/null || true)
if ! [[ $rc =~ ^[0-9]+$ ]]; then
	[ "${qemu_rc:-0}" -ne 124 ] || die "timed out after ${VM_TIMEOUT:-1500} s"
	die "no exit status from the guest (a panic? qemu exited with ${qemu_rc:-0})"
fi
exit "$rc"
