"""Bring a node into a known state: off -> app (answers status) <-> repl."""

from __future__ import annotations

from ..console import NodeConsole
from .targets import Target

STATES = ("off", "app", "repl")


class NodeStrategy:
    def __init__(self, target: Target, console_factory):
        self.target = target
        self._console_factory = console_factory
        self.console: NodeConsole | None = None
        self.state = "off"

    def transition(self, to: str, timeout: float = 30.0) -> NodeConsole | None:
        if to not in STATES:
            raise ValueError(f"state must be one of {STATES}")
        if to == self.state:
            return self.console
        if to == "off":
            if self.console:
                self.console.close()
                self.console = None
            self.target.stop()
        elif self.state == "off":
            self.console = self._console_factory(self.target.start())
            self.console.wait_ready(timeout)
            self.state = "app"
            return self.transition(to, timeout)
        elif to == "repl":
            assert self.console
            self.console.ctrl_c()
            self.console.expect(r">>> $", timeout, partial=True)
        else:  # repl -> app: Ctrl-D soft-resets into the application
            assert self.console
            self.console.ctrl_d()
            self.console.wait_ready(timeout)
        self.state = to
        return self.console
