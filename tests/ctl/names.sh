#!/usr/bin/env bash
# ctl-names: a table written by another user can hold anything where a bucket name belongs.
# Every output must show such a name visibly (\xHH in text and Prometheus, \u00XX in JSON)
# and never pass a control byte to the terminal; the commands that read names say so.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

# Two buckets; then the parent's name, in place in the file, becomes escapes of the same
# length: set the window title, ring, clear the screen, return to the line start to fake
# text, and a C1 CSI (0x9b) for terminals that take 8-bit controls.
plain=parentAAAAAAAAAAAAAAAAAAAAA
run 0 define "$plain" 10/1m
run 0 define kid 5/1m parent "$plain"
# The index (src/shm_format.h, src/index.c) gets a slot for the new name, as a writer who
# knows the format would add: the old slot stays, it names no bucket any more.
python3 - "$RATELIMIT_TABLE" "$plain" <<'PY'
import struct, sys
path, plain = sys.argv[1], sys.argv[2].encode()
evil = b"\x1b]0;pwn\x07\x1b[2J\rFAKE \x9b\x7f\\x"
evil = evil + b"A" * (len(plain) - len(evil))
assert len(evil) == len(plain)

def name_hash(name):  # rl__name_hash: FNV-1a, then a final mix
    m = (1 << 64) - 1
    h = 0xcbf29ce484222325
    for b in name:
        h = ((h ^ b) * 0x100000001b3) & m
    h ^= h >> 33
    h = (h * 0xff51afd7ed558ccd) & m
    return h ^ (h >> 33)

with open(path, "r+b") as f:
    data = f.read()
    _, _, _, cap, slots, bucket_bytes, _, index_off, buckets_off = struct.unpack_from(
        "<QIIIIIIQQ", data, 0)
    assert data.count(plain + b"\0") == 1, "the name is not once in the file"
    at = data.index(plain + b"\0")
    no = (at - buckets_off) // bucket_bytes
    f.seek(at)
    f.write(evil)
    h = name_hash(evil)
    for i in range(slots):
        off = index_off + 8 * ((h + i) % slots)
        if struct.unpack_from("<Q", data, off)[0] == 0:
            f.seek(off)
            f.write(struct.pack("<Q", (h >> 32) << 32 | (no + 1)))
            break
    else:
        raise SystemExit("no free index slot")
PY

# no_raw_bytes WHAT: $out and $err hold no byte but printable ASCII and newlines.
no_raw_bytes() {
    python3 - "$out" "$err" <<'PY' || fail "$1: raw control or non-ASCII bytes in its output"
import sys
for name in sys.argv[1:]:
    with open(name, "rb") as f:
        bad = [b for b in f.read() if not (0x20 <= b < 0x7f or b == 0x0a)]
    assert not bad, (name, bad)
PY
}
visible='\\x1b\]0;pwn\\x07\\x1b\[2J\\x0dFAKE \\x9b\\x7f\\\\x'

# Human output: the name shown escaped; the commands that read it report it (exit 4).
run 4 list
no_raw_bytes list
has "^${visible}A+ +10/1m "
has "invalid name: bucket name '${visible}A+' has '\\\\x1b' at 1" "$err"
run 4 show kid
no_raw_bytes show
has "^parent ${visible}A+\$"
has "^chain kid -> ${visible}A+\$"
has "invalid name" "$err"
run 4 stats
no_raw_bytes stats
has "^${visible}A+ +0 "
run 0 info
no_raw_bytes info
LC_ALL=C run 0 watch --once # C: the cut names end in '~', not in a UTF-8 ellipsis
no_raw_bytes watch
has '^\\x1b\]0;pwn\\x07'


# JSON: escaped per JSON; decoded, the name is the file's bytes (read as Latin-1).
want='"\x1b]0;pwn\x07\x1b[2J\rFAKE \x9b\x7f\\x"'
for args in "list --json" "show --json kid" "stats --json" "info --json"; do
    # shellcheck disable=SC2086
    run "$([ "$args" = "info --json" ] && echo 0 || echo 4)" $args
    no_raw_bytes "$args"
done
run 4 list --json
check_json "assert any(b['name'].startswith($want) for b in d['buckets'])"
run 4 show --json kid
check_json "assert d['ancestors'][0]['name'].startswith($want)
assert d['bucket']['parent'].startswith($want)"

# Prometheus: the visible form of each byte not printable, its backslash escaped as the
# format wants (a backslash itself is only escaped).
run 4 stats --prometheus
no_raw_bytes 'stats --prometheus'
has '^ratelimit_admitted_total\{bucket="\\\\x1b\]0;pwn\\\\x07\\\\x1b\[2J\\\\x0dFAKE \\\\x9b\\\\x7f\\\\xA+"\} 0$'

# The other bucket is listed as ever.
run 4 list
has '^kid +5/1m '
