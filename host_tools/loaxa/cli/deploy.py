"""loaxa deploy: install or update the node application over the serial console."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..appbuild import APP_SRC
from ..console import NodeConsole
from ..deploy import deploy
from ..i18n import t
from ..inventory import Inventory
from ..progress import Progress
from . import add_inventory_arg, add_port_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy",
        help="install the application on a node (only what changed)",
        description="Compile the application for the node's MicroPython, send only the "
        "files that changed, verify them on the node, then switch to the new version "
        "atomically and restart the application.",
    )
    add_port_args(p)
    p.add_argument("--verify", action="store_true",
                   help="re-hash every file of an app that is already current")
    p.add_argument("--src", type=Path, default=APP_SRC, help=argparse.SUPPRESS)
    add_inventory_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with NodeConsole(args.port, args.baud) as con:
        r = deploy(con, args.src, Progress(args.port), verify=args.verify)
        status = con.wait_ready(30)
    if status.get("node_id", "unset") != "unset":
        with Inventory(args.inventory) as inv:
            inv.record(status["node_id"], "deploy", f"{r.sent} files sent", app=r.app,
                       mac=status.get("uid"))
    key = "deploy.same" if r.unchanged else "deploy.done"
    print(t(key, port=args.port, app=r.app, sent=r.sent, files=r.files, kb=r.tx / 1024,
            s=r.seconds))
    return 0
