"""Progress bars for long work, drawn on stderr.

One Progress per job. On a terminal it redraws one line; elsewhere (CI logs,
batch workers) it prints a line every 10 % so logs stay short. Batch runs pass
their own `report(label, fraction, note)` instead of drawing bars.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TextIO

Report = Callable[[str, float, str], None]

_lock = threading.Lock()


class Progress:
    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30):
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self._stage = ""
        self._last_decile = -1

    def __call__(self, label: str, fraction: float, note: str = "") -> None:
        fraction = min(1.0, max(0.0, fraction))
        with _lock:
            if self.tty:
                done = int(fraction * self.width)
                bar = "#" * done + "-" * (self.width - done)
                self.stream.write(f"\r{self.label} {label:<8} [{bar}] {fraction:6.1%} {note:<24}")
                if fraction >= 1.0:
                    self.stream.write("\n")
            else:
                decile = int(fraction * 10)
                if label != self._stage:
                    self._stage, self._last_decile = label, -1
                if decile == self._last_decile:
                    return
                self._last_decile = decile
                self.stream.write(f"{self.label} {label} {fraction:.0%} {note}\n")
            self.stream.flush()
