#!/usr/bin/env python3
"""Writes a benchmark's table into BENCHMARKS.md.

Usage: publish.py SECTION COMMAND < table.md

The text between `<!-- bench:SECTION -->` and `<!-- /bench:SECTION -->` is replaced by the
exact command, the machine (cores, memory, CPU model), the date, and the table read from
stdin. A missing section is appended at the end, so a new script needs no hand edit first.
"""
import datetime
import os
import re
import sys

section, command = sys.argv[1], sys.argv[2]
table = sys.stdin.read().rstrip() + "\n"
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "BENCHMARKS.md")


def machine():
    cores = os.cpu_count()
    mem_kib = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:"))
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
    return f"{cores} cores ({model}), {mem_kib / 1024 / 1024:.0f} GiB"


stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
body = f"`{command}` — {machine()}, {stamp}.\n\n{table}"
begin, end = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
text = open(path).read()
block = f"{begin}\n{body}{end}"
if begin in text:
    text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    text = text.rstrip() + f"\n\n{block}\n"
with open(path + ".tmp", "w") as f:
    f.write(text)
os.replace(path + ".tmp", path)
print(f"BENCHMARKS.md: section {section} updated", file=sys.stderr)
