"""Progress of long work, on stderr.

One Progress per job, called as report(stage, fraction, note). On a terminal
it is a rich bar per stage (each stage's bar stays when it completes);
elsewhere (CI logs, batch workers, a file) it prints a line every 10 % so logs
stay short. Batch runs draw one bar per board instead (batch.Board).
"""

from __future__ import annotations

import atexit
import sys
import threading
from collections.abc import Callable
from typing import TextIO

from rich.progress import BarColumn, TaskID, TaskProgressColumn, TextColumn
from rich.progress import Progress as Bars

from .term import console

Report = Callable[[str, float, str], None]

_lock = threading.Lock()


def bars(stream: TextIO) -> Bars:
    return Bars(TextColumn("{task.description}"), BarColumn(bar_width=30),
                TaskProgressColumn(), TextColumn("{task.fields[note]}"),
                console=console(stream), auto_refresh=False)


class Progress:
    def __init__(self, label: str, stream: TextIO | None = None):
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._stage = ""
        self._last_decile = -1
        self._bars: Bars | None = None
        self._task: TaskID | None = None

    def __call__(self, label: str, fraction: float, note: str = "") -> None:
        fraction = min(1.0, max(0.0, fraction))
        with _lock:
            if self.tty:
                self._draw(label, fraction, note)
                return
            decile = int(fraction * 10)
            if label != self._stage:
                self._stage, self._last_decile = label, -1
            if decile == self._last_decile:
                return
            self._last_decile = decile
            self.stream.write(f"{self.label} {label} {fraction:.0%} {note}\n")
            self.stream.flush()

    def _draw(self, label: str, fraction: float, note: str) -> None:
        if self._bars is None or label != self._stage:
            if self._bars is None:
                self._bars = bars(self.stream)
                self._bars.start()
                atexit.register(self._end)  # a failed job still gives the cursor back
            self._stage = label
            self._task = self._bars.add_task(f"{self.label} {label}", total=1.0, note="")
        assert self._task is not None
        self._bars.update(self._task, completed=fraction, note=note)
        self._bars.refresh()
        if fraction >= 1.0:  # the stage is over: leave its bar, end the live display
            self._end()

    def _end(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
            atexit.unregister(self._end)
