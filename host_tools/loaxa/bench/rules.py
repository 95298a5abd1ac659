"""How long the node spends deciding: rules.evaluate and next_change on the
MicroPython VM, against the same code under CPython in the same run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from loaxa_node import timeutil

from .. import FIRMWARE, REPO
from ..rules import compile_file
from ..sim import micropython_cmd
from . import Table

N = 2000
# The same measuring code runs on both interpreters.
CODE = """
import json, sys, time
from loaxa_node.rules import engine as rules
try:
    us, diff = time.ticks_us, time.ticks_diff
except AttributeError:  # CPython
    us, diff = (lambda: time.perf_counter_ns() // 1000), (lambda a, b: a - b)
R, times = json.loads(sys.stdin.read())
req = {"priority": "normal", "kind": "relay", "zones": ["thon1"]}
t0 = us()
for t in times:
    rules.evaluate(R, t, req, None, True)
t1 = us()
for t in times:
    rules.next_change(R, t, ["thon1"])
t2 = us()
print(json.dumps([diff(t1, t0), diff(t2, t1)]))
"""


def _measure(cmd: list[str], data: str) -> list[int]:
    env = dict(os.environ, MICROPYPATH=f".frozen:{FIRMWARE}", PYTHONPATH=str(FIRMWARE))
    out = subprocess.run([*cmd, "-c", CODE], input=data, capture_output=True, text=True,
                         env=env, check=True).stdout
    return json.loads(out)


def run(argv: list[str]) -> list[Table]:
    R = compile_file(REPO / "docs" / "examples" / "an-phu.toml").rules
    start = timeutil.t2k(2026, 11, 23) - 7 * 3600
    times = [start + i * 7 * 86400 // N for i in range(N)]  # a week, every ~5 min
    data = json.dumps([R, times])
    upy = _measure(micropython_cmd(), data)
    cpy = _measure([sys.executable], data)
    rows: list[list[object]] = [
        [name, upy[i] / N, cpy[i] / N, upy[i] / cpy[i]]
        for i, name in enumerate(("evaluate", "next_change"))
    ]
    return [Table(f"rules engine, example commune, {N} instants over a week",
                  ["call", "MicroPython µs/call", "CPython µs/call", "ratio"], rows,
                  "both on this host; the MicroPython column is the unix VM, not an ESP32")]
