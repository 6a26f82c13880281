#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The units as built: `systemd-analyze verify` says nothing at all (it only
# warns on mistakes and still exits 0), and `systemd-analyze security`
# rates the service's exposure at 2.0 or less.

set -eu

: "${abs_top_builddir:?}" "${abs_top_srcdir:?}"
command -v systemd-analyze >/dev/null || { echo "systemd-analyze is missing (Debian: systemd)"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# verify wants ExecStart= to exist and the Documentation= pages to be found:
# point both at the build tree.
sed "s|^ExecStart=[^ ]*/vmaqd|ExecStart=$abs_top_builddir/daemon/vmaqd|" \
        "$abs_top_builddir/systemd/vmaqd.service" > "$work/vmaqd.service"
cp "$abs_top_srcdir/systemd/vmaqd.socket" "$work/vmaqd.socket"
grep -q "^ExecStart=$abs_top_builddir/daemon/vmaqd$" "$work/vmaqd.service" || {
        echo "ExecStart= not rewritten"
        exit 1
}
mkdir -p "$work/man/man8"
cp "$abs_top_srcdir/man/vmaqd.8" "$work/man/man8/"

MANPATH="$work/man" systemd-analyze verify "$work/vmaqd.socket" "$work/vmaqd.service" > "$work/verify.out" 2>&1 || {
        cat "$work/verify.out"
        echo "systemd-analyze verify failed"
        exit 1
}
if [ -s "$work/verify.out" ]; then
        cat "$work/verify.out"
        echo "systemd-analyze verify printed warnings"
        exit 1
fi

# --threshold takes 0..100: 20 is an exposure of 2.0.
systemd-analyze security --offline=yes --threshold=20 "$work/vmaqd.service" > "$work/security.out" 2>&1 || {
        cat "$work/security.out"
        echo "exposure above 2.0"
        exit 1
}
exposure=$(sed -n 's/^→ Overall exposure level for vmaqd.service: \([0-9.]*\) .*/\1/p' "$work/security.out")
[ -n "$exposure" ] || { cat "$work/security.out"; echo "no exposure level found"; exit 1; }
echo "systemd-analyze verify: silent; exposure $exposure"
awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }'
