"""loaxa flash: write a board's pinned MicroPython image (--factory: with app and provisioning)."""

from __future__ import annotations

import argparse

from .. import boards
from ..errors import LoaxaError
from ..flash import DEFAULT_BAUD, flash
from ..i18n import t
from ..inventory import Inventory
from ..progress import Progress
from ..provision import factory_write
from .provision import add_identity_args, identity


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
    p.add_argument("--factory", action="store_true",
                   help="one write of firmware + app + provisioning (identity, keys, PIN, "
                   "network, config): the board boots ready; needs the provision options")
    p.add_argument("--no-stub", action="store_true",
                   help="talk to the ROM loader directly (QEMU in download mode)")
    p.add_argument("--no-reset", action="store_true",
                   help="the board is already in download mode: no DTR/RTS reset "
                   "before or after")
    add_identity_args(p, required=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    opts = {"force": args.force, "baud": args.baud, "report": Progress(args.port),
            "verbose": args.verbose, "stub": not args.no_stub, "reset": not args.no_reset}
    if args.factory:
        if args.erase:
            raise LoaxaError("--factory rewrites the filesystem already; drop --erase")
        if not args.node_id:
            raise LoaxaError("--factory needs --node-id")
        ident = identity(args, args.node_id)
        with Inventory(args.inventory) as inv:
            r = factory_write(args.port, boards.load(args.board), inv, ident, args.pin,
                              args.image, **opts)
        print(t("flash.factory", port=r.port, node=ident.node_id, mac=r.mac,
                version=r.version))
        return 0
    r = flash(args.port, boards.load(args.board), args.image, erase=args.erase, **opts)
    if r.mac:
        with Inventory(args.inventory) as inv:
            inv.flashed(r.mac, args.board, r.version)
    print(t("flash.done" if not r.skipped else "flash.same", port=r.port, chip=r.chip,
            mac=r.mac, version=r.version))
    return 0
