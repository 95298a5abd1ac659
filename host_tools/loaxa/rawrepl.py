"""MicroPython's raw REPL and its raw-paste mode, over an open serial port.

The same protocol mpremote speaks (mpremote/transport_serial.py), kept here
because deploy needs two things mpremote does not give: byte counts of what
crossed the wire, and one session for many small programs. Raw-paste mode is
the device's own flow control: it grants a window of bytes and sends 0x01 for
each further window it has room for, so no byte is lost on a slow UART.

Every wait here is a wait for *silence*, not a deadline for the whole step: a
program that works for minutes (hashing on an emulated node's slow flash) keeps
the session alive by writing TICK bytes as it goes; they are stripped from its
output and counted for the caller's progress bar (exec's `tick`).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable

import serial

from .errors import LoaxaError

BANNER = b"raw REPL; CTRL-B to exit\r\n"
CREDIT_WAIT = 30.0  # s of silence before a unit's credit counts as lost
TICK = b"\x06"  # "still working": a node-side program's progress mark
ENTER_TRIES = 3


class LinkLost(LoaxaError):
    """The device stopped answering mid-session (cable, power, reset)."""


class DeviceError(LoaxaError):
    """A program run on the device raised; msg holds its traceback."""


class RawRepl:
    def __init__(self, port: serial.Serial, timeout: float = 10.0):
        self.port = port
        self.timeout = timeout
        self.tx = 0  # bytes written to the device
        self.rx = 0  # bytes read from it
        self._buf = bytearray()  # read but not yet consumed

    # -- bytes ---------------------------------------------------------------
    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except (serial.SerialException, OSError) as e:
            raise LinkLost(f"lost the serial link: {e}", _CABLE) from None
        self.tx += len(data)

    def _fill(self, wait: float, what: object) -> None:
        """Read what the port has (at least one byte within wait s) into the buffer."""
        deadline = time.monotonic() + wait
        while True:
            if time.monotonic() > deadline:
                tail = bytes(self._buf[-200:]).decode("utf-8", "replace")
                raise LinkLost(f"the device stopped answering (nothing for {wait:g} s while "
                               f"waiting for {what!r}; last output {tail!r})", _CABLE)
            try:
                got = self.port.read(max(1, min(self.port.in_waiting, 4096)))
            except (serial.SerialException, OSError) as e:
                raise LinkLost(f"lost the serial link: {e}", _CABLE) from None
            if got:
                self.rx += len(got)
                self._buf += got
                return

    def read_until(self, end: bytes, timeout: float | None = None,
                   tick: Callable[[int], None] | None = None) -> bytes:
        """Bytes up to and including `end`; what follows stays buffered.

        timeout: seconds of silence allowed (any byte restarts it). tick: called
        with the running count of TICK bytes seen, which are dropped.
        """
        wait = timeout or self.timeout
        ticks = 0
        while (i := self._buf.find(end)) < 0:
            if tick and TICK in self._buf:
                ticks += self._buf.count(TICK)
                self._buf[:] = self._buf.replace(TICK, b"")
                tick(ticks)
                continue
            self._fill(wait, end)
        out = bytes(self._buf[: i + len(end)])
        del self._buf[: i + len(end)]
        if tick and TICK in out:
            ticks += out.count(TICK)
            tick(ticks)
            out = out.replace(TICK, b"")
        return out

    def _read_n(self, n: int, timeout: float | None = None) -> bytes:
        wait = timeout or self.timeout
        while len(self._buf) < n:
            self._fill(wait, f"{n} bytes")
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    # -- session -------------------------------------------------------------
    def enter(self, soft_reset: bool = True) -> None:
        """Stop the running program and enter the raw REPL (fresh heap if soft_reset)."""
        # One Ctrl-C, then the prompt says the app stopped. A second one only if
        # none came (an app that caught the first): sent at once it would land in
        # the app's own clean-up. A node already in the raw REPL shows no prompt.
        # A node that is resetting (boot loop) can swallow it all: try again.
        for attempt in range(ENTER_TRIES):
            for _ in range(2):
                self.write(b"\r\x03")
                try:
                    self.read_until(b">>> ", 1.0)
                    break
                except LinkLost:
                    pass
            self.write(b"\r\x01")
            try:
                self.read_until(BANNER, 2.0)  # its '>' is left for exec()
                break
            except LinkLost:
                if attempt == ENTER_TRIES - 1:
                    raise
        if soft_reset:
            self.write(b"\x04")
            self.read_until(b"soft reboot\r\n")
            self.read_until(BANNER)

    def exit(self, soft_reset: bool = True) -> None:
        """Leave the raw REPL; a soft reset then starts main.py (the application)."""
        self.write(b"\r\x02")
        if soft_reset:
            self.read_until(b">>> ")
            self.write(b"\x04")

    def exec(self, code: str | bytes, timeout: float | None = None,
             feed: Iterable[bytes] = (), tick: Callable[[int], None] | None = None) -> str:
        """Run code on the device; return what it printed or raise DeviceError.

        timeout: seconds of silence allowed while it runs. feed: binary units for
        a program that reads them from stdin, each sent when the program asks
        with a 0x01 byte (see escape_units). tick: see read_until.
        """
        data = code.encode() if isinstance(code, str) else code
        self.read_until(b">")
        self.write(b"\x05A\x01")
        head = self._read_n(2)
        if head == b"R\x01":
            self._paste(data)
        else:  # a device without raw-paste: plain raw REPL, no flow control
            if head != b"R\x00":
                self.read_until(b">")
            self.write(data + b"\x04")
            self.read_until(b"OK")
        for unit in feed:
            # A unit takes milliseconds on a board (seconds when a write lands on
            # an emulated node's slow flash): a chattering node (it reset: power
            # cut, watchdog) ends the stream at once, a silent one after CREDIT_WAIT.
            got = self._read_n(1, CREDIT_WAIT)
            if got != b"\x01":  # output: a traceback ends promptly, a reboot never
                self._buf[:0] = got
                timeout = CREDIT_WAIT
                break
            self.write(unit)
        out = self.read_until(b"\x04", timeout, tick)[:-1]
        err = self.read_until(b"\x04", timeout)[:-1]
        if err:
            raise DeviceError("the device raised: " + err.decode("utf-8", "replace").strip())
        return out.decode("utf-8", "replace")

    def _paste(self, data: bytes) -> None:
        window = struct.unpack("<H", self._read_n(2))[0]
        remain = window
        i = 0
        while i < len(data):
            while remain == 0 or self._buf or self.port.in_waiting:
                b = self._read_n(1)
                if b == b"\x01":
                    remain += window
                elif b == b"\x04":  # the device ended the paste early (it hit an error)
                    self.write(b"\x04")
                    return
                else:
                    raise LinkLost(f"unexpected byte {b!r} during raw paste", _CABLE)
            chunk = data[i:i + remain]
            self.write(chunk)
            remain -= len(chunk)
            i += len(chunk)
        self.write(b"\x04")
        self.read_until(b"\x04")


# Binary units for a program reading stdin: on a board's UART only the
# interrupt character (Ctrl-C) is special while a program runs, and on the
# sim's PTY it becomes SIGINT, so it travels escaped: 0x03 -> ESC 0x01 and
# ESC -> ESC 0x02. Units are at most UNIT bytes after escaping, each behind a
# one-byte length that is never 3; the receiver holds one unit in flight, which
# fits the smallest stdin buffer of the ports (256 bytes on the ESP32).
ESC = 0x1B
UNIT = 250


def escape_units(data: bytes) -> list[bytes]:
    units: list[bytes] = []
    cur = bytearray()
    for b in data:
        enc = (ESC, 1) if b == 3 else (ESC, 2) if b == ESC else (b,)
        if len(cur) + len(enc) > UNIT:
            units.append(bytes(cur))
            cur.clear()
        cur.extend(enc)
    if cur:
        units.append(bytes(cur))
    out = []
    for u in units:
        if len(u) == 3:  # a length byte of 3 would be Ctrl-C: send 1-2 bytes twice
            cut = 2 if u[0] == ESC else 1
            out += [bytes([cut]) + u[:cut], bytes([3 - cut]) + u[cut:]]
        else:
            out.append(bytes([len(u)]) + u)
    return out


_CABLE = "check the USB cable and the node's power, then run the command again"
