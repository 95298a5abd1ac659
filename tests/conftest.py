"""Unit tests of host code and of the firmware's pure modules.

Pure modules must give identical answers under CPython and MicroPython: the
`upy` fixture runs a snippet on the real MicroPython VM with firmware/ on its
path and returns what the snippet printed as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from loaxa import FIRMWARE
from loaxa.sim import micropython_cmd


class MicroPython:
    def __init__(self, heap_kb: int = 1024):
        self.cmd = [*micropython_cmd(), "-X", f"heapsize={heap_kb}k"]

    def run(self, code: str, stdin: bytes = b"", timeout: float = 120) -> str:
        env = dict(os.environ, MICROPYPATH=f".frozen:{FIRMWARE}")
        r = subprocess.run([*self.cmd, "-c", code], input=stdin, capture_output=True,
                           env=env, timeout=timeout)
        if r.returncode:
            raise AssertionError(f"MicroPython failed:\n{r.stdout.decode()}{r.stderr.decode()}")
        return r.stdout.decode()

    def json(self, code: str, stdin: bytes = b"", timeout: float = 120):
        """Run code that prints one JSON document; return it parsed."""
        return json.loads(self.run(code, stdin, timeout))


@pytest.fixture(scope="session")
def upy() -> MicroPython:
    return MicroPython()
