#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A privileged group created after vmaqd started: its members are denied
# another user's process while the group does not exist, and let in once it
# does, without a restart. vmaqd runs in a mount namespace of its own where
# a copy of /etc/group stands in for the real one, so nothing of the host
# changes.
#
# Needs root, unshare and setpriv (util-linux); skipped (77) otherwise.

set -eu

: "${VMAQD:?}" "${VMAQCTL:?}"

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root for a mount namespace and setpriv"; exit 77; }
command -v unshare >/dev/null || { echo "SKIP: unshare is missing (Debian: util-linux)"; exit 77; }
command -v setpriv >/dev/null || { echo "SKIP: setpriv is missing (Debian: util-linux)"; exit 77; }
unshare --mount --propagation private true 2>/dev/null || {
        echo "SKIP: unshare --mount fails here (no mount namespaces?)"
        exit 77
}

work=$(mktemp -d)
chmod 0755 "$work"
daemon=""
target=""
cleanup() {
        set +e
        [ -z "$target" ] || { kill "$target"; wait "$target"; }
        [ -z "$daemon" ] || { kill "$daemon"; wait "$daemon"; }
        rm -rf "$work"
}
trap cleanup EXIT

name="vmaqtest$$"
gid=$((60000 + $$ % 5000))
while getent group "$gid" >/dev/null; do gid=$((gid + 1)); done
cp /etc/group "$work/group"
chmod 0644 "$work/group"

# shellcheck disable=SC2016 # expanded by the inner shell
unshare --mount --propagation private sh -c 'mount --bind "$1" /etc/group && shift && exec "$@"' sh \
        "$work/group" "$VMAQD" --socket "$work/vmaqd.sock" --group "$name" --log-level info \
        2>"$work/vmaqd.log" &
daemon=$!
i=0
until [ -S "$work/vmaqd.sock" ]; do
        i=$((i + 1))
        [ $i -le 100 ] || { echo "vmaqd did not start"; cat "$work/vmaqd.log"; exit 1; }
        sleep 0.1
done
grep -q "Group '$name' does not exist" "$work/vmaqd.log" || { cat "$work/vmaqd.log"; exit 1; }

# A process of root's that nobody may not see without the group.
sleep 600 &
target=$!

query() {
        setpriv --reuid=65534 --regid=65534 --groups="$gid" \
                "$VMAQCTL" --socket "$work/vmaqd.sock" normalize "$target" 0x10 >"$work/out" 2>&1
}

if query; then
        echo "allowed before the group existed:"; cat "$work/out"; exit 1
fi
grep -qi 'denied\|permission' "$work/out" || { echo "not a denial:"; cat "$work/out"; exit 1; }
echo "before: $(cat "$work/out")"

# Append in place: the bind mount shows the same file.
echo "$name:x:$gid:" >>"$work/group"

# vmaqd looks the group up at most once a second: a bounded wait.
i=0
until query; do
        i=$((i + 1))
        [ $i -le 50 ] || { echo "still denied after the group was created:"; cat "$work/out"; exit 1; }
        sleep 0.1
done
echo "after: $(cat "$work/out")"
