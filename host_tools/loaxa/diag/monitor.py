"""`loaxa diag monitor`: a live view of one node that outlives reboots and replugs.

Rich Live, not Textual: the view only shows (status, what plays, a level
meter, the log) and needs no widgets or input beyond Ctrl-C; rich is already
pinned for the other tools, renders in any terminal a technician has (PuTTY
over SSH, a Linux console), and its output is plain text a test can read from
tmux. On a pipe or a file it prints calm lines instead of redrawing.

The port is polled with `status` about once a second. A port that fails to
read (cable pulled) is closed and reopened by name until it comes back; a
node that stops answering on a working port is rebooting: the view says so
and keeps waiting. Name the port by its stable path (/dev/serial/by-path/...)
so a replug finds it again.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import TextIO

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from ..console import NodeConsole
from ..errors import LoaxaError, NodeTimeout
from ..i18n import t
from ..term import console, table
from . import view

LOG_LINES = 12
SILENT_REOPEN_S = 5.0  # a port silent this long is reopened (some adapters need it)


class Monitor:
    def __init__(self, port: str, baud: int = 115200, interval: float = 1.0,
                 stream: TextIO | None = None, slowdown: float = 1.0):
        self.port, self.baud, self.interval, self.slowdown = port, baud, interval, slowdown
        self.out = console(stream or sys.stdout)
        self.con: NodeConsole | None = None
        self.mark = 0
        self.state = "connecting"
        self.st: dict | None = None
        self.log: deque[str] = deque(maxlen=200)
        self.silent_since: float | None = None
        self._said = ""

    # -- the port ---------------------------------------------------------------
    def _open(self) -> None:
        try:
            self.con = NodeConsole(self.port, self.baud, slowdown=self.slowdown)
        except LoaxaError:
            self.state = "unplugged"
            return
        self.mark = self.con.mark()
        self.silent_since = None
        self._note(t("monitor.connected", port=self.port))
        try:
            for e in self.con.request("log", {"n": LOG_LINES}, timeout=2)["lines"]:
                self.log.append(f"{e['ms']} {e['level']} {view.log_message(e['msg'])}")
        except LoaxaError:
            pass

    def _close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None

    def _note(self, msg: str) -> None:
        self.log.append("— " + msg + " —")

    def poll(self) -> None:
        if self.con is None:
            self._open()
            if self.con is None:
                return
        con = self.con
        if con.broken is not None:
            self._close()
            self.state = "unplugged"
            self._note(t("monitor.unplugged", port=self.port))
            return
        try:
            st = con.request("status", timeout=min(2.0, max(0.5, self.interval * 2)))
        except NodeTimeout:
            now = time.monotonic()
            self.silent_since = self.silent_since or now
            self.state = "unplugged" if con.broken is not None else "silent"
            if now - self.silent_since > SILENT_REOPEN_S:
                self._close()
            self._take_lines()
            return
        except LoaxaError as e:
            self._note(str(e))
            return
        self.silent_since = None
        prev, self.st, self.state = self.st, st, "connected"
        if prev and (st.get("boots", 0) != prev.get("boots", 0)
                     or st.get("uptime_s", 0) < prev.get("uptime_s", 0)):
            self._note(t("monitor.restarted", cause=view.cause(st.get("reset_cause")),
                         boots=st.get("boots")))
        self._take_lines()

    def _take_lines(self) -> None:
        if self.con is None:
            return
        lines = self.con.lines_since(self.mark)
        self.mark += len(lines)
        for ln in lines:
            if ln.strip() and not ln.startswith("@"):
                self.log.append(view.log_line(ln))

    # -- drawing ----------------------------------------------------------------
    def _headline(self) -> Text:
        style = {"connected": "green", "silent": "yellow", "unplugged": "red"}.get(self.state,
                                                                                   "")
        return Text.assemble(("loaxa diag monitor  ", "bold"), (self.port + "  ", ""),
                             (t("monitor." + self.state, port=self.port), style),
                             ("   " + t("monitor.quit"), "dim"))

    def render(self) -> Group:
        parts: list = [self._headline()]
        if self.st:
            stale = "" if self.state == "connected" else " " + t("monitor.stale")
            parts.append(Panel(table((), view.rows(self.st)), title=t("monitor.status") + stale,
                               title_align="left"))
        parts.append(Panel(Text("\n".join(list(self.log)[-LOG_LINES:]) or " "),
                           title=t("monitor.log"), title_align="left"))
        return Group(*parts)

    def _line(self) -> None:
        """Not a terminal: one calm line when the state or what plays changes."""
        for ln in self._pending_log():
            self.out.print(ln, markup=False, highlight=False)
        st = self.st or {}
        said = " | ".join((t("monitor." + self.state, port=self.port), f"{st.get('node_id')}",
                           t("status.uptime_v", s=st.get("uptime_s"),
                             cause=view.cause(st.get("reset_cause")),
                             boots=st.get("boots")) if st else "-",
                           view.playing(st) if st else "-"))
        key = said.split(" | ")[0] + said.split(" | ")[-1]
        if key != self._said:
            self._said = key
            self.out.print(time.strftime("%H:%M:%S ") + said, markup=False, highlight=False)

    def _pending_log(self) -> list[str]:
        out = list(self.log)
        self.log.clear()
        return out

    def run(self, seconds: float | None = None) -> int:
        end = None if seconds is None else time.monotonic() + seconds
        try:
            if not self.out.is_terminal:
                while end is None or time.monotonic() < end:
                    self.poll()
                    self._line()
                    time.sleep(self.interval)
                return 0
            with Live(self.render(), console=self.out, screen=True, auto_refresh=False) as live:
                while end is None or time.monotonic() < end:
                    self.poll()
                    live.update(self.render(), refresh=True)
                    time.sleep(self.interval)
        except KeyboardInterrupt:
            pass
        finally:
            self._close()
        return 0
