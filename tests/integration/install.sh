#!/usr/bin/env bash
# make install DESTDIR=... writes exactly the expected files; a program built with
# `pkg-config --cflags --libs ppbpf` against that tree links and runs; both man pages
# render without a warning (groff -ww); the installed unit passes systemd-analyze verify
# (installed with a PREFIX of its own, whose ppbpf exists); the bash completion offers the
# commands and a command's options; make uninstall leaves the tree empty.
. "$(dirname "$0")/lib.sh"
for prog in pkg-config groff systemd-analyze cc objdump; do
	command -v "$prog" >/dev/null || skip "$prog is not installed (scripts/deps.sh installs it)"
done
TMP=$(mktemp -d /tmp/ppbpf-test-install.XXXXXX)
CLEANUP+=("rm -rf '$TMP'")
DEST=$TMP/dest
mkdir "$DEST"
make -s -C "$ROOT" install DESTDIR="$DEST" PREFIX=/usr >/dev/null || fail "make install DESTDIR=$DEST failed"

headers=$(cd "$ROOT/include" && ls ppbpf/*.h | sed 's|^|usr/include/|')
want=$(sort <<LIST
etc/ppbpf/ppbpf.conf.example
etc/systemd/system/ppbpf.service
usr/bin/ppbpf
$headers
usr/lib/libppbpf.a
usr/lib/libppbpf.so
usr/lib/libppbpf.so.0
usr/lib/libppbpf.so.0.1.0
usr/lib/pkgconfig/ppbpf.pc
usr/share/bash-completion/completions/ppbpf
usr/share/man/man3/libppbpf.3
usr/share/man/man8/ppbpf.8
LIST
)
got=$(cd "$DEST" && find . -mindepth 1 \( -type f -o -type l \) | sed 's|^\./||' | sort)
[ "$got" = "$want" ] ||
	fail "installed files differ from the expected ones: $(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | head -5 | tr '\n' ' ')"
[ "$(readlink "$DEST/usr/lib/libppbpf.so")" = libppbpf.so.0 ] && [ "$(readlink "$DEST/usr/lib/libppbpf.so.0")" = libppbpf.so.0.1.0 ] ||
	fail "the soname links are not libppbpf.so -> .so.0 -> .so.0.1.0"
objdump -p "$DEST/usr/lib/libppbpf.so.0.1.0" | grep -q 'SONAME *libppbpf.so.0$' || fail "libppbpf.so's SONAME is not libppbpf.so.0"
echo "install: $(wc -l <<< "$got") files, exactly the expected ones; soname links right"

# a program built with pkg-config against the installed tree, run with its shared library
cat > "$TMP/prog.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <ppbpf/ppbpf.h>
int main(void)
{
	const char *v1 = "PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n";
	struct ppbpf_hdr h;
	char src[PPBPF_ADDRSTRLEN];
	int n = ppbpf_parse((const __u8 *)v1, (__u32)strlen(v1), &h);

	if (n != (int)strlen(v1) || ppbpf_format_ip(ppbpf_family_af(h.family), h.src_addr, src, sizeof(src)) < 0)
		return 1;
	printf("%s %s:%u\n", ppbpf_family_name(h.family), src, h.src_port);
	return 0;
}
C
flags=$(PKG_CONFIG_SYSROOT_DIR=$DEST PKG_CONFIG_LIBDIR=$DEST/usr/lib/pkgconfig pkg-config --cflags --libs ppbpf) ||
	fail "pkg-config does not know ppbpf in the installed tree"
# shellcheck disable=SC2086 # (the flags, a word each)
cc -Wall -Werror -o "$TMP/prog" "$TMP/prog.c" $flags || fail "a program does not build with pkg-config's flags: $flags"
out=$(LD_LIBRARY_PATH=$DEST/usr/lib "$TMP/prog") || fail "the program built against the installed tree did not run"
[ "$out" = "TCP4 192.0.2.1:51000" ] || fail "the program printed '$out'"
LD_LIBRARY_PATH=$DEST/usr/lib ldd "$TMP/prog" | grep -q "libppbpf.so.0 => $DEST/usr/lib/libppbpf.so.0" ||
	fail "the program does not load the installed libppbpf.so.0"
echo "pkg-config: $flags; the program, linked to the installed libppbpf.so.0, printed '$out'"

# the man pages: no warning from groff, every command in ppbpf(8), every function in libppbpf(3)
for page in usr/share/man/man8/ppbpf.8 usr/share/man/man3/libppbpf.3; do
	warn=$(groff -ww -man -z "$DEST/$page" 2>&1)
	[ -z "$warn" ] || fail "$page: groff warns: $warn"
done
cmds=$("$CLI" --help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }')
[ -n "$cmds" ] || fail "no commands in ppbpf --help"
for cmd in $cmds; do
	grep -q "^\.B $cmd\$" "$DEST/usr/share/man/man8/ppbpf.8" || fail "ppbpf(8) does not describe the command $cmd"
done
for fn in $(grep -oE 'PPBPF_API [^(]*\(' "$ROOT/include/ppbpf/ppbpf.h" | grep -oE 'ppbpf_[a-z0-9_]+'); do
	grep -q "$fn" "$DEST/usr/share/man/man3/libppbpf.3" || fail "libppbpf(3) does not describe $fn"
done
echo "man: both pages render without a warning; ppbpf(8) has every command, libppbpf(3) every function"

# the unit, installed with a PREFIX whose ppbpf exists: systemd-analyze verify accepts it
make -s -C "$ROOT" install PREFIX="$TMP/usr" SYSTEMD_UNIT_DIR="$TMP/unit" SYSCONFDIR="$TMP/etc" >/dev/null
out=$(systemd-analyze verify "$TMP/unit/ppbpf.service" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"
"$TMP/usr/bin/ppbpf" run --config "$TMP/etc/ppbpf/ppbpf.conf.example" --check --pin-dir "$TMP/no-pins" >/dev/null ||
	fail "the example config does not pass ppbpf run --check"
make -s -C "$ROOT" uninstall PREFIX="$TMP/usr" SYSTEMD_UNIT_DIR="$TMP/unit" SYSCONFDIR="$TMP/etc"
echo "unit: systemd-analyze verify accepts it; the example config passes run --check"

# bash completion: the commands, and the options of one
complete_of() {
	PATH=$DEST/usr/bin:$PATH bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _ppbpf; echo "${COMPREPLY[*]}"' \
		_ "$DEST/usr/share/bash-completion/completions/ppbpf" "$@"
}
[ "$(complete_of ppbpf st)" = "status stats" ] || fail "completion of 'ppbpf st': '$(complete_of ppbpf st)'"
[ "$(complete_of ppbpf list --st)" = "--state" ] || fail "completion of 'ppbpf list --st': '$(complete_of ppbpf list --st)'"
echo "completion: 'ppbpf st' gives 'status stats', 'ppbpf list --st' gives '--state'"

make -s -C "$ROOT" uninstall DESTDIR="$DEST" PREFIX=/usr || fail "make uninstall failed"
left=$(find "$DEST" -mindepth 1)
[ -z "$left" ] || fail "make uninstall left: $(head -5 <<< "$left" | tr '\n' ' ')"
echo "uninstall: the tree is empty again"
echo "PASS: install"
