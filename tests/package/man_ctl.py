#!/usr/bin/env python3
"""man-ratelimitctl: ratelimitctl(1) and `ratelimitctl help` agree.

Every command of the global help has a section (.SS) in the man page and every section is a
command; every option of `ratelimitctl help CMD` (long and short) appears in the command's
section, and every option the section lists (.TP items, the .SS line) is one of the help's;
the global options likewise in OPTIONS. Usage: man_ctl.py RATELIMITCTL MAN_PAGE
"""
import re
import subprocess
import sys

ctl, page = sys.argv[1], sys.argv[2]
problems = []


def run(*args):
    return subprocess.run([ctl, *args], capture_output=True, text=True, check=True,
                          timeout=30).stdout


def help_options(text):
    """The options of a help text's Options: block, as '--name' and '-x'."""
    block = re.search(r"^Options:\n(.*?)(?:\n\n|\Z)", text, re.S | re.M)
    found = set()
    for line in (block.group(1) if block else "").splitlines():
        m = re.match(r"^  ((?:-[A-Za-z], )?--[a-z][a-z-]*)", line)
        if m:
            found.update(o.strip() for o in m.group(1).split(","))
    return found


def roff_options(text):
    """Options named in roff text: \\-\\-name and \\-x."""
    text = text.replace("\\-", "-")
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[A-Za-z])(?![\w-])", text))


man = open(page, encoding="utf-8").read()
sections = {}  # .SS name -> (heading, body)
for m in re.finditer(r"^\.SS (\S+)([^\n]*)\n(.*?)(?=^\.S[SH] |\Z)", man, re.S | re.M):
    sections[m.group(1).replace("\\-", "-")] = (m.group(2), m.group(3))
top = re.search(r"^\.SH OPTIONS\n(.*?)(?=^\.SH )", man, re.S | re.M).group(1)


def listed(body):
    """The options a section lists as items: the line after each .TP."""
    return roff_options("\n".join(re.findall(r"^\.TP[^\n]*\n([^\n]*)", body, re.M)))


glob = run("--help")
commands = re.findall(r"^  ([a-z][a-z-]*) ", glob.split("Commands:\n", 1)[1].split("\n\n")[0],
                      re.M)
for cmd in commands:
    if cmd == "help":
        continue
    if cmd not in sections:
        problems.append(f"command {cmd}: no '.SS {cmd}' section in the man page")
        continue
    heading, body = sections[cmd]
    want = help_options(run("help", cmd)) - {"-h", "--help"}
    have = roff_options(heading + "\n" + body)
    for o in sorted(want - have):
        problems.append(f"command {cmd}: option {o} of 'help {cmd}' is not in the man page")
    for o in sorted((listed(body) | roff_options(heading)) - want):
        problems.append(f"command {cmd}: the man page lists {o}, 'help {cmd}' does not")
for name in sorted(set(sections) - set(commands)):
    problems.append(f"man page section '{name}' is not a command of 'ratelimitctl help'")

want = help_options(glob)
for o in sorted(want - listed(top)):
    problems.append(f"global option {o} is not in the man page's OPTIONS")
for o in sorted(listed(top) - want):
    problems.append(f"the man page's OPTIONS list {o}, 'ratelimitctl --help' does not")

for p in problems:
    print(p)
print(f"{len(commands)} commands checked, {len(problems)} problems")
sys.exit(1 if problems else 0)
