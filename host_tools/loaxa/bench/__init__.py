"""`make bench`: measurements printed as tables, each a ratio against a reference
run side by side in the same run (mpremote, ffmpeg, ...). Never part of CI.

Each module named in BENCHES has run(args) -> list[Table]. `make bench ARGS=deploy`
runs only the benches whose name contains "deploy".
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field

BENCHES: tuple[str, ...] = ("rules", "audio", "drift", "deploy", "heap", "mqtt", "factory",
                            "headend", "tts", "emergency", "fanout", "brokerauth")


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[object]] = field(default_factory=list)
    note: str = ""

    def render(self) -> str:
        cells = [[str(h) for h in self.headers]] + [[_fmt(c) for c in r] for r in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.headers))]
        line = "+".join("-" * (w + 2) for w in widths)
        out = [self.title, line]
        for i, r in enumerate(cells):
            out.append("|".join(f" {c:>{w}} " if j else f" {c:<{w}} "
                                for j, (c, w) in enumerate(zip(r, widths, strict=True))))
            if i == 0:
                out.append(line)
        out.append(line)
        if self.note:
            out.append(self.note)
        return "\n".join(out)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = [b for b in BENCHES if not argv or any(a in b for a in argv)]
    if not chosen:
        print("no benchmark matches; available: " + ", ".join(BENCHES))
        return 2
    for name in chosen:
        for table in importlib.import_module(f"{__name__}.{name}").run(argv):
            print(table.render(), "\n", flush=True)
    return 0
