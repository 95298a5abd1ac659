"""Host side of the node's serial service protocol (DESIGN section 7).

One background reader owns the port and feeds lines to a queue; `request()`
sends `@<id> <command> <json>` and waits for exactly that id's answer, while
every other line is kept as log. `expect()` waits for a pattern in the output,
and on failure reports the pattern, the cleaned tail and where the full log is.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from pathlib import Path

import serial

from loaxa_node.console import CREDIT as NODE_CREDIT
from loaxa_node.console import WINDOW

from .errors import LoaxaError, NodeError, NodeTimeout

_ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")
# The node's console credits each WINDOW bytes of a line it has taken in with
# one CREDIT byte; a long request goes out a window at a time against them
# (firmware console.py, the one place both are set: a board's stdin ring
# drops bytes beyond ~259).
CREDIT = NODE_CREDIT.encode()


def clean(b: bytes) -> str:
    return _ANSI.sub(b"", b).decode("utf-8", "replace").replace("\r", "")


class NodeConsole:
    def __init__(
        self,
        url: str,
        baud: int = 115200,
        log_path: str | Path | None = None,
        dsrdtr: bool = False,
        slowdown: float = 1.0,
    ):
        try:
            self.port = serial.serial_for_url(url, baudrate=baud, timeout=0.05, do_not_open=True)
            # Opening a USB bridge asserts DTR/RTS, which holds a board in reset
            # or bootloader; keep both released.
            self.port.dtr = False
            self.port.rts = False
            self.port.open()
        except (serial.SerialException, OSError) as e:
            raise LoaxaError(
                f"cannot open {url}: {e}",
                "check the USB cable and the port name (loaxa ports lists them)",
            ) from None
        self.url = url
        # Every timeout is stretched by this: an emulated node (QEMU) boots and
        # writes its flash several times slower than a board.
        self.slowdown = slowdown
        self.log_path = Path(log_path) if log_path else None
        self._log = open(self.log_path, "ab") if self.log_path else None
        self._buf = bytearray()
        self._lines: deque[str] = deque(maxlen=2000)
        self._cond = threading.Condition()
        self._seen = 0  # count of lines ever received
        self._credits = 0  # CREDIT bytes ever received
        # False after a long line's credit did not come (a node without flow):
        # later lines go out whole instead of waiting again; a credit resets it
        self._flow = True
        self._ids = itertools.count(1)
        # pause() hands the port over: the reader reads only while it holds
        # _port_lock and not _paused, so once pause() has held the lock the
        # reader is out of port.read() and stays out until resume()
        self._paused = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self._port_lock = threading.Lock()
        self._stop = threading.Event()
        # why the port last failed to read (cable pulled, adapter gone), None
        # while it reads: a tool that outlives a replug reopens on it
        self.broken: Exception | None = None
        self._reader = threading.Thread(target=self._read, name="console-reader", daemon=True)
        self._reader.start()

    # -- reader ----------------------------------------------------------------
    def _read(self) -> None:
        while not self._stop.is_set():
            if not self._resumed.wait(0.1):
                continue
            try:
                with self._port_lock:
                    if self._paused.is_set():
                        continue
                    data = self.port.read(4096)
            except (serial.SerialException, OSError, TypeError) as e:
                if self._stop.is_set():
                    return
                self.broken = e
                time.sleep(0.05)
                continue
            if not data:
                continue
            self.broken = None
            if self._log:
                self._log.write(data)
                self._log.flush()
            with self._cond:
                credits = data.count(CREDIT)
                if credits:
                    self._credits += credits
                    self._flow = True
                    data = data.replace(CREDIT, b"")
                self._buf += data
                while True:
                    i = self._buf.find(b"\n")
                    if i < 0:
                        break
                    self._lines.append(clean(bytes(self._buf[:i])))
                    self._seen += 1
                    del self._buf[: i + 1]
                self._cond.notify_all()

    def pause(self) -> serial.Serial:
        """Hand the port to a caller (raw REPL, flashing); resume() gives it back."""
        self._resumed.clear()
        self._paused.set()
        with self._port_lock:  # the reader's read in progress ends (its timeout)
            pass
        return self.port

    def resume(self) -> None:
        self._paused.clear()
        self._resumed.set()

    def close(self) -> None:
        self._stop.set()
        self._reader.join(1)
        self.port.close()
        if self._log:
            self._log.close()

    def __enter__(self) -> NodeConsole:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- output --------------------------------------------------------------
    def mark(self) -> int:
        """A position in the output; expect(since=mark) looks only after it."""
        with self._cond:
            return self._seen

    def tail(self, n: int = 20) -> str:
        with self._cond:
            lines = list(self._lines)[-n:]
            partial = clean(bytes(self._buf))
        return "\n".join(lines + ([partial] if partial else []))

    def lines_since(self, mark: int) -> list[str]:
        with self._cond:
            return self._lines_since(mark)

    def _lines_since(self, mark: int) -> list[str]:
        have = len(self._lines)
        first = self._seen - have
        return list(self._lines)[max(0, mark - first):]

    def expect(self, pattern: str, timeout: float = 10.0, since: int | None = None,
               partial: bool = False) -> re.Match:
        """Wait for a complete line matching pattern; with partial=True also the
        unterminated tail (a prompt such as `>>> `)."""
        rx = re.compile(pattern)
        start = self.mark() if since is None else since
        timeout *= self.slowdown
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines_since(start):
                    m = rx.search(line)
                    if m:
                        return m
                m = rx.search(clean(bytes(self._buf))) if partial else None
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.1))
        where = f"\nfull log: {self.log_path}" if self.log_path else ""
        raise NodeTimeout(
            f"no {pattern!r} from the node within {timeout:g} s; last output:\n"
            f"{self.tail(15)}{where}",
            "is the node powered and running the application? (Ctrl-D restarts it)",
        )

    # -- input ---------------------------------------------------------------
    def write(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def ctrl_c(self) -> None:
        self.write(b"\r\x03")

    def ctrl_d(self) -> None:
        self.write(b"\x04")

    def _send_line(self, line: bytes, timeout: float) -> None:
        """line and its newline, a WINDOW at a time, each after the node's
        credit for the one before (a short line goes out at once)."""
        data = line + b"\n"
        with self._cond:
            credits = self._credits
        for i in range(0, len(data), WINDOW):
            self.write(data[i:i + WINDOW])
            if i + WINDOW >= len(data):
                return
            credits += 1
            deadline = time.monotonic() + timeout * self.slowdown
            with self._cond:
                while self._flow and self._credits < credits:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._flow = False  # a node without flow: the rest unpaced
                        break
                    self._cond.wait(min(left, 0.1))

    def request(self, command: str, args: dict | None = None, timeout: float = 10.0) -> dict:
        """Send one request; return the `ok` body or raise NodeError for `err`."""
        rid = format(next(self._ids) % 10**8)
        line = f"@{rid} {command}"
        if args is not None:
            line += " " + json.dumps(args, separators=(",", ":"))
        since = self.mark()
        self._send_line(line.encode(), timeout)
        m = self.expect(rf"^@{rid} (ok|err) (.*)$", timeout=timeout, since=since)
        try:
            body = json.loads(m.group(2))
        except ValueError:
            raise LoaxaError(f"node sent a malformed answer: {m.group(0)!r}") from None
        if m.group(1) == "err":
            raise NodeError(body.get("code", "?"), body.get("msg", ""))
        return body

    def wait_restarted(self, timeout: float = 20.0) -> dict:
        """After a request that restarts the node (reboot, factory_reset): its next
        boot's first line, then its status once the app answers. The sim restarts
        as MicroPython soft-resets; an ESP32 by machine.reset(), a CPU reset (reset
        cause hard) that keeps the RTC."""
        self.expect(r"loaxa \S+ on \S+, reset: \w+, boot #", 10)
        return self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 20.0) -> dict:
        """Poll `status` until the application answers."""
        timeout *= self.slowdown
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                left = deadline - time.monotonic()
                return self.request("status", timeout=min(2.0, max(0.1, left / self.slowdown)))
            except NodeTimeout as e:
                last = e
        raise NodeTimeout(f"the node did not answer status within {timeout:g} s\n{last}")
