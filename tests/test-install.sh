#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The README's libvmaq example, built against a `make install DESTDIR=`
# tree with pkg-config, run against the installed vmaqd.

set -eu

: "${abs_top_builddir:?}" "${abs_top_srcdir:?}"
command -v pkg-config >/dev/null || { echo "pkg-config is missing"; exit 1; }

work=$(mktemp -d)
daemon=""
cleanup() {
        [ -z "$daemon" ] || kill "$daemon" 2>/dev/null || true
        [ -z "$daemon" ] || wait "$daemon" 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT

make -s -C "$abs_top_builddir" install DESTDIR="$work/root" >"$work/install.log" 2>&1 || {
        cat "$work/install.log"
        exit 1
}
pcdir=$(dirname "$(find "$work/root" -name libvmaq.pc | head -n1)")
libdir=$(dirname "$(find "$work/root" -name 'libvmaq.so.2' | head -n1)")
sbindir=$(dirname "$(find "$work/root" -name vmaqd -type f | head -n1)")

# Everything the README promises is installed.
for f in vmaq.h libvmaq.so.2 libvmaq.pc vmaqctl vmaqd vmaqd.8 vmaqctl.1 libvmaq.3 PROTOCOL.md \
         vmaqd.service vmaqd.socket vmaqd.conf; do
        [ -n "$(find "$work/root" -name "$f" | head -n1)" ] || { echo "not installed: $f"; exit 1; }
done

# The unit starts the vmaqd that was installed, from the same prefix.
unit=$(find "$work/root" -name vmaqd.service | head -n1)
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$work/root$exec_start" = "$sbindir/vmaqd" ] || {
        echo "ExecStart=$exec_start, but vmaqd was installed as ${sbindir#"$work/root"}/vmaqd"
        exit 1
}
prefix=${sbindir%/sbin}
case $unit in
"$prefix"/lib/systemd/system/vmaqd.service) ;;
*) echo "note: unit installed as ${unit#"$work/root"}, not under the prefix (--with-systemdsystemunitdir?)" ;;
esac
echo "ExecStart=$exec_start is the installed vmaqd"

# ldconfig runs after a live install as root only, never into DESTDIR.
grep -q "LDCONFIG skipped: DESTDIR is set" "$work/install.log" || {
        echo "the ldconfig hook did not say it skipped for DESTDIR:"
        cat "$work/install.log"
        exit 1
}
make -s -C "$abs_top_builddir" install-exec-hook LDCONFIG="echo would run ldconfig" >"$work/hook.log" 2>&1
if [ "$(id -u)" -eq 0 ]; then
        grep -q "^would run ldconfig$" "$work/hook.log" || { echo "ldconfig would not run:"; cat "$work/hook.log"; exit 1; }
else
        grep -q "LDCONFIG skipped: not root" "$work/hook.log" || { echo "hook did not skip:"; cat "$work/hook.log"; exit 1; }
fi
echo "ldconfig hook: skipped with DESTDIR; otherwise: $(tr '\n' ' ' < "$work/hook.log")"

# libvmaq.pc alone is enough: vmaq.h needs no json-c headers, and only a
# static link needs json-c, named in Libs.private. PKG_CONFIG_LIBDIR
# replaces the system's .pc directories: json-c.pc is not on the path.
pc() { PKG_CONFIG_LIBDIR="$pcdir" PKG_CONFIG_PATH="" PKG_CONFIG_SYSROOT_DIR="$work/root" pkg-config "$@"; }
pc --cflags --libs libvmaq >"$work/pc.out" 2>&1 || { echo "pkg-config libvmaq fails alone:"; cat "$work/pc.out"; exit 1; }
grep -q -- '-lvmaq' "$work/pc.out" || { echo "no -lvmaq:"; cat "$work/pc.out"; exit 1; }
! grep -q -- '-ljson-c' "$work/pc.out" || { echo "json-c in a shared link:"; cat "$work/pc.out"; exit 1; }
pc --static --libs libvmaq >"$work/pc-static.out" 2>&1 || { cat "$work/pc-static.out"; exit 1; }
grep -q -- '-ljson-c' "$work/pc-static.out" || { echo "no -ljson-c for a static link:"; cat "$work/pc-static.out"; exit 1; }
echo "pkg-config libvmaq: $(cat "$work/pc.out"); --static: $(cat "$work/pc-static.out")"

# What is installed is linked as hard as configure found the linker can:
# relocations resolved at load time (BIND_NOW), then read-only (GNU_RELRO).
relro=false
now=false
for flag in ${HARDEN_LDFLAGS:-}; do
        case $flag in
        -Wl,-z,relro) relro=true ;;
        -Wl,-z,now) now=true ;;
        esac
done
if $relro || $now; then
        command -v readelf >/dev/null || { echo "readelf is missing (Debian: binutils)"; exit 1; }
fi
for f in "$sbindir/vmaqd" "$(find "$work/root" -name vmaqctl -type f | head -n1)" \
         "$(readlink -f "$libdir/libvmaq.so.2")"; do
        if $relro; then
                readelf -lW "$f" | grep -q '^ *GNU_RELRO ' || { echo "no GNU_RELRO segment: $f"; exit 1; }
        fi
        if $now; then
                readelf -dW "$f" | grep -Eq '\(FLAGS(_1)?\) .*(BIND_NOW| NOW)' || {
                        echo "not BIND_NOW: $f"
                        exit 1
                }
        fi
done
echo "installed vmaqd, vmaqctl and libvmaq: GNU_RELRO checked: $relro, BIND_NOW checked: $now"

# The example is the C block after the README's example marker.
sed -n '/^<!-- example:/,/^```$/p' "$abs_top_srcdir/README.md" | sed '1,2d;$d' > "$work/example.c"
[ -s "$work/example.c" ] || { echo "no example found in README.md"; exit 1; }

cflags=$(pc --cflags libvmaq)
libs=$(pc --libs libvmaq)
# shellcheck disable=SC2086 # flags lists
# A library built with sanitizers needs their runtime in the program too.
${CC:-cc} -Wall -Werror ${SANITIZER_CFLAGS:-} "$work/example.c" $cflags $libs -o "$work/example"

"$sbindir/vmaqd" --socket "$work/vmaqd.sock" --log-level warning 2>"$work/vmaqd.log" &
daemon=$!
i=0
while [ ! -S "$work/vmaqd.sock" ]; do
        i=$((i + 1))
        [ $i -le 100 ] || { echo "vmaqd did not start"; cat "$work/vmaqd.log"; exit 1; }
        sleep 0.1
done

LD_LIBRARY_PATH="$libdir" VMAQ_SOCKET="$work/vmaqd.sock" "$work/example" > "$work/out" 2>&1 || {
        cat "$work/out"
        exit 1
}
cat "$work/out"

# main lies in the example itself, getpid in libc, 0x10 nowhere; build IDs present.
line() { sed -n "$1p" "$work/out"; }
line 1 | grep -q "^0x[0-9a-f]*: $work/example offset 0x[0-9a-f]* build ID [0-9a-f]\{40\}$" || { echo "line 1 wrong"; exit 1; }
line 2 | grep -q ": /.*libc\.so\.6 offset 0x[0-9a-f]* build ID [0-9a-f]\{40\}$" || { echo "line 2 wrong"; exit 1; }
[ "$(line 3)" = "0x10: unknown" ] || { echo "line 3 wrong"; exit 1; }
[ "$(wc -l < "$work/out")" -eq 3 ] || { echo "expected 3 lines"; exit 1; }
echo "example built against the installed tree and answered correctly"

# The ABI: the soname the libtool version gives, and exactly the symbols
# client/libvmaq.sym lists, each in its version node.
command -v readelf >/dev/null || { echo "readelf is missing (Debian: binutils)"; exit 1; }
lib=$(readlink -f "$libdir/libvmaq.so.2")
readelf -dW "$lib" | grep -q '(SONAME) .*\[libvmaq\.so\.2\]' || { echo "soname is not libvmaq.so.2"; exit 1; }
awk '/^[A-Z0-9_]+ \{/ { node = $1 } /^ +vmaq_[a-z_]+;$/ { sub(/;/, ""); print $1 "@@" node }' \
        "$abs_top_srcdir/client/libvmaq.sym" | sort > "$work/want.sym"
readelf --dyn-syms -W "$lib" | awk '$5 == "GLOBAL" && $7 != "UND" && $8 ~ /^vmaq_/ { print $8 }' \
        | sort > "$work/have.sym"
[ -s "$work/want.sym" ] || { echo "no symbols found in libvmaq.sym"; exit 1; }
diff -u "$work/want.sym" "$work/have.sym" || { echo "exported symbols differ from libvmaq.sym"; exit 1; }
echo "libvmaq.so.2 exports the $(wc -l < "$work/want.sym") symbols of libvmaq.sym"
