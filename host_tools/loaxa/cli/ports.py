"""loaxa ports: list the USB-serial ports of ESP32 boards by stable name."""

from __future__ import annotations

import argparse

from ..ports import find
from ..term import print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ports", help="list ESP32 USB-serial ports (CP210x, CH34x, FTDI, "
                       "ESP32-S3 USB)",
                       description="Ports found by USB VID:PID, named by /dev/serial/by-path "
                       "(the hub socket) or by-id, so the names stay put across replugs.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = [[p.path, p.device, p.bridge, p.serial_number] for p in find()]
    if not rows:
        print("no ESP32 USB-serial port found")
        return 1
    print_table(["port", "device", "bridge", "serial"], rows)
    return 0
