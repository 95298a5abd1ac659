"""loaxa flash: write a board's pinned MicroPython image."""

from __future__ import annotations

import argparse

from .. import boards
from ..flash import DEFAULT_BAUD, flash
from ..i18n import t
from ..inventory import Inventory
from ..progress import Progress
from . import add_inventory_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "flash",
        help="flash a board with its pinned MicroPython image",
        description="Write the MicroPython image that the board definition pins (checked "
        "by SHA-256) with esptool. A board that already holds the image is left as it is.",
    )
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--board", required=True, choices=boards.names(), help="board definition")
    p.add_argument("--image", help="image file (default: the pinned file from the image folders)")
    p.add_argument("--erase", action="store_true", help="erase the whole flash first "
                   "(also erases the node's data: config, keys, logs)")
    p.add_argument("--force", action="store_true",
                   help="flash an image whose SHA-256 is not the board's pin")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help=f"flashing baud rate (default {DEFAULT_BAUD}; 115200 on flaky cables)")
    p.add_argument("--verbose", action="store_true", help="show esptool's output")
    add_inventory_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    r = flash(args.port, boards.load(args.board), args.image, erase=args.erase,
              force=args.force, baud=args.baud, report=Progress(args.port),
              verbose=args.verbose)
    if r.mac:
        with Inventory(args.inventory) as inv:
            inv.flashed(r.mac, args.board, r.version)
    print(t("flash.done" if not r.skipped else "flash.same", port=r.port, chip=r.chip,
            mac=r.mac, version=r.version))
    return 0
