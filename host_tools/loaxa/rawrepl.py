"""MicroPython's raw REPL and its raw-paste mode, over an open serial port.

The same protocol mpremote speaks (mpremote/transport_serial.py), kept here
because deploy needs two things mpremote does not give: byte counts of what
crossed the wire, and one session for many small programs. Raw-paste mode is
the device's own flow control: it grants a window of bytes and sends 0x01 for
each further window it has room for, so no byte is lost on a slow UART.
"""

from __future__ import annotations

import struct
import time

import serial

from .errors import LoaxaError

BANNER = b"raw REPL; CTRL-B to exit\r\n"


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

    def _fill(self, deadline: float, what: object) -> None:
        """Read what the port has (at least one byte) into the buffer."""
        while True:
            if time.monotonic() > deadline:
                tail = bytes(self._buf[-200:]).decode("utf-8", "replace")
                raise LinkLost(f"the device stopped answering (waited for {what!r}; "
                               f"last output {tail!r})", _CABLE)
            try:
                got = self.port.read(max(1, min(self.port.in_waiting, 4096)))
            except (serial.SerialException, OSError) as e:
                raise LinkLost(f"lost the serial link: {e}", _CABLE) from None
            if got:
                self.rx += len(got)
                self._buf += got
                return

    def read_until(self, end: bytes, timeout: float | None = None) -> bytes:
        """Bytes up to and including `end`; what follows stays buffered."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while (i := self._buf.find(end)) < 0:
            self._fill(deadline, end)
        out = bytes(self._buf[: i + len(end)])
        del self._buf[: i + len(end)]
        return out

    def _read_n(self, n: int) -> bytes:
        deadline = time.monotonic() + self.timeout
        while len(self._buf) < n:
            self._fill(deadline, f"{n} bytes")
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _drain(self, quiet: float = 0.15) -> None:
        """Read and drop output until the line is quiet for `quiet` s."""
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            got = self.port.read(max(1, self.port.in_waiting))
            if got:
                self.rx += len(got)
                last = time.monotonic()
        self._buf.clear()

    # -- session -------------------------------------------------------------
    def enter(self, soft_reset: bool = True) -> None:
        """Stop the running program and enter the raw REPL (fresh heap if soft_reset)."""
        self.write(b"\r\x03")
        time.sleep(0.1)
        self.write(b"\x03")
        self._drain()
        self.write(b"\r\x01")
        self.read_until(BANNER + b">")
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

    def exec(self, code: str | bytes, timeout: float | None = None) -> str:
        """Run code on the device; return what it printed or raise DeviceError."""
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
        out = self.read_until(b"\x04", timeout)[:-1]
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


_CABLE = "check the USB cable and the node's power, then run the command again"
