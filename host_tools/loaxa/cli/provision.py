"""loaxa provision: identity, network, broker, keys and PIN; then a self-test."""

from __future__ import annotations

import argparse
import json
import os

from loaxa_node.net.link import LINK_TYPES

from ..console import NodeConsole
from ..errors import LoaxaError
from ..i18n import t
from ..inventory import Inventory
from ..progress import Progress
from ..provision import Identity, provision, read_ca
from . import add_inventory_arg, add_port_args


def add_identity_args(p: argparse.ArgumentParser, single: bool = True,
                      required: bool = True) -> None:
    if single:
        p.add_argument("--node-id", required=required, help="node name, e.g. xa-an-binh-07")
    p.add_argument("--commune", required=required, help="commune id, e.g. an-binh")
    p.add_argument("--zones", required=required, help="comma-separated zones, e.g. thon-1,cho")
    p.add_argument("--net", required=required, choices=LINK_TYPES)
    p.add_argument("--ssid", default="", help="Wi-Fi network name (--net wifi)")
    p.add_argument("--wifi-password", default=os.environ.get("LOAXA_WIFI_PASSWORD", ""),
                   help="Wi-Fi password (or $LOAXA_WIFI_PASSWORD, kept out of shell history)")
    p.add_argument("--apn", default="", help="LTE access point name (--net lte)")
    p.add_argument("--broker", required=required, help="MQTT broker URL, e.g. mqtts://hq:8883")
    p.add_argument("--broker-ca", metavar="FILE",
                   help="the CA certificate (PEM or DER) an mqtts:// broker's certificate must "
                   "chain to; the node trusts that CA only")
    p.add_argument("--pin", default=os.environ.get("LOAXA_SERVICE_PIN"),
                   help="service PIN to set, 4-12 digits (or $LOAXA_SERVICE_PIN)")
    p.add_argument("--current-pin", help="the node's PIN if it was provisioned before")
    add_inventory_arg(p)


def identity(args: argparse.Namespace, node_id: str) -> Identity:
    missing = [f"--{k.replace('_', '-')}" for k in ("commune", "zones", "net", "broker")
               if not getattr(args, k)]
    if missing:
        raise LoaxaError(f"provisioning needs {', '.join(missing)}")
    if not args.pin:
        raise LoaxaError("no service PIN given", "pass --pin or set $LOAXA_SERVICE_PIN")
    return Identity(node_id=node_id, commune=args.commune,
                    zones=[z for z in args.zones.split(",") if z], net=args.net,
                    broker=args.broker, ssid=args.ssid, password=args.wifi_password,
                    apn=args.apn, broker_ca=read_ca(args.broker_ca) if args.broker_ca else b"")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "provision",
        help="give a node its identity, network, keys and PIN; self-test it",
        description="Write the node's identity, zones, network and broker, generate its "
        "keys (stored encrypted in the inventory, never shown), set the service PIN, "
        "play a test tone and read everything back.",
    )
    add_port_args(p)
    add_identity_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ident = identity(args, args.node_id)
    with NodeConsole(args.port, args.baud) as con, Inventory(args.inventory) as inv:
        back = provision(con, inv, ident, args.pin, args.current_pin,
                         report=Progress(args.port))
    print(t("provision.done", node=ident.node_id, port=args.port))
    print(json.dumps(back["config"], indent=2, ensure_ascii=False))
    return 0
