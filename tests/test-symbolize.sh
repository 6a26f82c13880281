#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The README's pipeline: addresses of functions of a live process,
# normalized by vmaqd to ELF addresses (vmaqctl normalize --format=), then
# symbolized with addr2line(1) against the files on disk. Every answer is
# checked against what the process knows of itself (which function each
# address is in) and against nm(1)'s view of the file (the function's
# symbol value plus the address's distance into it), for a position-
# independent program, one linked to a fixed address, one with separate
# code segments, one without a build ID, and the shared library they use.
#
# Needs a C compiler, addr2line, nm, objcopy and strip (binutils); skipped
# (77) otherwise.

set -eu

: "${VMAQD:?}" "${VMAQCTL:?}"

for tool in "${CC:-cc}" addr2line nm objcopy strip; do
        command -v "$tool" >/dev/null || { echo "SKIP: $tool is missing (Debian: gcc, binutils)"; exit 77; }
done

work=$(mktemp -d)
chmod 0755 "$work"
daemon=""
target=""
cleanup() {
        set +e
        [ -z "$target" ] || { kill "$target"; wait "$target"; } 2>/dev/null
        [ -z "$daemon" ] || { kill "$daemon"; wait "$daemon"; }
        rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; [ ! -f "$work/log" ] || cat "$work/log"; exit 1; }

# Bounded waits for what another process makes: not timing assertions.
wait_for() {
        i=0
        until [ -s "$1" ]; do
                i=$((i + 1))
                [ $i -le 400 ] || fail "$1 did not appear"
                sleep 0.05
        done
}

"$VMAQD" --socket "$work/vmaqd.sock" --log-level debug >"$work/log" 2>&1 &
daemon=$!
i=0
until "$VMAQCTL" --socket "$work/vmaqd.sock" status >/dev/null 2>&1; do
        i=$((i + 1))
        kill -0 "$daemon" 2>/dev/null || fail "vmaqd exited"
        [ $i -le 400 ] || fail "vmaqd did not answer"
        sleep 0.05
done
ctl() { "$VMAQCTL" --socket "$work/vmaqd.sock" "$@"; }

# The library says where its function is: from the program, a fixed-address
# one's pointer to a library function is its PLT entry (the canonical address).
cat >"$work/lib.c" <<'END'
__attribute__((noinline)) static int lib_scale(int x) { return x * 3 + 1; }
int lib_call(int x) { return lib_scale(x); }
void *lib_where(void) { return (void *) ((char *) lib_scale + 2); }
END
cat >"$work/prog.c" <<'END'
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int lib_call(int x);
void *lib_where(void);

__attribute__((noinline)) int prog_first(int x) { return lib_call(x) + 7; }
__attribute__((noinline)) int prog_second(int x) { return prog_first(x) * 5; }

/* Where some addresses inside our functions are, and which: then wait for stdin to close. */
int main(int argc, char **argv) {
        FILE *f = fopen(argv[1], "w");
        char c;

        if (!f)
                return 1;
        fprintf(f, "%p prog_first 4\n", (void *) ((char *) prog_first + 4));
        fprintf(f, "%p prog_second 1\n", (void *) ((char *) prog_second + 1));
        fprintf(f, "%p lib_scale 2\n", lib_where());
        fclose(f);
        rename(argv[1], argv[2]);
        while (read(0, &c, 1) > 0)
                ;
        return prog_second(argc) == 0;
}
END
"${CC:-cc}" -g -O1 -fPIC -shared -o "$work/libscale.so" "$work/lib.c"

# Each variant: its compiler flags.
check_variant() {
        name=$1
        shift
        prog="$work/prog-$name"
        "${CC:-cc}" -g -O1 "$@" -o "$prog" "$work/prog.c" -L"$work" -lscale -Wl,-rpath,"$work"
        rm -f "$work/addrs" "$work/fifo"
        mkfifo "$work/fifo"
        "$prog" "$work/addrs.tmp" "$work/addrs" <"$work/fifo" &
        target=$!
        exec 3>"$work/fifo"
        wait_for "$work/addrs"

        addrs=$(cut -d' ' -f1 "$work/addrs")
        # shellcheck disable=SC2086 # a list of addresses
        ctl normalize --format=build-id "$target" $addrs >"$work/out-build-id" || fail "$name: normalize"
        # shellcheck disable=SC2086
        ctl normalize --format=addr2line "$target" $addrs >"$work/out-addr2line" || fail "$name: normalize"
        [ "$(wc -l <"$work/out-build-id")" -eq 3 ] || fail "$name: $(cat "$work/out-build-id")"

        # Line by line: the ELF address symbolizes to the function the process said, and is nm's.
        n=0
        while read -r addr func delta <&4 && read -r id elf path <&5; do
                n=$((n + 1))
                [ "$elf" != "-" ] || fail "$name: no ELF address for $func: $id $elf $path"
                got=$(addr2line -f -e "$path" "$elf" | head -n1)
                [ "$got" = "$func" ] || fail "$name: $addr ($elf in $path) is in $got, not $func"
                value=$(nm "$path" | awk -v f="$func" '$3 == f && ($2 == "T" || $2 == "t") { print $1 }')
                [ -n "$value" ] || fail "$name: nm knows no $func in $path"
                [ $((elf)) -eq $((0x$value + delta)) ] ||
                        fail "$name: $func: ELF address $elf, nm says 0x$value + $delta"
                case $func in
                lib_scale) want_path="$work/libscale.so" ;;
                *) want_path=$prog ;;
                esac
                [ "$path" = "$want_path" ] || fail "$name: $func in $path, not $want_path"
                if [ "$name" = no-build-id ] && [ "$path" = "$prog" ]; then
                        [ "$id" = "-" ] || fail "$name: a build ID $id for a file without one"
                else
                        [ "$id" != "-" ] || fail "$name: no build ID for $path"
                fi
        done 4<"$work/addrs" 5<"$work/out-build-id"
        [ $n -eq 3 ] || fail "$name: $n answers"

        # The batches for addr2line: per file, the same ELF addresses, and what addr2line makes of them.
        xargs -L1 addr2line -f <"$work/out-addr2line" | awk 'NR % 2 == 1' | sort >"$work/funcs"
        printf 'lib_scale\nprog_first\nprog_second\n' >"$work/want"
        cmp -s "$work/funcs" "$work/want" || fail "$name: addr2line batches: $(cat "$work/funcs")"
        grep -c '^-e ' "$work/out-addr2line" | grep -qx 2 || fail "$name: $(cat "$work/out-addr2line")"

        exec 3>&-
        wait "$target" || true
        target=""
        echo "$name: 3 addresses symbolized to their functions"
}

check_variant pie -fPIE -pie
check_variant no-pie -fno-pie -no-pie
check_variant separate-code -fPIE -pie -Wl,-z,separate-code
check_variant no-build-id -fPIE -pie -Wl,--build-id=none

# Stripped: the remote side has the unstripped file (or the debug file) the
# stripped one was made from; the ELF addresses are the same in both.
"${CC:-cc}" -g -O1 -fPIE -pie -o "$work/prog-full" "$work/prog.c" -L"$work" -lscale -Wl,-rpath,"$work"
strip -o "$work/prog-stripped" "$work/prog-full"
rm -f "$work/addrs" "$work/fifo"
mkfifo "$work/fifo"
"$work/prog-stripped" "$work/addrs.tmp" "$work/addrs" <"$work/fifo" &
target=$!
exec 3>"$work/fifo"
wait_for "$work/addrs"
grep prog_ "$work/addrs" >"$work/addrs-prog"
# shellcheck disable=SC2046 # a list of addresses
ctl normalize --format=build-id "$target" $(cut -d' ' -f1 "$work/addrs-prog") >"$work/out-build-id" ||
        fail "stripped: normalize"
[ "$(wc -l <"$work/out-build-id")" -eq 2 ] || fail "stripped: $(cat "$work/out-build-id")"
paste -d' ' "$work/out-build-id" "$work/addrs-prog" | while read -r id elf path addr func delta; do
        [ "$path" = "$work/prog-stripped" ] || fail "stripped: $path"
        got=$(addr2line -f -e "$work/prog-full" "$elf" | head -n1)
        [ "$got" = "$func" ] || fail "stripped: $addr ($elf) is $got in the unstripped file, not $func"
done
exec 3>&-
wait "$target" || true
target=""
echo "stripped: symbolized against the file it was stripped from"

# The distribution's C library: the ELF address of getpid() is its value in
# libc's dynamic symbol table (it has no other).
cat >"$work/libc.c" <<'END'
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
        FILE *f = fopen(argv[1], "w");
        char c;

        if (!f)
                return 1;
        fprintf(f, "%p\n", (void *) ((char *) getpid + 1));
        fclose(f);
        rename(argv[1], argv[2]);
        while (read(0, &c, 1) > 0)
                ;
        return 0;
}
END
"${CC:-cc}" -O1 -fPIE -pie -o "$work/prog-libc" "$work/libc.c"
rm -f "$work/addrs" "$work/fifo"
mkfifo "$work/fifo"
"$work/prog-libc" "$work/addrs.tmp" "$work/addrs" <"$work/fifo" &
target=$!
exec 3>"$work/fifo"
wait_for "$work/addrs"
ctl normalize --format=build-id "$target" "$(cat "$work/addrs")" >"$work/out-build-id" || fail "libc: normalize"
read -r id elf path <"$work/out-build-id"
case $path in
*/libc.so.6) ;;
*) fail "libc: getpid in $path" ;;
esac
value=$(nm -D "$path" | awk '$3 == "getpid" || $3 ~ /^getpid@/ { print $1; exit }')
[ -n "$value" ] || fail "libc: nm -D knows no getpid in $path"
[ $((elf)) -eq $((0x$value + 1)) ] || fail "libc: getpid's ELF address $elf, nm -D says 0x$value + 1"
[ "$id" != "-" ] || fail "libc: no build ID for $path"
exec 3>&-
wait "$target" || true
target=""
echo "libc: getpid at its dynamic symbol's address"

# A Go build ID note, as the Go linker writes it (name "Go", type 4), added
# to a program the C compiler made: said as the module's go_build_id.
go_id="goIdAbc/def-123"
{
        printf '\003\000\000\000'                   # namesz
        printf '\017\000\000\000'                   # descsz: 15
        printf '\004\000\000\000'                   # type: NT_GO_BUILDID
        printf 'Go\000\000'                           # name, padded to 4
        printf '%s\000' "$go_id"                      # desc, padded to 16
} >"$work/go-note"
"${CC:-cc}" -g -O1 -fPIE -pie -o "$work/prog-go" "$work/prog.c" -L"$work" -lscale -Wl,-rpath,"$work"
objcopy --add-section .note.go.buildid="$work/go-note" \
        --set-section-flags .note.go.buildid=alloc,readonly "$work/prog-go" 2>/dev/null
rm -f "$work/addrs" "$work/fifo"
mkfifo "$work/fifo"
"$work/prog-go" "$work/addrs.tmp" "$work/addrs" <"$work/fifo" &
target=$!
exec 3>"$work/fifo"
wait_for "$work/addrs"
addr=$(head -n1 "$work/addrs" | cut -d' ' -f1)
ctl --json normalize "$target" "$addr" >"$work/out-json" || fail "go: normalize"
grep -q "\"go_build_id\": \"$go_id\"" "$work/out-json" || fail "go: $(cat "$work/out-json")"
grep -q '"elf_type": "dyn"' "$work/out-json" || fail "go: $(cat "$work/out-json")"
exec 3>&-
wait "$target" || true
target=""
echo "go: the Go build ID is told"
