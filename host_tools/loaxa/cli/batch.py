"""loaxa batch: flash, deploy and provision many boards in parallel."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import boards
from ..appbuild import APP_SRC
from ..batch import FACTORY_STEPS, STEPS, Job, run_batch
from ..errors import LoaxaError
from ..flash import DEFAULT_BAUD
from ..i18n import t
from ..ports import find
from ..term import print_table
from .provision import add_identity_args, identity


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="flash + deploy + provision many boards at once",
        description="One worker per port runs flash, deploy and provision; prints a table "
        "at the end and exits non-zero if any board failed.",
    )
    p.add_argument("--ports", required=True,
                   help="auto (every ESP32 USB-serial port found) or P1,P2,...; "
                   "FLASH=CONSOLE pairs where the two differ")
    p.add_argument("--board", required=True, choices=boards.names())
    p.add_argument("--image", help="image file (default: the board's pinned image)")
    p.add_argument("--force", action="store_true", help="flash an image that is not the pin")
    p.add_argument("--node-ids", help="comma-separated ids, one per port in order")
    p.add_argument("--id-prefix", help="ids made of this prefix + the last 6 MAC digits")
    p.add_argument("--factory", action="store_true",
                   help="one write per board of firmware + app + provisioning (loaxa flash "
                   "--factory), then check the booted node's status; replaces the steps")
    p.add_argument("--steps", default=None,
                   help="which of flash,deploy,provision to run (default all; with --factory: "
                   "factory,check)")
    p.add_argument("--baud", type=int, default=115200, help="console baud rate")
    p.add_argument("--flash-baud", type=int, default=DEFAULT_BAUD)
    p.add_argument("--src", type=Path, default=APP_SRC, help=argparse.SUPPRESS)
    add_identity_args(p, single=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.ports == "auto":
        jobs = [Job(port=p.path, flash_port=p.path) for p in find()]
        if not jobs:
            raise LoaxaError("no ESP32 USB-serial port found",
                             "plug the boards in (data cable) and run loaxa ports")
    else:
        jobs = [Job.parse(s) for s in args.ports.split(",") if s]
    known = FACTORY_STEPS if args.factory else STEPS
    steps = tuple(s for s in (args.steps or ",".join(known)).split(",") if s)
    if set(steps) - set(known):
        raise LoaxaError(f"unknown step in --steps {args.steps}", f"steps are {known}")
    if args.node_ids:
        ids = args.node_ids.split(",")
        if len(ids) != len(jobs):
            raise LoaxaError(f"{len(ids)} node ids for {len(jobs)} ports",
                             "give one id per port, in the same order")
        for j, i in zip(jobs, ids, strict=True):
            j.node_id = i
    elif not args.id_prefix and ("provision" in steps or args.factory):
        raise LoaxaError("no node ids", "give --node-ids or --id-prefix")
    ident = identity(args, "")
    run_batch(jobs, board=boards.load(args.board), ident=ident, pin=args.pin,
              id_prefix=args.id_prefix or "", inventory=args.inventory, image=args.image,
              force=args.force, steps=steps, src=args.src, baud=args.baud,
              flash_baud=args.flash_baud)
    rows = [[j.port, j.node_id, j.mac, j.app, "ok" if j.ok else "FAILED", f"{j.seconds:.0f}s",
             j.error + (f" ({j.hint})" if j.hint else "")] for j in jobs]
    print_table(["port", "node", "mac", "app", "result", "time", "error"], rows)
    failed = sum(1 for j in jobs if not j.ok)
    print(t("batch.summary", ok=len(jobs) - failed, n=len(jobs)))
    return 1 if failed else 0
