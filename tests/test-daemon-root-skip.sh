#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Without root, the groups of tests/test-daemon.c that need it are a SKIP:
# tests/test-daemon-root-* exit 77 and name each group with its reason. Run
# as nobody when we are root, as make check in CI is, so that this path is
# taken at all.

set -eu

: "${abs_top_builddir:?}" "${VMAQD:?}"

prog="$abs_top_builddir/tests/test-daemon-root-text"
if [ "$(id -u)" -eq 0 ]; then
        command -v setpriv >/dev/null || { echo "SKIP: setpriv is missing (Debian: util-linux)"; exit 77; }
        as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
        as_user test -x "$prog" -a -x "$VMAQD" || {
                echo "SKIP: nobody cannot execute $prog or $VMAQD (the build tree is not reachable for other users)"
                exit 77
        }
else
        as_user() { "$@"; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

status=0
as_user env VMAQD="$VMAQD" "$prog" >"$work/out" 2>&1 </dev/null || status=$?
cat "$work/out"
[ $status -eq 77 ] || { echo "FAIL: $prog exited with $status without root, expected 77"; exit 1; }
cat >"$work/expected" <<'END'
SKIP: access-control: needs root to become nobody
SKIP: post-mortem-reuse: clone3() with set_tid needs root
SKIP: pid-namespace: unshare(CLONE_NEWPID) needs root
SKIP: fds-root: needs root to become nobody and to unshare(CLONE_NEWPID)
SKIP: hostile-denied: needs root to become nobody
SKIP: quotas: needs root to connect as several users
SKIP: hostile-stalled: needs root to mount a FUSE file system
END
cmp -s "$work/out" "$work/expected" || { echo "FAIL: expected exactly:"; cat "$work/expected"; exit 1; }
echo "without root: exit 77, each group named"
