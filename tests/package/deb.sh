#!/usr/bin/env bash
# package-deb: build the Debian packages (tools/package, lintian clean) and use them as on
# a machine that runs systemd. A scratch root made here boots systemd (PID 1 of new PID
# and mount namespaces, chrooted in the root), and dpkg installs the packages into it, so
# their maintainer scripts enable and start ratelimit.service there. Then, from the root:
# ratelimitctl --version, the man pages, a reboot (systemd-tmpfiles makes /run/ratelimit,
# ratelimit.service makes the table with the config's group and mode), no squatting by
# another user, systemctl reload, the Python package acquiring from that table on the
# installed library, curl limited by the shim from its installed path against a loopback
# server, the package's upgrade within a layout version and across one (ratelimit.conf(5),
# UPGRADES), and removal. Needs root, chroot and namespaces; skipped (77) otherwise.
# Usage: deb.sh SOURCE_DIR
set -euo pipefail
src=$(realpath "$1")
[ "$(id -u)" -eq 0 ] || { echo "skipped: needs root"; exit 77; }
for p in dpkg-buildpackage lintian chroot curl python3 man unshare nsenter setpriv perl \
         /usr/bin/python3 /lib/systemd/systemd /usr/bin/deb-systemd-helper; do
    command -v "$p" >/dev/null || { echo "skipped: $p is missing"; exit 77; }
done
unshare --pid --fork --mount true 2>/dev/null || { echo "skipped: cannot make PID and mount namespaces"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ratelimit-deb.XXXXXX")
server="" ns="" init=""
shutdown() { # stop the root's systemd: killing a PID namespace's init kills all in it
    [ -z "$init" ] || kill -KILL "$init" 2>/dev/null || true
    [ -z "$ns" ] || wait "$ns" 2>/dev/null || true
    ns="" init=""
}
cleanup() {
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    [ -z "$server" ] || wait "$server" 2>/dev/null || true
    shutdown
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
fail() { echo "FAIL: $*" >&2; exit 1; }
R=$tmp/root
out=$tmp/out err=$tmp/err

# 1. Build, lintian clean (tools/package fails on a lintian error or warning).
"$src/tools/package" "$tmp/debs" >"$tmp/package.log" 2>&1 || { cat "$tmp/package.log"; fail "tools/package"; }
grep -E '^[EW]: ' "$tmp/debs/lintian.txt" && fail "lintian errors or warnings"
debs=("$tmp"/debs/libratelimit0_*.deb "$tmp"/debs/libratelimit-dev_*.deb "$tmp"/debs/ratelimit_*.deb
      "$tmp"/debs/python3-ratelimit_*.deb)

# 2. A scratch root: merged /usr, dpkg's database with this host's packages marked
# installed (so the packages' dependencies are met), and copied from this host with the
# libraries they load: a shell, curl, env, dpkg, systemd (systemctl, systemd-tmpfiles, the
# targets, systemd-tmpfiles-setup.service), perl-base and init-system-helpers (the
# maintainer scripts' deb-systemd-helper and deb-systemd-invoke), and the Python
# interpreter python3-ratelimit was built for, with its standard library and py3compile
# and py3clean (the maintainer scripts'), but none of this host's Python packages.
mkdir -p "$R"/usr/{bin,sbin,lib,lib64,share} "$R"/{etc,dev,tmp,run,var/log,proc,sys} \
    "$R"/var/lib/dpkg/{info,updates,triggers}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$R/$d"; done
cp /var/lib/dpkg/status "$R/var/lib/dpkg/status"
touch "$R/var/lib/dpkg/available"
mknod -m 666 "$R/dev/null" c 1 3
chmod 1777 "$R/tmp"
copy_with_libs() { # copy_with_libs FILE...: each file and the shared libraries it loads
    local f
    for f in "$@" $(ldd "$@" 2>/dev/null | grep -oE '/[^ :]+' | sort -u); do
        mkdir -p "$R$(dirname "$f")"
        cp -L "$f" "$R$f"
    done
}
copy_package() { # copy_package PACKAGE...: the files of this host's packages
    local f
    dpkg -L "$@" | while read -r f; do
        [ -f "$f" ] && [ ! -L "$f" ] || continue
        mkdir -p "$R$(dirname "$f")"
        cp "$f" "$R$f"
    done
}
copy_with_libs /bin/dash /usr/bin/curl /usr/bin/env /usr/bin/dpkg /usr/bin/dpkg-query \
    /usr/lib/x86_64-linux-gnu/libbsd.so.0 /lib/systemd/systemd /bin/systemctl \
    /bin/systemd-tmpfiles /usr/lib/x86_64-linux-gnu/systemd/libsystemd-core-*.so
ln -s dash "$R/bin/sh"
copy_package perl-base init-system-helpers
mkdir -p "$R/lib/systemd/system"
cp -a /lib/systemd/system/*.target /lib/systemd/system/systemd-tmpfiles-setup.service \
    "$R/lib/systemd/system/"
mkdir "$R/lib/systemd/system/sysinit.target.wants"
ln -s ../systemd-tmpfiles-setup.service "$R/lib/systemd/system/sysinit.target.wants/"
ln -sf multi-user.target "$R/lib/systemd/system/default.target"
: >"$R/etc/machine-id"
python=$(realpath /usr/bin/python3)
pystd=/usr/lib/$(basename "$python")
cp -a "$pystd" "$R$pystd"
copy_with_libs "$python" "$pystd"/lib-dynload/*.so
ln -s "$(basename "$python")" "$R/usr/bin/python3"
cp /usr/bin/py3compile /usr/bin/py3clean "$R/usr/bin/"
cp -a /usr/share/python3 "$R/usr/share/python3"

# 3. Boot the root: systemd is PID 1 of new PID and mount namespaces, chrooted in the root
# (bind-mounted on itself: the units' sandboxing needs the root to be a mount point). It
# mounts /proc, /sys, /dev and a fresh /run there. If this test dies, so does unshare
# (--pdeathsig) and with it systemd (--kill-child). Its boot is waited for at most 60 s.
# Then in_root runs a command in the root as it is for systemd, and $run is the root's /run
# as this host sees it.
boot() {
    env -i container=ratelimit-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        setpriv --pdeathsig KILL unshare --pid --fork --kill-child=SIGKILL --mount --propagation private \
        sh -c 'mount --bind "$1" "$1" && exec chroot "$1" /lib/systemd/systemd --system --log-target=null' \
        sh "$R" </dev/null >"$tmp/systemd.log" 2>&1 &
    ns=$!
    local state="" i
    for i in $(seq 600); do
        [ -n "$init" ] || init=$(pgrep -P "$ns") || true
        if [ -n "$init" ] && [ "$(cat "/proc/$init/comm" 2>/dev/null)" = systemd ]; then
            state=$(in_root /bin/systemctl is-system-running 2>/dev/null) || true
            case $state in running | degraded) break ;; esac
        fi
        kill -0 "$ns" 2>/dev/null || { cat "$tmp/systemd.log"; fail "systemd exited"; }
        sleep 0.1
    done
    case $state in running | degraded) ;; *) cat "$tmp/systemd.log"; fail "systemd did not boot: '$state' ($i)" ;; esac
    run=/proc/$init/root/run
}
in_root() { nsenter -t "$init" -m -p chroot "$R" "$@"; }
as_nobody() { nsenter -t "$init" -m -p chroot --userspec=65534:65534 "$R" "$@"; }
in_dpkg() { nsenter -t "$init" -m -p dpkg --root="$R" --log=/dev/null "$@"; }
unit_state() { # unit_state UNIT: "enabled-state active-state"
    echo "$(in_root /bin/systemctl is-enabled "$1" 2>/dev/null) $(in_root /bin/systemctl is-active "$1" 2>/dev/null)"
}
boot

# 4. Install, as apt does on a machine running systemd: the maintainer scripts run in the
# root and make /run/ratelimit (tmpfiles), enable ratelimit.service and start it, which
# makes the table from the shipped config; ratelimit-agent.service is installed only.
in_dpkg -i "${debs[@]}" >"$out" 2>"$err" || { cat "$out" "$err"; fail "dpkg -i"; }
dpkg --root="$R" -s ratelimit 2>/dev/null | grep -q '^Status: install ok installed' || fail "ratelimit not installed"
for f in /usr/bin/ratelimitctl /usr/lib/x86_64-linux-gnu/libratelimit.so.0 \
         /usr/lib/x86_64-linux-gnu/ratelimit/libratelimit-preload.so \
         /usr/include/ratelimit.h /usr/include/ratelimit-version.h \
         /usr/lib/x86_64-linux-gnu/pkgconfig/ratelimit.pc /lib/systemd/system/ratelimit.service \
         /usr/lib/tmpfiles.d/ratelimit.conf /etc/ratelimit.conf \
         /usr/share/man/man1/ratelimitctl.1.gz /usr/share/man/man5/ratelimit.conf.5.gz \
         /usr/share/man/man3/libratelimit.3.gz /usr/share/man/man3/rl_acquire.3.gz \
         /usr/share/man/man3/rl_try_acquire.3.gz /usr/lib/python3/dist-packages/ratelimit/__init__.py \
         /usr/lib/python3/dist-packages/ratelimit/requests.py \
         /usr/lib/python3/dist-packages/ratelimit/httpx.py; do
    [ -e "$R$f" ] || fail "not installed: $f"
done
ls "$R"/usr/lib/python3/dist-packages/ratelimit/__pycache__/__init__.cpython-*.pyc >/dev/null ||
    fail "python3-ratelimit: not byte-compiled by its postinst"
grep -q '^#define RL_TABLE_DEFAULT_PATH "/run/ratelimit/table"$' "$R/usr/include/ratelimit-version.h" ||
    fail "installed header: default path"
[ "$(unit_state ratelimit.service)" = "enabled active" ] || fail "ratelimit.service: $(unit_state ratelimit.service)"
[ "$(unit_state ratelimit-agent.service)" = "disabled inactive" ] ||
    fail "ratelimit-agent.service: $(unit_state ratelimit-agent.service)"
[ "$(stat -c '%U:%G %a %F' "$run/ratelimit")" = "root:root 755 directory" ] ||
    fail "/run/ratelimit: $(stat -c '%U:%G %a %F' "$run/ratelimit")"
[ "$(stat -c '%U:%G %a' "$run/ratelimit/table")" = "root:root 600" ] ||
    fail "the shipped config's table: $(stat -c '%U:%G %a' "$run/ratelimit/table")"
# The libraries the installed preload shim loads (liburcu-bp): from this host, as the
# package's dependencies would bring them.
dpkg-deb -f "${debs[2]}" Depends | grep -q 'liburcu8' || fail "ratelimit does not depend on liburcu8"
for f in $(ldd "$R/usr/lib/x86_64-linux-gnu/ratelimit/libratelimit-preload.so" | grep -oE '/[^ :]+'); do
    [ -e "$R$f" ] || { mkdir -p "$R$(dirname "$f")" && cp -L "$f" "$R$f"; }
done

# 5. The installed tool runs, on the installed library.
in_root /usr/bin/ratelimitctl --version >"$out"
version=$(sed -n 's/^Version: //p' < <(dpkg-deb -f "${debs[2]}"))
layout=$(sed -n 's/^#define RL_LAYOUT_VERSION \([0-9]*\)$/\1/p' "$src/src/shm_format.h")
diff -u - "$out" <<EOT || fail "ratelimitctl --version"
ratelimitctl $version
libratelimit $version, table layout version $layout
default table /run/ratelimit/table
EOT

# 6. The man pages render from the installed files: each page man finds by name there, and
# every page of the packages with man -l, with no warning from groff.
man_dir=$R/usr/share/man
for page in 1:ratelimitctl 5:ratelimit.conf 3:libratelimit 1:ratelimit-agent 3:rl_acquire; do
    sec=${page%%:*} name=${page#*:}
    f=$(LC_ALL=C.UTF-8 man -M "$man_dir" -w "$sec" "$name") || fail "man $sec $name: not found"
    [ "$f" = "$man_dir/man$sec/$name.$sec.gz" ] || fail "man $sec $name: found $f"
done
pages=0
for f in $(dpkg --root="$R" -L ratelimit libratelimit-dev 2>/dev/null | grep '^/usr/share/man/man[0-9]/.*\.gz$'); do
    LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$R$f" >"$out" 2>"$err" || { cat "$err"; fail "man -l $f"; }
    [ ! -s "$err" ] || { cat "$err"; fail "man -l $f: warnings"; }
    grep -q '^NAME$' "$out" && grep -q '^SYNOPSIS$' "$out" || fail "man -l $f: no NAME or SYNOPSIS"
    pages=$((pages + 1))
done
[ "$pages" -ge 20 ] || fail "only $pages man pages installed"

# 7. A config with a group and a route to a loopback server, then a reboot: the table is
# made at boot, in the directory tmpfiles makes, with the config's group and mode.
unit=$R/lib/systemd/system/ratelimit.service
if command -v systemd-analyze >/dev/null; then
    # On this host, with the commands' paths pointing into the root (the man pages named
    # by Documentation= are not installed on the host).
    mkdir "$tmp/unit"
    sed "s|^\(Exec[A-Za-z]*=\)/|\1$R/|" "$unit" >"$tmp/unit/ratelimit.service"
    systemd-analyze verify --man=no "$tmp/unit/ratelimit.service" >"$out" 2>&1 ||
        { cat "$out"; fail "systemd-analyze verify"; }
    [ ! -s "$out" ] || { cat "$out"; fail "systemd-analyze verify: warnings"; }
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$R/etc/ratelimit.conf" <<EOT
mode 0660
group 65534
capacity 16
bucket local 2/1h
bucket py 2/1h
route 127.0.0.1:$port local wait 0s on-timeout fail
EOT
shutdown
boot
[ "$(unit_state ratelimit.service)" = "enabled active" ] || fail "after a reboot: ratelimit.service: $(unit_state ratelimit.service)"
[ "$(stat -c '%U:%G %a %F' "$run/ratelimit")" = "root:root 755 directory" ] ||
    fail "after a reboot: /run/ratelimit: $(stat -c '%U:%G %a %F' "$run/ratelimit")"
[ "$(stat -c '%U:%g %a' "$run/ratelimit/table")" = "root:65534 660" ] ||
    fail "after a reboot: table: $(stat -c '%U:%g %a' "$run/ratelimit/table")"

# 8. No squatting: another user cannot create a table in /run/ratelimit, and uses root's.
rc=0
as_nobody /usr/bin/ratelimitctl --table /run/ratelimit/other define x 1/s >"$out" 2>"$err" || rc=$?
[ "$rc" -eq 4 ] && grep -q '^ratelimitctl: define: cannot create /run/ratelimit/other.*: Permission denied$' "$err" ||
    { cat "$err"; fail "nobody: define in /run/ratelimit: exit $rc"; }
[ ! -e "$run/ratelimit/other" ] || fail "/run/ratelimit/other exists"
as_nobody /usr/bin/ratelimitctl list >"$out" || fail "nobody: list"
grep -Eq '^local +2/1h +0/2 ' "$out" || { cat "$out"; fail "nobody: list"; }

# 9. systemctl reload applies the changed file; a file with an error is refused by the
# unit's check-config before anything is applied.
sed -i 's|^bucket local 2/1h$|bucket local 3/1h|; s|^bucket py 2/1h$|bucket py 2/1h\nbucket bad 1/nonsense|' \
    "$R/etc/ratelimit.conf"
! in_root /bin/systemctl reload ratelimit.service 2>"$err" || fail "reload of a bad config succeeded"
in_root /usr/bin/ratelimitctl list >"$out"
grep -Eq '^local +2/1h ' "$out" && ! grep -q '^bad ' "$out" || { cat "$out"; fail "a bad config was applied"; }
sed -i '/^bucket bad /d' "$R/etc/ratelimit.conf"
in_root /bin/systemctl reload ratelimit.service || fail "systemctl reload"
in_root /usr/bin/ratelimitctl list >"$out"
grep -Eq '^local +3/1h +0/3 ' "$out" || { cat "$out"; fail "reload: local"; }

# 10. The Python package, as the group's user, with no environment from this test: it is
# the installed one (ratelimit.__file__), its extension has no RUNPATH and ld.so finds
# libratelimit.so.0 of libratelimit0 for it (the root holds no other), and it acquires from
# the table the unit made, found by the installed library's default path.
pydir=/usr/lib/python3/dist-packages/ratelimit
core=$(cd "$R$pydir" && echo _core.*.so)
[ -f "$R$pydir/$core" ] || fail "python3-ratelimit: no extension module in $pydir"
! readelf -d "$R$pydir/$core" | grep -E 'RPATH|RUNPATH' || fail "$core has a RUNPATH"
in_root /lib64/ld-linux-x86-64.so.2 --list "$pydir/$core" >"$out" || { cat "$out"; fail "ld.so --list $core"; }
lib=$(sed -n 's/^[[:space:]]*libratelimit\.so\.0 => \([^ ]*\) .*/\1/p' "$out")
[ -n "$lib" ] || { cat "$out"; fail "$core: libratelimit.so.0 not found"; }
lib=$(realpath "$R$lib")
dpkg --root="$R" -S "${lib#"$R"}" 2>/dev/null | grep -q '^libratelimit0:' || fail "$core loads ${lib#"$R"}, not libratelimit0's"
as_nobody /usr/bin/env -i /usr/bin/python3 - "${version%%-*}" "$pydir" >"$out" 2>"$err" <<'PY' ||
import sys
import ratelimit
import ratelimit._core

version, pydir = sys.argv[1:]
assert ratelimit.__file__ == pydir + "/__init__.py", ratelimit.__file__
assert ratelimit._core.__file__.startswith(pydir + "/_core."), ratelimit._core.__file__
assert ratelimit.library_version() == version, ratelimit.library_version()
with ratelimit.Table(create=False) as table:
    assert table.path == "/run/ratelimit/table", table.path
    bucket = table.bucket("py")
    for _ in range(2):
        assert bucket.acquire(timeout=0).admitted
    try:
        bucket.acquire(timeout=0)
    except ratelimit.Timeout:
        pass
    else:
        raise AssertionError("the third acquire of 2/1h was admitted")
print("ok")
PY
    { cat "$out" "$err"; fail "python3: import ratelimit and acquire, in the root"; }
[ "$(cat "$out")" = ok ] || { cat "$out" "$err"; fail "python3: output"; }
in_root /usr/bin/ratelimitctl show --json py >"$out"
python3 - "$out" <<'PY' || fail "show py: counters"
import json, sys
c = json.load(open(sys.argv[1]))["bucket"]["counters"]
assert (c["admitted"], c["rejected"]) == (2, 1), c
PY

# 11. curl under the shim, from the installed files, as the group's user: 3 connections
# pass, the 4th fails at once with ETIMEDOUT (wait 0s, on-timeout fail; curl: exit 28) and
# the server never sees it.
(cd "$tmp" && exec python3 -m http.server --bind 127.0.0.1 "$port" >"$tmp/server.log" 2>&1) &
server=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$port/" || fail "the loopback server did not start"
for i in 1 2 3 4; do
    rc=0
    as_nobody /usr/bin/ratelimitctl exec --config /etc/ratelimit.conf -- \
        /usr/bin/curl -s -o /dev/null "http://127.0.0.1:$port/$i" 2>"$err" || rc=$?
    if [ "$i" -le 3 ]; then
        [ "$rc" -eq 0 ] || { cat "$err"; fail "curl $i: exit $rc"; }
    else
        [ "$rc" -eq 28 ] || { cat "$err"; fail "curl $i: exit $rc, expected 28 (connect: ETIMEDOUT from the shim)"; }
    fi
done
kill "$server"
wait "$server" 2>/dev/null || true
server=""
grep -q 'GET /3 ' "$tmp/server.log" || fail "the server did not see curl 3"
! grep -q 'GET /4 ' "$tmp/server.log" || fail "the server saw curl 4"
in_root /usr/bin/ratelimitctl show --json local >"$out"
python3 - "$out" <<'PY' || fail "show local: counters"
import json, sys
b = json.load(open(sys.argv[1]))
c = b["bucket"]["counters"]
assert (c["admitted"], c["rejected"]) == (3, 1), c
PY

# 12. An upgrade of the package (the same .debs again) restarts ratelimit.service: the
# config, changed without a reload, is applied, and the usage is carried over.
sed -i 's|^bucket local 3/1h$|bucket local 4/1h|' "$R/etc/ratelimit.conf"
in_dpkg -i "${debs[@]}" >"$out" 2>"$err" || { cat "$out" "$err"; fail "upgrade: dpkg -i"; }
[ "$(unit_state ratelimit.service)" = "enabled active" ] || fail "upgrade: ratelimit.service: $(unit_state ratelimit.service)"
in_root /usr/bin/ratelimitctl list >"$out"
grep -Eq '^local +4/1h +3/4 ' "$out" || { cat "$out"; fail "upgrade: the config was not applied"; }

# 13. An upgrade across a layout version (simulated: the table's header says the layout
# before this one). The package's restart of ratelimit.service fails (apply exits 4) and
# leaves the table as it was, dpkg succeeds; removing the table and restarting the service
# makes a new one, with full budgets.
python3 - "$run/ratelimit/table" "$((layout - 1))" <<'PY'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(8)  # shm_header.layout_version, after the 8-byte magic
    f.write(struct.pack("<I", int(sys.argv[2])))
PY
cp "$run/ratelimit/table" "$tmp/old-table"
in_dpkg -i "${debs[@]}" >"$out" 2>"$err" || { cat "$out" "$err"; fail "upgrade to a new layout: dpkg -i"; }
[ "$(unit_state ratelimit.service)" = "enabled failed" ] ||
    fail "upgrade to a new layout: ratelimit.service: $(unit_state ratelimit.service)"
status=$(in_root /bin/systemctl show -P ExecMainStatus ratelimit.service)
[ "$status" = 4 ] || fail "upgrade to a new layout: apply exited $status, expected 4"
cmp -s "$run/ratelimit/table" "$tmp/old-table" || fail "apply changed the old table"
rc=0
in_root /usr/bin/ratelimitctl apply /etc/ratelimit.conf >"$out" 2>"$err" || rc=$?
[ "$rc" -eq 4 ] || fail "apply on an old layout: exit $rc, expected 4"
grep -q "layout version $((layout - 1))" "$err" || { cat "$err"; fail "apply on an old layout: message"; }
rm "$run/ratelimit/table"
in_root /bin/systemctl restart ratelimit.service || fail "systemctl restart after removing the old table"
in_root /usr/bin/ratelimitctl info --json >"$out"
python3 - "$out" "$layout" <<'PY' || fail "info after the upgrade"
import json, sys
i = json.load(open(sys.argv[1]))
assert i["layout_version"] == int(sys.argv[2]), i
PY
in_root /usr/bin/ratelimitctl list >"$out"
grep -Eq '^local +4/1h +0/4 ' "$out" || { cat "$out"; fail "list after the upgrade"; }

# 14. Removal stops the service and leaves no file of the package behind, and systemd no
# longer knows the unit; the conffile and the unit's enabled state stay until a purge.
in_dpkg -r python3-ratelimit ratelimit libratelimit-dev libratelimit0 >"$out" 2>"$err" ||
    { cat "$out" "$err"; fail "dpkg -r"; }
[ ! -e "$R/usr/bin/ratelimitctl" ] || fail "ratelimitctl left after removal"
[ ! -e "$R$pydir" ] || fail "$pydir left after removal"
[ "$(in_root /bin/systemctl show -P LoadState ratelimit.service)" = not-found ] || fail "ratelimit.service still loaded"
[ -e "$R/etc/ratelimit.conf" ] || fail "removal deleted the conffile"
in_dpkg -P ratelimit >"$out" 2>"$err" || { cat "$out" "$err"; fail "dpkg -P"; }
[ ! -e "$R/etc/ratelimit.conf" ] || fail "/etc/ratelimit.conf left after purge"
[ ! -L "$R/etc/systemd/system/multi-user.target.wants/ratelimit.service" ] || fail "ratelimit.service still enabled after purge"
echo "ok"
