#!/usr/bin/env python3
"""global.py - three hosts share one global rule through a real Redis.

Each "host" is a table of its own, with its own config, ratelimit-agent and two worker
processes (global_worker) that log every admission. Redis runs on a unix socket in a
temporary directory, without persistence, started and stopped by this test. Each config
reads "bucket foundry 200/2s global unix://SOCKET lease 40": the agent finds Redis there.
Host 1 asks for 70% of N per T, hosts 2 and 3 for 35% each.
Host 3's agent reaches Redis with random delays of up to 60 ms each way.

Checked exactly, from the admission logs of all hosts:
- no rolling window of T holds more than N admissions, across every phase and fault:
  Redis stopped (SIGSTOP) and resumed, an agent SIGKILLed and restarted, Redis SIGKILLed
  and restarted without its data;
- after Redis restarts empty, no admission for Redis's quiet window once the leases held
  have ended;
- every host with demand is admitted; a host whose workers stop holds no units a lease's
  length later; a second agent for a table exits at once.
Utilization is printed, not asserted (a busy machine lowers it): bench/ measures it.
Phase 3 (the configs get "on-global-failure local N/3", read again on SIGHUP; Redis stopped
longer than its window): each host grants itself its share, and the count stays within N.
An agent whose --on-global-failure contradicts its config exits 3.
Usage: global.py AGENT CTL WORKER
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

AGENT, CTL, WORKER = sys.argv[1:4]
N, T = int(os.environ.get("GLOBAL_N", "200")), 2.0  # GLOBAL_N: bench runs only
LEASE = T / 20
TMP = tempfile.mkdtemp(prefix="rl-global-")
SOCK = os.path.join(TMP, "redis.sock")
procs = []


def fail(msg):
    print("FAIL:", msg)
    cleanup()
    sys.exit(1)


def cleanup():
    for p in procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
            except ProcessLookupError:
                pass
            p.wait()
    for h in range(3):
        for suffix in ("", ".agent", ".agent.lock", ".conf"):
            try:
                os.unlink(table(h) + suffix)
            except FileNotFoundError:
                pass
    shutil.rmtree(TMP, ignore_errors=True)


def table(h):
    return "/dev/shm/rl-test-%d-global-h%d" % (os.getpid(), h + 1)


def config(h, extra=""):
    with open(table(h) + ".conf", "w") as f:
        f.write("table %s\nbucket foundry %d/2s global unix://%s lease %d\n%s" %
                (table(h), N, SOCK, N // 5, extra))
    return table(h) + ".conf"


def start(args, **kw):
    p = subprocess.Popen(args, **kw)
    procs.append(p)
    return p


def redis():
    p = start(["redis-server", "--port", "0", "--unixsocket", SOCK, "--save", "",
               "--appendonly", "no", "--dir", TMP], stdout=subprocess.DEVNULL)
    for _ in range(3000):  # a hang guard of 30 s, not a measurement
        if os.path.exists(SOCK):
            return p
        time.sleep(0.01)
    fail("redis-server did not start")


def agent(h, *extra):
    # Host 3's agent reaches Redis slowly: up to 60 ms each way, at random.
    env = dict(os.environ, RATELIMIT_AGENT_TEST_DELAY_US="60000" if h == 2 else "0")
    return start([AGENT, "--config", table(h) + ".conf", "--host", "h%d" % (h + 1),
                  "--timeout", "100"] + list(extra), env=env)


def status(h, key):
    with open(table(h) + ".agent") as f:
        w = f.readline().split()
        return int(w[w.index(key) + 1])


def calls(h):
    return status(h, "calls")


def workers(h, rate, ms, tag):
    logs = []
    for k in range(2):
        log = os.path.join(TMP, "h%d-%s-%d.log" % (h + 1, tag, k))
        logs.append((start([WORKER, table(h), "foundry", str(rate / 2), str(ms), log]), log))
    return logs


def collect(logs):
    out = []
    for p, log in logs:
        if p.wait() != 0:
            fail("a worker failed")
        with open(log) as f:
            out += [int(x) for x in f]
    return out


def most_in_window(stamps):
    """The most admissions in any rolling window [a, a + T) (exact, two pointers)."""
    s, most, j = sorted(stamps), 0, 0
    for i in range(len(s)):
        while s[i] - s[j] >= T * 1e9:
            j += 1
        most = max(most, i - j + 1)
    return most


try:
    r = redis()
    for h in range(3):
        subprocess.run([CTL, "apply", config(h)], check=True, stdout=subprocess.DEVNULL)
    agents = [agent(h) for h in range(3)]
    for _ in range(3000):  # the status file comes after the agent took its lock
        if os.path.exists(table(0) + ".agent"):
            break
        time.sleep(0.01)
    else:
        fail("the first agent wrote no status in 30 s")
    second = subprocess.run([AGENT, "--config", table(0) + ".conf"],
                            capture_output=True, text=True, timeout=10)
    if second.returncode != 4 or "another agent" not in second.stderr:
        fail("a second agent did not exit: %d %s" % (second.returncode, second.stderr))

    # Phase 1: steady demand, 140% of N per T, 10 s (Redis grants nothing for its first W).
    rates = [0.7 * N / T, 0.35 * N / T, 0.35 * N / T]
    logs = [workers(h, rates[h], 10000, "steady") for h in range(3)]
    time.sleep(4)
    show = subprocess.run([CTL, "--table", table(0), "show", "foundry"], capture_output=True,
                          text=True).stdout
    prom = subprocess.run([CTL, "--table", table(0), "stats", "--prometheus"],
                          capture_output=True, text=True).stdout
    if "%d per 2s for all hosts" % N not in show or "redis              ok" not in show:
        fail("show does not tell the global budget and Redis's health:\n" + show)
    if 'ratelimit_global_redis_up{table=' not in prom or \
            'ratelimit_global_limit{bucket="foundry"} %d' % N not in prom:
        fail("stats --prometheus lacks the global rule:\n" + prom)
    steady = [collect(l) for l in logs]
    every = sum(steady, [])
    if any(not s for s in steady):
        fail("a host with demand was never admitted: %s" % [len(s) for s in steady])
    most = most_in_window(every)
    last = max(every)
    late = [x for x in every if x > last - 6e9]  # the last 6 s: three whole windows
    print("steady: admitted per host %s, most in a window %d of %d, utilization of the "
          "last 3 windows %.1f%%" % ([len(s) for s in steady], most, N,
                                    100.0 * len(late) / (3 * N)))
    made = sum(calls(h) for h in range(3))
    print("steady: Redis calls %d, per 1,000 admissions %.0f (N = %d per %.0f s, a lease "
          "lasts %.1f s)" % (made, 1000.0 * made / len(every), N, T, LEASE))
    if most > N:
        fail("%d admissions in one window of T, N = %d" % (most, N))

    # Host 3 idle: a lease's length (and a poll) later it holds nothing.
    # A lease asked for before the demand stopped ends at most a lease's length after
    # its request left: 5 lease lengths later no host holds a usable unit (live, from the
    # table; the status file may lag behind a slow agent).
    time.sleep(LEASE * 5)
    for h in range(3):
        show = subprocess.run([CTL, "--table", table(h), "show", "foundry"],
                              capture_output=True, text=True).stdout
        if "this host's lease holds 0 units" not in show:
            fail("idle host %d still holds a lease:\n%s" % (h + 1, show))

    # Phase 2: faults under demand. Redis stopped for 1 s, an agent killed and restarted,
    # Redis killed and restarted empty.
    logs = [workers(h, rates[h], 9000, "faults") for h in range(3)]
    time.sleep(1.5)
    os.kill(r.pid, signal.SIGSTOP)
    time.sleep(1.0)
    os.kill(r.pid, signal.SIGCONT)
    time.sleep(1.0)
    agents[1].kill()
    agents[1].wait()
    agents[1] = agent(1)
    time.sleep(1.5)
    r.kill()
    r.wait()
    killed_at = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    os.unlink(SOCK)
    r = redis()
    faults = [collect(l) for l in logs]
    every += sum(faults, [])
    most = most_in_window(every)
    print("faults: admitted per host %s, most in a window %d of %d" %
          ([len(s) for s in faults], most, N))
    if most > N:
        fail("%d admissions in one window of T, N = %d, with faults" % (most, N))
    # After the empty restart: leases held end within LEASE; then nothing for W.
    gap = [x for x in every if killed_at + (LEASE + 0.02) * 1e9 < x < killed_at + T * 1e9]
    if gap:
        fail("%d admissions within W after Redis lost its data" % len(gap))
    after = [x for x in sum(faults, []) if x > killed_at + T * 1.2 * 1e9]
    if not after:
        fail("no admission after Redis came back")

    # Phase 3: Redis stopped for longer than its window, a local share in the configs (read
    # again on SIGHUP): after W each host grants itself N/3; when Redis answers again they
    # report and stop.
    for h in range(3):
        config(h, "on-global-failure local N/3\n")
        os.kill(agents[h].pid, signal.SIGHUP)
    odd = subprocess.run([AGENT, "--config", table(0) + ".conf", "--on-global-failure",
                          "refuse"], capture_output=True, text=True, timeout=10)
    if odd.returncode != 3 or "contradicts" not in odd.stderr:
        fail("an agent whose option contradicts its config ran: %d %s" %
             (odd.returncode, odd.stderr))
    for _ in range(100):  # bounded: the agents write their status every few polls
        if all(status(h, "share") == 3 for h in range(3)):
            break
        time.sleep(0.05)
    else:
        fail("SIGHUP did not bring the config's on-global-failure to the agents")
    time.sleep(T * 1.3)  # the restarted Redis's quiet window
    logs = [workers(h, rates[h], 10000, "local") for h in range(3)]
    time.sleep(1.0)
    os.kill(r.pid, signal.SIGSTOP)
    stopped_at = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    time.sleep(4.5)
    os.kill(r.pid, signal.SIGCONT)
    local = [collect(l) for l in logs]
    every += sum(local, [])
    most = most_in_window(every)
    during = [len([x for x in s if stopped_at + 1.2 * T * 1e9 < x < stopped_at + 4.5e9])
              for s in local]
    print("local share: admitted per host while Redis was stopped, after W: %s (N/3 = %d "
          "per W); most in a window %d of %d" % (during, N // 3, most, N))
    if most > N:
        fail("%d admissions in one window of T, N = %d, with local shares" % (most, N))
    if any(d == 0 for d in during) or any(d > 2 * (N // 3) for d in during):
        fail("local shares not used as configured: %s" % during)
    print("PASS")
finally:
    cleanup()
