#!/usr/bin/env python3
"""churn.py - the agent follows buckets that come and go: a deleted bucket frees its place.

The agent tracks at most 1024 global buckets. A config of 1024 of them is applied, the agent
tracks them all; then a config with only a new one is applied with --prune (the 1024 are
deleted). The agent must serve the new bucket: its status file lists it. Redis is an address
where nothing listens (the status file lists tracked buckets whether or not Redis answers).
Usage: churn.py AGENT CTL
"""
import os
import subprocess
import sys
import tempfile
import time

AGENT, CTL = sys.argv[1:3]
TRACKED = 1024
TMP = tempfile.mkdtemp(prefix="rl-global-churn-")
TABLE = "/dev/shm/rl-test-%d-gchurn" % os.getpid()
STATUS = os.path.join(TMP, "status")


def apply(name, names, *flags):
    conf = os.path.join(TMP, name)
    with open(conf, "w") as f:
        f.write("table %s\ncapacity %d\n" % (TABLE, 2 * TRACKED + 64))
        for n in names:
            f.write("bucket %s 100/1h global\n" % n)
    subprocess.run([CTL, "apply", *flags, conf], check=True, stdout=subprocess.DEVNULL)


def listed():
    """The buckets the agent's status file lists."""
    try:
        with open(STATUS) as f:
            return {l.split()[1] for l in f if l.startswith("bucket ")}
    except FileNotFoundError:
        return set()


def wait_for(check, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # bounded
        if check():
            return True
        time.sleep(0.05)
    return False


first = ["old/%d" % i for i in range(TRACKED)]
apply("first.conf", first)
agent = subprocess.Popen([AGENT, "--table", TABLE, "--redis", "redis://127.0.0.1:1/0",
                          "--timeout", "50", "--status", STATUS, "--host", "h1"],
                         stderr=subprocess.DEVNULL)
problem = None
try:
    if not wait_for(lambda: len(listed()) == TRACKED, 30):
        problem = "the agent tracks %d of the %d buckets" % (len(listed()), TRACKED)
    else:
        apply("second.conf", ["late"], "--prune")
        if not wait_for(lambda: listed() == {"late"}, 30):
            problem = "after the deletes the agent lists %s, not the new bucket" % (
                sorted(listed())[:5],)
finally:
    agent.kill()
    agent.wait()
    for path in (TABLE, TABLE + ".agent.lock", STATUS, STATUS + ".tmp"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    for name in os.listdir(TMP):
        os.unlink(os.path.join(TMP, name))
    os.rmdir(TMP)
if problem:
    print("FAIL:", problem)
    sys.exit(1)
print("PASS")
