#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vmaqd's log lines: "<N>" priority prefixes only when stderr is the
# journal's stream ($JOURNAL_STREAM names its device and inode, as systemd
# sets it); on a file or a terminal, plain lines after "vmaqd: ". A
# $JOURNAL_STREAM inherited along with another stderr is ignored.

set -eu

: "${VMAQD:?}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() { echo "$1:"; cat "$2"; exit 1; }

# An option error, on a file.
if env -u JOURNAL_STREAM "$VMAQD" --log-level bogus 2>"$work/plain"; then
        echo "--log-level bogus was accepted"; exit 1
fi
[ "$(cat "$work/plain")" = "vmaqd: Unknown log level 'bogus'." ] || fail "plain line expected" "$work/plain"

# The same, with stderr the stream $JOURNAL_STREAM names.
: >"$work/journal"
stream=$(stat -c '%d:%i' "$work/journal")
if JOURNAL_STREAM=$stream "$VMAQD" --log-level bogus 2>>"$work/journal"; then
        echo "--log-level bogus was accepted"; exit 1
fi
[ "$(cat "$work/journal")" = "<3>Unknown log level 'bogus'." ] || fail "journal line expected" "$work/journal"

# Inherited, but stderr is another file: plain.
if JOURNAL_STREAM=$stream "$VMAQD" --backend bogus 2>"$work/other"; then
        echo "--backend bogus was accepted"; exit 1
fi
[ "$(cat "$work/other")" = "vmaqd: Unknown backend 'bogus'." ] || fail "plain line expected" "$work/other"

# A malformed $JOURNAL_STREAM: plain.
: >"$work/journal2"
stream=$(stat -c '%d:%i' "$work/journal2")
if JOURNAL_STREAM="${stream}x" "$VMAQD" --socket relative 2>>"$work/journal2"; then
        echo "--socket relative was accepted"; exit 1
fi
[ "$(cat "$work/journal2")" = "vmaqd: --socket needs an absolute path." ] || fail "plain line expected" "$work/journal2"

echo "journal lines carry <N>, other lines 'vmaqd: '"
