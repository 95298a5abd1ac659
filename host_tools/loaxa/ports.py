"""Find the USB-serial ports of ESP32 boards and name them by a stable path.

/dev/ttyUSB3 may be another board after a replug; /dev/serial/by-path names
the hub socket (so slot 3 stays slot 3 with identical boards) and by-id the
adapter's serial number. Prefer by-path, then by-id, then the kernel name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from serial.tools import list_ports

from .errors import LoaxaError
from .i18n import t

# USB bridges found on ESP32 boards: (vid, pid) -> name
BRIDGES = {
    (0x10C4, 0xEA60): "CP210x",
    (0x1A86, 0x7523): "CH340",
    (0x1A86, 0x55D4): "CH9102",
    (0x0403, 0x6001): "FT232R",
    (0x0403, 0x6010): "FT2232",
    (0x0403, 0x6015): "FT231X",
    (0x303A, 0x1001): "ESP32-S3 USB",
}
STABLE_DIRS = (Path("/dev/serial/by-path"), Path("/dev/serial/by-id"))


@dataclass
class Port:
    path: str  # stable name to pass to --port
    device: str
    bridge: str
    serial_number: str


def _stable_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for d in reversed(STABLE_DIRS):  # by-path last, so it wins
        if d.is_dir():
            for link in sorted(d.iterdir()):
                names[os.path.realpath(link)] = str(link)
    return names


def find() -> list[Port]:
    stable = _stable_names()
    found = []
    for p in list_ports.comports():
        bridge = BRIDGES.get((p.vid, p.pid)) if p.vid is not None else None
        if bridge:
            dev = os.path.realpath(p.device)
            found.append(Port(stable.get(dev, p.device), p.device, bridge, p.serial_number or ""))
    return sorted(found, key=lambda p: p.path)


def auto(port: str | None) -> str:
    """--port as given, or the one ESP32 board plugged in."""
    if port:
        return port
    found = find()
    if len(found) == 1:
        return found[0].path
    if not found:
        raise LoaxaError(t("ports.none"), t("ports.none_hint"))
    raise LoaxaError(t("ports.many", n=len(found)),
                     t("ports.many_hint", ports=", ".join(p.path for p in found)))
