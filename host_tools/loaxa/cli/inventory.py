"""loaxa inventory: list or export the nodes the technician tools recorded."""

from __future__ import annotations

import argparse
import os
import sys
import time

from ..inventory import Inventory
from ..term import print_table
from . import add_inventory_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inventory", help="list or export recorded nodes",
                       description="Show the nodes recorded by flash/deploy/provision/batch.")
    add_inventory_arg(p)
    s = p.add_subparsers(dest="action", required=True)
    s.add_parser("list", help="one line per node")
    e = s.add_parser("export", help="all nodes as JSON or CSV")
    e.add_argument("--format", choices=("json", "csv"), default="json")
    e.add_argument("--with-keys", action="store_true",
                   help="include the keys in clear text (for the head-end); handle with care")
    e.add_argument("--output", "-o", help="file to write (default: stdout)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with Inventory(args.inventory) as inv:
        if args.action == "list":
            rows = [[n["node_id"], n["mac"] or "", n["board"] or "", n["image_version"] or "",
                     n["app"] or "", n["commune"] or "", ",".join(n["zones"]),
                     n["net"] or "", n["updated_by"] or "",
                     time.strftime("%Y-%m-%d %H:%M", time.localtime(n["updated_at"]))]
                    for n in inv.nodes()]
            print_table(["node", "mac", "board", "image", "app", "commune", "zones", "net",
                         "by", "when"], rows)
            return 0
        text = inv.export(args.format, args.with_keys)
    if args.output:
        fd = os.open(args.output, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))
    return 0

