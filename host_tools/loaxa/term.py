"""Terminal output through rich: live bars and boxed tables on a terminal,
calm plain text when the output is a log, a pipe or a file."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text


def console(stream: TextIO | None = None) -> Console:
    """A rich console on stream (default stdout). Not a terminal: no colour, no
    cursor tricks, and lines as long as they need (logs and pipes are not 80 wide)."""
    stream = stream or sys.stdout
    if stream.isatty():
        return Console(file=stream, highlight=False)
    return Console(file=stream, highlight=False, color_system=None, width=10_000,
                   force_terminal=False, soft_wrap=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]],
          title: str | None = None, tty: bool = True) -> Table:
    """Columns with headers, or (no headers) a key/value list with the keys in bold."""
    framed = tty and bool(headers)
    t = Table(*headers, title=title, box=box.SIMPLE_HEAD if framed else None,
              show_header=bool(headers), header_style="bold" if tty else "",
              title_justify="left", pad_edge=tty)
    if not headers:
        for k in range(max((len(r) for r in rows), default=0)):
            t.add_column(style="bold" if tty and k == 0 else "")
    for r in rows:
        t.add_row(*(Text("" if c is None else str(c)) for c in r))  # text, never markup
    return t


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
                title: str | None = None, stream: TextIO | None = None) -> None:
    c = console(stream)
    if c.is_terminal:
        c.print(table(headers, rows, title))
        return
    with c.capture() as cap:
        c.print(table(headers, rows, title, tty=False))
    c.file.write("".join(ln.rstrip() + "\n" for ln in cap.get().splitlines()))
