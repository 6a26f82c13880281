#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The units under a real systemd: boot a container with systemd-nspawn whose
# /usr is the host's with a `make install DESTDIR=` tree overlaid, and check
# inside it that the socket activates the service, that the service runs with
# exactly what the unit says (capabilities, user, NoNewPrivileges, seccomp),
# stops cleanly and is re-activated, and that a vmaqd that never sends READY
# fails its start.
#
# Needs root and systemd-nspawn (Debian: systemd-container); skipped (77)
# otherwise, and where no container boots: until the container's systemd is
# up, nothing of vmaqd has run, so a failure there says nothing about the
# units. Anything after that which goes wrong fails the test.

set -eu

: "${abs_top_builddir:?}" "${abs_top_srcdir:?}"

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to boot a container"; exit 77; }
command -v systemd-nspawn >/dev/null || { echo "SKIP: systemd-nspawn is missing (Debian: systemd-container)"; exit 77; }
command -v nsenter >/dev/null || { echo "SKIP: nsenter is missing (Debian: util-linux)"; exit 77; }
# LeakSanitizer needs ptrace() at exit, which the unit's seccomp filter forbids.
[ -z "${SANITIZER_CFLAGS:-}" ] || {
        echo "SKIP: a sanitizer build of vmaqd cannot exit cleanly inside its own sandbox"
        exit 77
}
case "$(sed -n 's/^ExecStart=//p' "$abs_top_builddir/systemd/vmaqd.service")" in
/usr/*) ;;
*) echo "SKIP: this build installs vmaqd outside /usr (make distcheck?): the container's /usr overlay cannot carry it"
   exit 77 ;;
esac

work=$(mktemp -d)
stage="$work/stage"
nspawn=""
cgroups=""
nspawn_before=$(ls -d /run/systemd/nspawn* 2>/dev/null || true)

cleanup() {
        set +e
        if [ -n "$nspawn" ]; then
                # SIGTERM: nspawn asks the container's systemd to power off.
                kill "$nspawn" 2>/dev/null
                i=0
                while kill -0 "$nspawn" 2>/dev/null && [ $i -lt 150 ]; do
                        i=$((i + 1))
                        sleep 0.1
                done
                if kill -0 "$nspawn" 2>/dev/null; then
                        echo "cleanup: container did not stop in 15 s, killing it"
                        [ -z "${leader:-}" ] || kill -KILL "$leader" 2>/dev/null
                        kill -KILL "$nspawn" 2>/dev/null
                fi
                wait "$nspawn" 2>/dev/null
        fi
        # The scratch cgroups, deepest first, once their processes are gone.
        for cg in $cgroups; do
                i=0
                while [ -d "$cg" ] && [ $i -lt 50 ]; do
                        find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
                        [ -d "$cg" ] || break
                        i=$((i + 1))
                        sleep 0.1
                done
                [ ! -d "$cg" ] || echo "cleanup: could not remove cgroup $cg"
        done
        # Only the /run/systemd/nspawn* entries this run created.
        for e in /run/systemd/nspawn*; do
                [ -e "$e" ] || continue
                printf '%s\n' "$nspawn_before" | grep -qxF "$e" && continue
                # nspawn-root is a mount point only inside nspawn's namespace.
                if mountpoint -q "$e"; then
                        echo "cleanup: $e is still mounted, left alone"
                else
                        rm -rf --one-file-system "$e"
                fi
        done
        rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

show_nspawn_log() {
        if [ -s "$work/nspawn.log" ]; then
                echo "--- systemd-nspawn output (last 40 lines) ---"
                tail -n 40 "$work/nspawn.log"
        fi
}

fail() {
        echo "FAIL: $*"
        show_nspawn_log
        exit 1
}

# This machine cannot boot the container: no verdict on the units.
cannot_run() {
        echo "SKIP: $*"
        show_nspawn_log
        exit 77
}

# --- the installed tree, units where the /usr overlay carries them --------
echo "make install DESTDIR=$stage"
make -s -C "$abs_top_builddir" install DESTDIR="$stage" >"$work/install.log" 2>&1 || {
        cat "$work/install.log"
        fail "make install"
}
# Debian 12's unit dir is /lib/systemd/system (/lib -> usr/lib only on the
# host): only $stage/usr is overlaid, so put the units under it.
mkdir -p "$stage/usr/lib/systemd/system" "$stage/usr/lib/sysusers.d"
for f in vmaqd.socket vmaqd.service; do
        src=$(find "$stage" -name "$f" -type f | head -n1)
        [ -n "$src" ] || fail "make install did not put $f under DESTDIR"
        [ "$src" = "$stage/usr/lib/systemd/system/$f" ] || cp "$src" "$stage/usr/lib/systemd/system/$f"
done
src=$(find "$stage" -path '*/sysusers.d/vmaqd.conf' -type f | head -n1)
[ -n "$src" ] || fail "make install did not put sysusers.d/vmaqd.conf under DESTDIR"
[ "$src" = "$stage/usr/lib/sysusers.d/vmaqd.conf" ] || cp "$src" "$stage/usr/lib/sysusers.d/vmaqd.conf"
execstart=$(sed -n 's/^ExecStart=//p' "$stage/usr/lib/systemd/system/vmaqd.service")
case "$execstart" in
/usr/*) [ -x "$stage$execstart" ] || fail "ExecStart=$execstart is not installed in the stage" ;;
*) fail "ExecStart=$execstart is not under /usr, the overlay would not carry it" ;;
esac
vmaqctl=$(find "$stage/usr" -name vmaqctl -type f -perm -u+x | head -n1)
[ -n "$vmaqctl" ] || fail "vmaqctl is not installed under /usr"
vmaqctl=${vmaqctl#"$stage"}
libdir=$(find "$stage/usr" -name libvmaq.so.2 | head -n1)
[ -n "$libdir" ] || fail "libvmaq.so.2 is not installed under /usr"
# The container's /etc is empty: no ld.so.cache, no /usr/local/lib in the path.
libdir=$(dirname "${libdir#"$stage"}")
echo "ok: units, sysusers.d file, $execstart and $vmaqctl in the stage"

# --- a scratch cgroup to run the container from ----------------------------
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
        cgroups="/sys/fs/cgroup/vmaqd-nspawn-$$"
else
        [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ] ||
                { echo "SKIP: no cgroup v2 hierarchy"; exit 77; }
        cgroups="/sys/fs/cgroup/unified/vmaqd-nspawn-$$"
        [ "$(stat -fc %T /sys/fs/cgroup/systemd 2>/dev/null)" != cgroupfs ] ||
                cgroups="$cgroups /sys/fs/cgroup/systemd/vmaqd-nspawn-$$"
fi
for cg in $cgroups; do
        mkdir "$cg" || cannot_run "cannot create cgroup $cg to run the container in"
done

# --- boot ------------------------------------------------------------------
echo "booting a container: / volatile, /usr overlaid with the stage"
# nspawn's default bounding set lacks CAP_CHECKPOINT_RESTORE, which the unit
# grants: without --capability= the service would silently run without it.
start=$(date +%s)
(
        for cg in $cgroups; do
                echo 0 > "$cg/cgroup.procs" || exit 1
        done
        SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec systemd-nspawn --quiet \
                --directory=/ --volatile=yes --register=no --keep-unit \
                --capability=CAP_CHECKPOINT_RESTORE \
                --private-network --console=passive \
                --overlay-ro="/usr:$stage/usr:/usr" \
                --boot -- systemd.firstboot=off
) >"$work/nspawn.log" 2>&1 </dev/null &
nspawn=$!

# The container's init is the child of systemd-nspawn in a pid namespace of
# its own. Not just any child: nspawn's short-lived outer child, in our pid
# namespace, comes first, and once it is gone nothing can enter it.
own_pidns=$(readlink /proc/self/ns/pid)
leader=""
i=0
while [ -z "$leader" ]; do
        kill -0 "$nspawn" 2>/dev/null || cannot_run "systemd-nspawn exited before the container's systemd was up"
        for p in /proc/[0-9]*; do
                pp=$(sed -n 's/^PPid:[[:space:]]*//p' "$p/status" 2>/dev/null) || continue
                [ "$pp" = "$nspawn" ] || continue
                pidns=$(readlink "$p/ns/pid" 2>/dev/null) || continue
                if [ "$pidns" != "$own_pidns" ]; then
                        leader=${p#/proc/}
                        break
                fi
        done
        [ -n "$leader" ] && break
        i=$((i + 1))
        [ $i -le 100 ] || cannot_run "systemd-nspawn started no container init in 10 s"
        sleep 0.1
done

inside() { timeout 30 nsenter -t "$leader" -a "$@"; }

# The container's manager listens on /run/systemd/private before it starts
# any unit; until then it has only read the unit files, and one that does
# not parse only fails to load. So nothing up to here depends on vmaqd.
i=0
until inside test -S /run/systemd/private 2>"$work/nsenter.err"; do
        kill -0 "$nspawn" 2>/dev/null || cannot_run "the container's systemd did not come up: systemd-nspawn exited"
        # A PID 1 that fails this early exits in a container, or else freezes.
        why=$(grep -m1 -e 'Freezing execution' -e ', freezing' "$work/nspawn.log" | tr -d '\r')
        [ -z "$why" ] || cannot_run "the container's systemd did not come up: '$why'"
        i=$((i + 1))
        if [ $i -gt 600 ]; then
                cat "$work/nsenter.err"
                cannot_run "the container's systemd did not come up in 60 s: no /run/systemd/private inside"
        fi
        sleep 0.1
done
state=$(timeout 60 nsenter -t "$leader" -a systemctl is-system-running --wait 2>&1) || true
case "$state" in
running | degraded) ;;
*)
        # The boot did not finish: ours only if a unit of vmaqd failed or holds it up.
        inside systemctl list-units --failed --plain --no-legend >"$work/failed" 2>&1 || true
        inside systemctl list-jobs --no-legend >"$work/jobs" 2>&1 || true
        cat "$work/failed" "$work/jobs"
        if grep -q vmaqd "$work/failed" "$work/jobs"; then
                fail "system state '$state', with a unit of vmaqd failed or pending"
        fi
        cannot_run "the container did not finish booting (state '$state'), and no unit of vmaqd is failed or pending"
        ;;
esac
echo "ok: container (init pid $leader) up in $(($(date +%s) - start)) s, state $state"

# --- setup -----------------------------------------------------------------
inside systemd-sysusers /usr/lib/sysusers.d/vmaqd.conf || fail "systemd-sysusers"
inside getent group vmaq >/dev/null || fail "no group vmaq after systemd-sysusers"
echo "ok: systemd-sysusers created group vmaq"
inside systemctl daemon-reload || fail "daemon-reload"
inside systemctl start vmaqd.socket || fail "systemctl start vmaqd.socket"
inside test -S /run/vmaqd.sock || fail "no socket /run/vmaqd.sock"
echo "ok: vmaqd.socket started, /run/vmaqd.sock listening"

prop() { inside systemctl show -p "$2" --value "$1"; }
[ "$(prop vmaqd.service ActiveState)" = inactive ] || fail "vmaqd.service is $(prop vmaqd.service ActiveState) before any connection"
echo "ok: vmaqd.service inactive until the first connection"

# Normalize the first executable mapping of PID (inside): expect its file
# offset and path.
query() {
        pid=$1
        # No awk inside: /usr/bin/awk is an alternatives link into the empty /etc.
        inside cat "/proc/$pid/maps" > "$work/maps" || fail "cannot read /proc/$pid/maps inside"
        line=$(awk '$2 ~ /x/ && $6 ~ /^\// { print; exit }' "$work/maps")
        [ -n "$line" ] || fail "no executable file mapping in pid $pid"
        # shellcheck disable=SC2086 # split the maps line
        set -- $line
        lo=$((0x${1%%-*}))
        addr=$(printf '0x%x' $((lo + 0x10)))
        want=$(printf '%s: file offset 0x%x in %s (' "$addr" $((0x$3 + 0x10)) "$6")
        out=$(inside $as_client env LD_LIBRARY_PATH="$libdir" "$vmaqctl" normalize "$pid" "$addr" 2>&1) ||
                fail "vmaqctl normalize $pid $addr${as_client:+ as nobody}: $out"
        case "$out" in
        "$want"*) ;;
        *) fail "vmaqctl normalize $pid $addr: got '$out', expected '$want...'" ;;
        esac
        echo "ok: pid $pid: $out"
}

as_client=""
query 1
[ "$(prop vmaqd.service ActiveState)" = active ] || fail "vmaqd.service is $(prop vmaqd.service ActiveState) after a query"
echo "ok: the query activated vmaqd.service"
jpid=$(prop systemd-journald.service MainPID)
if [ -n "$jpid" ] && [ "$jpid" != 0 ]; then
        query "$jpid"
fi

# --- an unprivileged client: the access check works inside the sandbox -------
as_client="setpriv --reuid=65534 --regid=65534 --clear-groups"
npid=$(inside $as_client sh -c 'sleep 120 </dev/null >/dev/null 2>&1 & echo $!') || fail "cannot start a process as nobody"
query "$npid"
out=$(inside $as_client env LD_LIBRARY_PATH="$libdir" "$vmaqctl" normalize 1 0x1000 2>&1) &&
        fail "nobody was answered about pid 1: $out"
case "$out" in
*"permission denied"*) echo "ok: nobody is refused pid 1: $out" ;;
*) fail "nobody asking about pid 1: got '$out', expected a permission error" ;;
esac
inside kill "$npid" 2>/dev/null || true
as_client=""

# --- what the service runs with --------------------------------------------
main=$(prop vmaqd.service MainPID)
case "$main" in "" | 0) fail "vmaqd.service has no main pid" ;; esac
inside cat "/proc/$main/status" > "$work/status" || fail "cannot read /proc/$main/status"
field() { sed -n "s/^$1:[[:space:]]*//p" "$work/status"; }
# CAP_SYS_PTRACE (19), CAP_CHECKPOINT_RESTORE (40), CAP_DAC_READ_SEARCH (2)
bnd=$(inside sed -n 's/^CapBnd:[[:space:]]*//p' /proc/1/status)
[ $(((0x$bnd >> 40) & 1)) -eq 1 ] || fail "the container's bounding set $bnd lacks CAP_CHECKPOINT_RESTORE"
caps=$(field CapEff)
[ $((0x$caps)) -eq $(((1 << 19) | (1 << 40) | (1 << 2))) ] || fail "CapEff $caps, expected 0000010000080004"
echo "ok: CapEff $caps = CAP_SYS_PTRACE CAP_CHECKPOINT_RESTORE CAP_DAC_READ_SEARCH"
[ "$(field NoNewPrivs)" = 1 ] || fail "NoNewPrivs $(field NoNewPrivs)"
echo "ok: NoNewPrivs 1"
[ "$(field Seccomp)" = 2 ] || fail "Seccomp $(field Seccomp), expected 2 (filter)"
echo "ok: Seccomp 2 (filter)"
# shellcheck disable=SC2046 # the four uids
set -- $(field Uid)
[ $# -eq 4 ] || fail "cannot parse Uid: $*"
for u in "$@"; do
        [ "$u" -ne 0 ] || fail "vmaqd runs with uid 0 (Uid: $*)"
done
echo "ok: vmaqd runs as uid $1 (DynamicUser), not root"

# --- stop, re-activation -----------------------------------------------------
# (2>: it warns that the socket can still activate it; that is the point.)
inside systemctl stop vmaqd.service 2>"$work/stop.err" || { cat "$work/stop.err"; fail "systemctl stop vmaqd.service"; }
[ "$(prop vmaqd.service ActiveState)" = inactive ] || fail "vmaqd.service is $(prop vmaqd.service ActiveState) after stop"
[ "$(prop vmaqd.service Result)" = success ] || fail "Result=$(prop vmaqd.service Result) after stop"
[ "$(prop vmaqd.service ExecMainStatus)" = 0 ] || fail "ExecMainStatus=$(prop vmaqd.service ExecMainStatus) after stop"
echo "ok: systemctl stop: inactive, Result=success, ExecMainStatus=0"
[ "$(prop vmaqd.socket ActiveState)" = active ] || fail "vmaqd.socket is $(prop vmaqd.socket ActiveState) after the service stopped"
query 1
[ "$(prop vmaqd.service ActiveState)" = active ] || fail "vmaqd.service not re-activated"
main2=$(prop vmaqd.service MainPID)
[ "$main2" != "$main" ] || fail "same main pid $main after the restart"
echo "ok: the socket re-activated vmaqd.service (main pid $main -> $main2)"

# --- negative control: no READY, no start ---------------------------------------
# (2>: it warns that the socket can still activate it; that is the point.)
inside systemctl stop vmaqd.service 2>"$work/stop.err" || { cat "$work/stop.err"; fail "systemctl stop vmaqd.service"; }
inside mkdir -p /run/systemd/system/vmaqd.service.d
inside sh -c 'cat > /run/systemd/system/vmaqd.service.d/never-ready.conf' <<EOF
[Service]
ExecStart=
ExecStart=/bin/sleep infinity
TimeoutStartSec=3
Restart=no
EOF
inside systemctl daemon-reload || fail "daemon-reload"
if inside systemctl start vmaqd.service 2>/dev/null; then
        fail "systemctl start succeeded although the service never sends READY"
fi
result=$(prop vmaqd.service Result)
[ "$result" = timeout ] || fail "Result=$result, expected timeout"
[ "$(prop vmaqd.service ActiveState)" = failed ] || fail "vmaqd.service is $(prop vmaqd.service ActiveState), expected failed"
echo "ok: a vmaqd that never sends READY fails its start (Result=timeout)"

echo "PASS in $(($(date +%s) - start)) s"
