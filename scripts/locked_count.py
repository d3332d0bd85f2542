#!/usr/bin/env python3
"""Locked (read-modify-write) instructions executed in a callgrind profile.

Usage: scripts/locked_count.py CALLGRIND_OUT

`valgrind --tool=callgrind --dump-instr=yes` records how often each
instruction address ran, per object file (addresses relative to the file,
as `objdump` prints them). This sums the counts of the instructions that
drain the store buffer on x86-64: any with a `lock` prefix (the atomic
read-modify-writes), `xchg` with a memory operand (implicitly locked), and
`mfence` (a `SeqCst` fence). It prints two numbers: total instructions and
these "locked" ones.

A locked instruction costs 2 ns on one CPU and 8 ns on another, so the
count of them explains times that instruction counts alone do not. Standard
library only (and `objdump` from binutils).
"""

import re
import subprocess
import sys

LOCKED = re.compile(r"\block\b|\bxchg\s+\S*\(|\bmfence\b")


def locked_addresses(path, cache={}):
    """Addresses of locked instructions in the object file at `path`."""
    if path in cache:
        return cache[path]
    addrs = set()
    try:
        out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path],
                             capture_output=True, text=True, check=False).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(.*)", line)
        if m and LOCKED.search(m.group(2)):
            addrs.add(int(m.group(1), 16))
    cache[path] = addrs
    return addrs


def parse(path):
    """(total instructions, locked instructions) of one callgrind output."""
    names = {}
    counts = {}  # (object, address) -> instructions executed there (self cost)
    ob = None
    addr = 0
    skip_next = False  # the cost line after `calls=` is a call's inclusive cost
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line:
                continue
            if line.startswith(("ob=", "cob=")):
                # An object's name is given once, with its id, in whichever
                # line names it first (`ob=` or a call's `cob=`); later lines
                # give the id alone.
                key, _, rest = line.partition("=")
                m = re.match(r"\((\d+)\)(?:\s+(.*))?", rest)
                name = rest
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    name = names.get(m.group(1))
                if key == "ob":
                    ob = name
                continue
            if line.startswith("calls="):
                skip_next = True
                continue
            c = line[0]
            if not (c.isdigit() or c in "+-*"):
                continue  # fn=, fl=, cfn=, cob=, headers, ...
            parts = line.split()
            pos = parts[0]
            if pos == "*":
                pass
            elif pos[0] in "+-":
                addr += int(pos, 0)
            else:
                addr = int(pos, 0)
            if skip_next:
                skip_next = False
                continue
            if len(parts) >= 3:
                counts[(ob, addr)] = counts.get((ob, addr), 0) + int(parts[2])
    total = sum(counts.values())
    locked = 0
    for (ob, a), n in counts.items():
        if ob and ob.startswith("/") and a in locked_addresses(ob):
            locked += n
    return total, locked


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    t, l = parse(sys.argv[1])
    print(t, l)
