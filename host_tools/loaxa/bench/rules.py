"""How long the node spends deciding: rules.evaluate and next_change on the
MicroPython VM, against the same code under CPython in the same run."""

from __future__ import annotations

import json
import os
import subprocess
import time

from loaxa_node import rules as engine
from loaxa_node import timeutil

from .. import FIRMWARE, REPO
from ..rules import compile_file
from ..sim import micropython_cmd
from . import Table

N = 2000
CODE = """
import json, sys, time
from loaxa_node import rules
R, times = json.loads(sys.stdin.read())
req = {"priority": "normal", "kind": "relay", "zones": ["thon1"]}
t0 = time.ticks_us()
for t in times:
    rules.evaluate(R, t, req, None, True)
t1 = time.ticks_us()
for t in times:
    rules.next_change(R, t, ["thon1"])
t2 = time.ticks_us()
print(json.dumps([time.ticks_diff(t1, t0), time.ticks_diff(t2, t1)]))
"""


def _cpython(R: dict, times: list[int]) -> list[float]:
    req = {"priority": "normal", "kind": "relay", "zones": ["thon1"]}
    t0 = time.perf_counter()
    for t in times:
        engine.evaluate(R, t, req, None, True)
    t1 = time.perf_counter()
    for t in times:
        engine.next_change(R, t, ["thon1"])
    t2 = time.perf_counter()
    return [(t1 - t0) * 1e6, (t2 - t1) * 1e6]


def run(argv: list[str]) -> list[Table]:
    R = compile_file(REPO / "docs" / "examples" / "an-phu.toml").rules
    start = timeutil.t2k(2026, 11, 23) - 7 * 3600
    times = [start + i * 7 * 86400 // N for i in range(N)]  # a week, every ~5 min
    env = dict(os.environ, MICROPYPATH=f".frozen:{FIRMWARE}")
    out = subprocess.run([*micropython_cmd(), "-c", CODE], input=json.dumps([R, times]),
                         capture_output=True, text=True, env=env, check=True).stdout
    upy = json.loads(out)
    cpy = _cpython(R, times)
    rows: list[list[object]] = [
        [name, upy[i] / N, cpy[i] / N, upy[i] / cpy[i]]
        for i, name in enumerate(("evaluate", "next_change"))
    ]
    return [Table(f"rules engine, example commune, {N} instants over a week",
                  ["call", "MicroPython µs/call", "CPython µs/call", "ratio"], rows,
                  "both on this host; the MicroPython column is the unix VM, not an ESP32")]
