#!/usr/bin/env bash
# ctl-footprint: check-config and apply --dry-run report what a config costs in a table;
# apply refuses a config its table's file system cannot hold, before writing anything;
# --dry-run copies the table sparsely. The file-system parts need root (a private tmpfs in
# a mount namespace of their own); without it they are skipped.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

# By hand: 1024 reader slots of 64 bytes follow the 4096-byte header; capacity 16 gives 32
# index slots (256 bytes), so the records start at 4096 + 65536 + 256 = 69888 and the arena
# at 69888 + 16 x 192 = 72960. Blocks: a 64-byte head line, a 64-byte header and a 64-byte
# rule each, plus 8N for a sliding rule of N, rounded up to 64: a 10/s = 192 + 80 -> 320,
# b 5/s burst 2 = 192, t/* 100/1m = 192 + 800 -> 1024; 1536 in all. The arena: twice the
# blocks and a t/* block for each of the 13 records left, plus 16 MiB, in KiB plus one:
# (2 x (1536 + 13 x 1024) + 16777216) / 1024 + 1 = 16414 KiB = 16807936 bytes; the file
# 72960 + 16807936 = 16880896. Apply writes 69888 + 3 x 192 + 1536 = 72000 bytes; a tenant
# of t/* takes a record and a block, 192 + 1024 = 1216, and 13 fit: 15808 bytes.
conf=$work/fp.conf
printf 'capacity 16\nbucket a 10/s\nbucket b 5/s burst 2\ntemplate t/* 100/1m\n' >"$conf"
want="$conf: footprint: table file 16880896 bytes (16.1 MiB, sparse); apply writes 72000 bytes,"
want+=" 1536 of them policy blocks; each tenant of t/* 1216 bytes, room for 13 (15808 bytes)"
run 0 check-config "$conf"
[ "$(sed -n 2p "$out")" = "$want" ] || fail "check-config's footprint line"
run 0 apply --dry-run "$conf"
[ "$(tail -n1 "$out")" = "dry run: $want" ] || fail "apply --dry-run's footprint line"
[ ! -e "$RATELIMIT_TABLE" ] || fail "apply --dry-run created the table"
printf 'bucket a 10/s\n' >"$work/plain.conf"
run 0 check-config "$work/plain.conf"
has 'policy blocks$' # no template: no tenant part

if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null; then
    echo "skipping the file-system checks: they need root and mount namespaces" >&2
    exit 0
fi

# A private tmpfs of 1 MiB: a new table whose buckets take 2 MiB is refused and not made;
# an existing one that would grow past the room is refused and keeps its buckets.
small=$work/small
mkdir "$small"
printf 'table %s/t\nbucket big1 131072/1h\nbucket big2 131072/1h\n' "$small" >"$work/big.conf"
printf 'table %s/t\nbucket tiny 5/1s\n' "$small" >"$work/tiny.conf"
printf 'table %s/t\nbucket tiny 5/1s\nbucket big1 131072/1h\n' "$small" >"$work/grow.conf"
unshare -m --propagation private bash -euc '
    ctl=$1 small=$2 work=$3
    mount -t tmpfs -o size=1m tmpfs "$small"
    trap "umount \"$small\"" EXIT
    rc=0
    "$ctl" apply "$work/big.conf" >"$work/o1" 2>"$work/e1" || rc=$?
    [ $rc -eq 4 ] || { echo "a new table too large: exit $rc" >&2; cat "$work/e1" >&2; exit 1; }
    grep -Eq "the config needs [0-9]+ bytes in $small, only [0-9]+ are free" "$work/e1" ||
        { cat "$work/e1" >&2; exit 1; }
    [ ! -e "$small/t" ] || { echo "the refused table was created" >&2; exit 1; }
    "$ctl" apply "$work/tiny.conf" >/dev/null
    rc=0
    "$ctl" apply "$work/grow.conf" >"$work/o2" 2>"$work/e2" || rc=$?
    [ $rc -eq 4 ] || { echo "growing past the room: exit $rc" >&2; cat "$work/e2" >&2; exit 1; }
    grep -Eq "the file system is full: the config needs up to [0-9]+ more bytes, only [0-9]+ are free" \
        "$work/e2" || { cat "$work/e2" >&2; exit 1; }
    [ ! -s "$work/o2" ] || { echo "a refused apply reported actions" >&2; exit 1; }
    "$ctl" --table "$small/t" info --json >"$work/info"
    grep -q "\"buckets\":1," "$work/info" || { cat "$work/info" >&2; exit 1; }
' _ "$CTL" "$small" "$work" || fail "apply checks the file system's room"

# A table of ~416 MiB (sparse) using ~1 MiB: --dry-run's copy, in an 8 MiB TMPDIR, fits
# only if it copies the data alone.
printf 'table %s\ncapacity 200\ntemplate t/* 131072/1h\n' "$RATELIMIT_TABLE" >"$work/sparse.conf"
run 0 apply "$work/sparse.conf"
[ "$(stat -c %s "$RATELIMIT_TABLE")" -gt $((400 << 20)) ] || fail "the table is not large"
tmp=$work/tmp
mkdir "$tmp"
unshare -m --propagation private bash -euc '
    ctl=$1 tmp=$2 conf=$3
    mount -t tmpfs -o size=8m tmpfs "$tmp"
    trap "umount \"$tmp\"" EXIT
    TMPDIR=$tmp "$ctl" apply --dry-run "$conf"
' _ "$CTL" "$tmp" "$work/sparse.conf" >"$out" 2>"$err" || fail "--dry-run copies sparsely"
has '^dry run: unchanged: all of it'
