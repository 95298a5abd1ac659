"""Terminal output: rich bars and tables on a terminal, calm lines in logs and pipes."""

from __future__ import annotations

import io
import os
import select

from loaxa.progress import Progress
from loaxa.term import print_table


def test_progress_in_a_log_is_a_line_every_10_percent():
    out = io.StringIO()
    p = Progress("/dev/ttyUSB0", out)
    for stage in ("erase", "write"):
        for i in range(201):
            p(stage, i / 200, f"{i} KB")
    lines = out.getvalue().splitlines()
    assert len(lines) == 22
    assert lines[0] == "/dev/ttyUSB0 erase 0% 0 KB"
    assert lines[-1] == "/dev/ttyUSB0 write 100% 200 KB"


def test_progress_on_a_terminal_draws_bars_and_gives_the_cursor_back():
    master, slave = os.openpty()
    with open(slave, "w", encoding="utf-8", closefd=True) as tty:
        p = Progress("/dev/ttyUSB0", tty)
        for stage in ("erase", "write"):
            for i in range(11):
                p(stage, i / 10, "")
        tty.flush()
        chunks = []  # one read may return only part of what the bars wrote
        while select.select([master], [], [], 0.2)[0]:
            chunks.append(os.read(master, 1 << 16))
        raw = b"".join(chunks).decode()
    os.close(master)
    assert "━" in raw and "/dev/ttyUSB0 erase" in raw and "/dev/ttyUSB0 write" in raw
    assert raw.count("100%") >= 2
    hidden, shown = raw.count("\x1b[?25l"), raw.count("\x1b[?25h")
    assert hidden >= 1 and shown == hidden, "the cursor must come back after each stage"


def test_tables_in_a_pipe_are_plain_columns_and_never_wrapped():
    out = io.StringIO()
    long = "x" * 150
    print_table(["port", "note"], [["/dev/ttyUSB0", long], ["/dev/ttyUSB10", "ok"]],
                stream=out)
    lines = out.getvalue().splitlines()
    assert lines == ["port           note", f"/dev/ttyUSB0   {long}", "/dev/ttyUSB10  ok"]
