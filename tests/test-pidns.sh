#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A client in a container: vmaqctl inside `unshare --pid --fork --mount-proc`,
# against the daemon outside, about a target inside, named by its pid there.
# Every answer is checked against what the target itself reports: it reads
# its own /proc/self/maps (the namespace's /proc) before it waits. Then: the
# replies carry the pid the client named, a pid outside the namespace is no
# such process, and an unprivileged client there gets what the policy gives
# it, its own process and not root's.
#
# Needs root and unshare (util-linux); skipped (77) otherwise.

set -eu

: "${VMAQD:?}" "${VMAQCTL:?}"

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root for unshare --pid"; exit 77; }
command -v unshare >/dev/null || { echo "SKIP: unshare is missing (Debian: util-linux)"; exit 77; }
command -v setpriv >/dev/null || { echo "SKIP: setpriv is missing (Debian: util-linux)"; exit 77; }
unshare --pid --fork --mount-proc true 2>/dev/null || {
        echo "SKIP: unshare --pid --fork --mount-proc fails here (no pid or mount namespaces?)"
        exit 77
}

work=$(mktemp -d)
chmod 0755 "$work"
daemon=""
cleanup() {
        set +e
        [ -z "$daemon" ] || { kill "$daemon"; wait "$daemon"; }
        rm -rf "$work"
}
trap cleanup EXIT

# Bounded waits for what another process makes: not timing assertions.
wait_for() {
        i=0
        until [ -e "$1" ]; do
                i=$((i + 1))
                [ $i -le 400 ] || { echo "FAIL: $1 did not appear"; exit 1; }
                sleep 0.05
        done
}

"$VMAQD" --socket "$work/vmaqd.sock" --log-level debug >"$work/log" 2>&1 &
daemon=$!
i=0
until "$VMAQCTL" --socket "$work/vmaqd.sock" status >/dev/null 2>&1; do
        i=$((i + 1))
        kill -0 "$daemon" 2>/dev/null || { cat "$work/log"; echo "FAIL: vmaqd exited"; exit 1; }
        [ $i -le 400 ] || { cat "$work/log"; echo "FAIL: vmaqd did not answer"; exit 1; }
        sleep 0.05
done

cat >"$work/inner.sh" <<'END'
set -eu
W=$1 OUTER=$2
ctl() { "$VMAQCTL" --socket "$W/vmaqd.sock" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
wait_for() {
        i=0
        until [ -e "$1" ]; do
                i=$((i + 1))
                [ $i -le 400 ] || fail "$1 did not appear"
                sleep 0.05
        done
}

[ $$ -eq 1 ] || fail "not pid 1 of a namespace of our own: $$"

# The target: its own view of its map, then it waits for the fifo.
mkfifo "$W/fifo"
W=$W sh -c 'while IFS= read -r l; do printf "%s\n" "$l"; done </proc/self/maps >"$W/maps.tmp"
            mv "$W/maps.tmp" "$W/maps"; echo $$ >"$W/pid.tmp"; mv "$W/pid.tmp" "$W/pid"
            read x <"$W/fifo"' &
wait_for "$W/pid"
T=$(cat "$W/pid")
[ "$T" -lt 100 ] || fail "target pid $T is no pid of a fresh namespace"

# ListMappings: the file mappings, as the target saw them.
awk '$6 ~ /^\// { print $1, $2, $3, $6 }' "$W/maps" >"$W/want-maps"
[ -s "$W/want-maps" ] || fail "the target reported no file mappings"
ctl maps --no-legend --no-build-ids "$T" >"$W/maps-out" || fail "maps $T failed"
awk '$7 ~ /^\// { print $1 "-" $2, $3, $4, $7 }' "$W/maps-out" >"$W/got-maps"
cmp "$W/want-maps" "$W/got-maps" || { diff "$W/want-maps" "$W/got-maps"; fail "maps differ"; }

# Normalize: an address 16 bytes into each file mapping, in one call.
addrs=""
: >"$W/want-norm"
while read -r range perms off path; do
        a=$(( 0x${range%-*} + 16 ))
        addrs="$addrs $(printf '0x%x' "$a")"
        printf '0x%012x: file offset 0x%x in %s\n' "$a" $(( 0x$off + 16 )) "$path" >>"$W/want-norm"
done <"$W/want-maps"
# shellcheck disable=SC2086
ctl normalize --no-build-ids "$T" $addrs >"$W/got-norm" || fail "normalize $T failed"
cmp "$W/want-norm" "$W/got-norm" || { diff "$W/want-norm" "$W/got-norm"; fail "normalize differs"; }

# The replies speak of the pid the client named, in map_files too.
a=${addrs# }; a=${a%% *}
ctl --json normalize --map-files "$T" "$a" >"$W/json" || fail "normalize --json failed"
grep -q "\"pid\": $T," "$W/json" || { cat "$W/json"; fail "Normalize reply without pid $T"; }
grep -q "\"map_files\": \"/proc/$T/map_files/" "$W/json" || { cat "$W/json"; fail "map_files not under /proc/$T"; }
ctl --json maps "$T" >"$W/json" || fail "maps --json failed"
grep -q "\"pid\": $T," "$W/json" || fail "ListMappings reply without pid $T"

# A pid outside the namespace is nobody here.
if ctl normalize "$OUTER" "$a" >"$W/reply" 2>&1; then fail "answered about pid $OUTER outside"; fi
grep -q "no such process: pid $OUTER" "$W/reply" || { cat "$W/reply"; fail "no NoSuchProcess for $OUTER"; }

# An unprivileged client here: its own process, not root's.
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
if as_nobody test -x "$VMAQCTL"; then
        setpriv --reuid=65534 --regid=65534 --clear-groups sleep 600 &
        N=$!
        # Once it runs sleep, it is nobody's and dumpable (setpriv was neither yet).
        i=0
        until [ "$(cat "/proc/$N/comm" 2>/dev/null)" = sleep ]; do
                i=$((i + 1))
                [ $i -le 400 ] || fail "the unprivileged target did not start"
                sleep 0.05
        done
        as_nobody "$VMAQCTL" --socket "$W/vmaqd.sock" maps "$N" >/dev/null || fail "nobody may not read its own $N"
        if as_nobody "$VMAQCTL" --socket "$W/vmaqd.sock" maps "$T" >"$W/reply" 2>&1; then
                fail "nobody may read root's $T"
        fi
        grep -q "permission denied" "$W/reply" || { cat "$W/reply"; fail "no PermissionDenied for $T"; }
        kill "$N"
else
        echo "note: nobody cannot execute $VMAQCTL, the unprivileged client is not checked"
fi

echo >"$W/fifo"
wait
echo "ok"
END

status=0
VMAQCTL="$VMAQCTL" unshare --pid --fork --mount-proc sh "$work/inner.sh" "$work" $$ >"$work/out" 2>&1 || status=$?
cat "$work/out"
if [ $status -ne 0 ] || [ "$(tail -n 1 "$work/out")" != "ok" ]; then
        cat "$work/log"
        echo "FAIL: the client in a pid namespace of its own (exit $status)"
        exit 1
fi
kill -0 "$daemon" || { cat "$work/log"; echo "FAIL: vmaqd died"; exit 1; }
echo "a client in its own pid namespace is answered in its pids"
