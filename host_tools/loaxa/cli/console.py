"""loaxa console: send one service request to a node and print the answer."""

from __future__ import annotations

import argparse
import json

from ..console import NodeConsole
from . import add_port_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "console",
        help="send one console request (e.g. status) to a node",
        description="Send `@<id> COMMAND [JSON]` over the node's serial console and print "
        "the JSON answer. Example: loaxa console --port /dev/ttyUSB0 config.get",
    )
    add_port_args(p)
    p.add_argument("--pin", help="service PIN, for commands that change the node")
    p.add_argument("command", help="console command, e.g. status, log, config.set")
    p.add_argument("args", nargs="?", help="JSON object of arguments")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    body = json.loads(args.args) if args.args else None
    with NodeConsole(args.port, args.baud) as con:
        con.wait_ready(10)
        if args.pin:
            con.request("auth", {"pin": args.pin})
        print(json.dumps(con.request(args.command, body), indent=2, ensure_ascii=False))
    return 0
