#!/usr/bin/env python3
"""redirect.py - addresses the agent does not follow: it must say why, and grant nothing.

A stand-in Redis (a few lines of RESP on loopback, started and stopped here) answers as a
Cluster node that redirects the bucket's keys (MOVED, ASK), as a read-only replica, and as
a Sentinel. For each, ratelimit-agent reads the stand-in's address from the config; demand
comes from `ratelimitctl acquire --nowait`. Checked: the agent's stderr names the reason
(and the node a redirection points to), `ratelimitctl show` reports Redis unreachable with
that reason, and no request was admitted.
Usage: redirect.py AGENT CTL
"""
import os
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

AGENT, CTL = sys.argv[1:3]
TMP = tempfile.mkdtemp(prefix="rl-global-redirect-")
RUN_ID = "0123456789abcdef0123456789abcdef01234567"
CASES = {
    "moved": (b"-MOVED 3999 127.0.0.1:7001\r\n", "does not follow redirections",
              "MOVED 3999 127.0.0.1:7001"),
    "ask": (b"-ASK 3999 127.0.0.1:7002\r\n", "does not follow redirections",
            "ASK 3999 127.0.0.1:7002"),
    "readonly": (b"-READONLY You can't write against a read only replica.\r\n",
                 "read-only replica", "give the master"),
    "sentinel": (None, "is a Redis Sentinel", "give the master's address"),
}


def read_command(f):
    """One RESP array of bulk strings; None at EOF."""
    head = f.readline()
    if not head.startswith(b"*"):
        return None
    args = []
    for _ in range(int(head[1:])):
        n = int(f.readline()[1:])
        args.append(f.read(n + 2)[:-2])
    return args


class Fake(socketserver.StreamRequestHandler):
    def handle(self):
        mode = self.server.mode
        while True:
            args = read_command(self.rfile)
            if args is None:
                return
            cmd = args[0].upper()
            if cmd == b"INFO":
                body = b"# Server\r\nredis_mode:%s\r\nrun_id:%s\r\n" % (
                    b"sentinel" if mode == "sentinel" else b"cluster", RUN_ID.encode())
                self.wfile.write(b"$%d\r\n%s\r\n" % (len(body), body))
            elif cmd == b"SCRIPT":
                self.wfile.write(b"$40\r\n%s\r\n" % (b"f" * 40))
            elif cmd == b"EVALSHA":
                self.wfile.write(CASES[mode][0])
            else:
                self.wfile.write(b"+OK\r\n")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def run(mode):
    srv = Server(("127.0.0.1", 0), Fake)
    srv.mode = mode
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    table = "/dev/shm/rl-test-%d-gredirect-%s" % (os.getpid(), mode)
    conf = os.path.join(TMP, mode + ".conf")
    with open(conf, "w") as f:
        f.write("table %s\nbucket foundry 100/2s global redis://127.0.0.1:%d/0\n" %
                (table, srv.server_address[1]))
    subprocess.run([CTL, "apply", conf], check=True, stdout=subprocess.DEVNULL)
    err = open(os.path.join(TMP, mode + ".err"), "w+")
    agent = subprocess.Popen([AGENT, "--config", conf, "--host", "h1"], stderr=err)
    admitted, said, show = 0, "", ""
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # bounded: 10 s at most
            r = subprocess.run([CTL, "--table", table, "acquire", "foundry", "--nowait"],
                               capture_output=True)
            admitted += r.returncode == 0
            err.seek(0)
            said = err.read()
            if CASES[mode][1] in said:
                time.sleep(0.6)  # the status file is written every few polls
                show = subprocess.run([CTL, "--table", table, "show", "foundry"],
                                      capture_output=True, text=True).stdout
                if "unreachable" in show:
                    break
            time.sleep(0.02)
    finally:
        agent.kill()
        agent.wait()
        srv.shutdown()
        srv.server_close()
        err.close()
        for suffix in ("", ".agent", ".agent.lock"):
            try:
                os.unlink(table + suffix)
            except FileNotFoundError:
                pass
    line = [l for l in said.splitlines() if CASES[mode][1] in l]
    print("%s: %s" % (mode, line[0] if line else said))
    if not line or CASES[mode][2] not in line[0]:
        return "the agent did not say why (%s): %s" % (mode, said)
    if "unreachable" not in show or CASES[mode][1] not in show:
        return "show does not report it (%s): %s" % (mode, show)
    if admitted:
        return "%d requests admitted without a grant (%s)" % (admitted, mode)
    return None


problems = [p for p in (run(m) for m in CASES) if p]
for name in os.listdir(TMP):
    os.unlink(os.path.join(TMP, name))
os.rmdir(TMP)
if problems:
    print("FAIL:", "\n".join(problems))
    sys.exit(1)
print("PASS")
