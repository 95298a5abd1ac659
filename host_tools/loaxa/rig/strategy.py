"""Bring a node into a known state; the strategy is the one owner of its power.

States (labgrid's ShellStrategy, with the node's own):

  off   powered off, no console
  on    powered, booting or booted; nothing awaited. The strategy's console, if
        open, keeps reading; a tool of the test's own may hold the port instead
        (`loaxa diag monitor` under test).
  app   the application answers `status` on the strategy's console
  repl  the MicroPython prompt (Ctrl-C from app; Ctrl-D soft-resets back to app)

`transition(to, fresh=True)` cuts the power and boots again on the way, even
when the node is in `to` already: a power cut at this instant, which tests of
what survives one ask for. Tests never switch the power themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..console import NodeConsole
from .targets import Target

STATES = ("off", "on", "app", "repl")


class NodeStrategy:
    def __init__(self, target: Target, console_factory: Callable[[str], NodeConsole]):
        self.target = target
        self._console_factory = console_factory
        self.console: NodeConsole | None = None
        self.state = "off"
        self._url = ""
        # a power cut may come from a timer thread (a cut at a random instant)
        self._lock = threading.RLock()

    def transition(self, to: str, timeout: float = 30.0, *, fresh: bool = False
                   ) -> NodeConsole | None:
        if to not in STATES:
            raise ValueError(f"state must be one of {STATES}")
        with self._lock:
            if to == "off":
                if self.console:
                    self.console.close()
                    self.console = None
                if self.state != "off":
                    self.target.stop()
                self.state = "off"
                return None
            if fresh and self.state != "off":
                self.target.power_cycle()
                self.state = "on"
            if self.state == "off":
                self._url = self.target.start()
                self.state = "on"
            if to == "on":
                return self.console
            if self.state == "on":
                if self.console is None:
                    self.console = self._console_factory(self._url)
                self.console.wait_ready(timeout)
                self.state = "app"
            assert self.console
            if to == self.state:
                return self.console
            if to == "repl":
                self.console.ctrl_c()
                self.console.expect(r">>> $", timeout, partial=True)
            else:  # repl -> app: Ctrl-D soft-resets into the application
                self.console.ctrl_d()
                self.console.wait_ready(timeout)
            self.state = to
            return self.console
