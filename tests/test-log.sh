#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vmaqd's log lines: "<N>" priority prefixes only when stderr is the
# journal's stream ($JOURNAL_STREAM names its device and inode, as systemd
# sets it); on a file or a terminal, plain lines after "vmaqd: ". A
# $JOURNAL_STREAM inherited along with another stderr is ignored. At
# debug level, one line per request: who asked, the method, the process and
# the number of addresses, and the error the client got.

set -eu

: "${VMAQD:?}" "${VMAQCTL:?}"

work=$(mktemp -d)
daemon=""
cleanup() {
        [ -z "$daemon" ] || { kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; }
        rm -rf "$work"
}
trap cleanup EXIT

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

# Requests at debug level.
env -u JOURNAL_STREAM "$VMAQD" --socket "$work/vmaqd.sock" --log-level debug 2>"$work/debug" &
daemon=$!
i=0
until "$VMAQCTL" --socket "$work/vmaqd.sock" status >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -le 100 ] || fail "vmaqd did not start" "$work/debug"
        sleep 0.1
done
sh -c 'exit 0' & gone=$!
wait "$gone"
"$VMAQCTL" --socket "$work/vmaqd.sock" normalize $$ 10 20 >/dev/null
if "$VMAQCTL" --socket "$work/vmaqd.sock" normalize "$gone" 10 2>/dev/null; then
        echo "pid $gone was answered, though reaped"; exit 1
fi
"$VMAQCTL" --socket "$work/vmaqd.sock" status >/dev/null
kill "$daemon"
wait "$daemon" || fail "vmaqd did not exit 0 on SIGTERM" "$work/debug"
daemon=""
me="Request of pid [0-9]* uid $(id -u)"
grep -qx "vmaqd: $me: io.vmaq.Normalize about pid $$, 2 addresses: answered." "$work/debug" ||
        fail "no line for the answered request" "$work/debug"
grep -qx "vmaqd: $me: io.vmaq.Normalize about pid $gone, 1 address: \
{\"error\":\"io.vmaq.NoSuchProcess\",\"parameters\":{\"pid\":$gone}}." "$work/debug" ||
        fail "no line with the error sent" "$work/debug"
grep -qx "vmaqd: $me: io.vmaq.GetStatus: answered." "$work/debug" || fail "no line for GetStatus" "$work/debug"

echo "journal lines carry <N>, other lines 'vmaqd: '; one debug line per request"
