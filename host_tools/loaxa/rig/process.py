"""Peers the rig runs as child processes (mosquitto, the head-end): a free
port to give them, the wait until they listen, and a stop that cannot hang."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

from ..errors import LoaxaError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc: subprocess.Popen, port: int, what: str, timeout: float) -> None:
    """Return once `proc` accepts TCP on `port`; a peer that exits first says why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise LoaxaError(f"{what} exited: {err}" if err else f"{what} exited")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise LoaxaError(f"{what} did not listen on port {port}")


def kill(proc: subprocess.Popen | None) -> None:
    """SIGKILL: the peer vanishes without a word, as on a crash or a power cut."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def stop(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM, then SIGKILL if the peer has not ended within `grace` seconds."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            kill(proc)
