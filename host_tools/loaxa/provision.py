"""Give a node its identity, network, broker, keys, broker password and service
PIN, then self-test.

Two ways, one content: provision() goes over the console protocol (config.set,
keys.set, pin.set) to a running node; data_files() gives the same data files
for a factory image (`loaxa flash --factory`), written with the firmware in
one esptool pass. Keys are generated here, stored (encrypted) in the inventory
before they leave, and never printed. The config is validated first with the
node's own schema (loaxa_node.config), so a typo fails before anything is
written.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from loaxa_node import config
from loaxa_node.auth import _hash as pin_hash

from .console import NodeConsole
from .deploy import PTR
from .errors import LoaxaError, NodeError
from .flash import FlashResult, factory
from .inventory import Inventory
from .progress import Report


@dataclass
class Identity:
    node_id: str
    commune: str
    zones: list[str]
    net: str
    broker: str
    ssid: str = ""
    password: str = ""
    apn: str = ""
    broker_ca: bytes = b""  # DER; the node pins it for mqtts://

    def config(self) -> dict:
        cfg = {"node_id": self.node_id, "commune": self.commune, "zones": self.zones,
               "net.type": self.net, "broker.url": self.broker}
        if self.net == "wifi":
            cfg.update({"net.ssid": self.ssid, "net.password": self.password})
        elif self.net == "lte":
            cfg["net.apn"] = self.apn
        try:
            config.merged(config.defaults(), cfg)
        except config.ConfigError as e:
            raise LoaxaError(f"bad setting {e.key}: {e.msg}") from None
        if self.net == "wifi" and not self.ssid:
            raise LoaxaError("a Wi-Fi node needs --ssid (and --wifi-password)")
        return cfg


def read_ca(path: str) -> bytes:
    """A CA certificate file, PEM or DER, as the DER bytes the node pins."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise LoaxaError(f"cannot read the broker CA {path}: {e.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" in data:
        try:
            return ssl.PEM_cert_to_DER_cert(data.decode("ascii", "replace"))
        except ValueError:
            pass
    elif data[:2] == b"\x30\x82":
        return data
    raise LoaxaError(f"{path} is not a certificate (PEM or DER)",
                     "give the CA's certificate, e.g. the broker's ca.crt, not its key")


def _check_pin(pin: str) -> None:
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise LoaxaError("the service PIN must be 4-12 digits")


def data_files(inv: Inventory, ident: Identity, pin: str) -> tuple[dict, dict[str, bytes]]:
    """(config, files under data/) as config.set, keys.set and pin.set leave them.

    The node key is made and sealed in the inventory first. The PIN is stored
    only as the node stores it: a salted SHA-256 (loaxa_node.auth).
    """
    _check_pin(pin)
    cfg = ident.config()
    keys = {"node_key": inv.new_node_key(ident.node_id),  # its own: no shared key
            "mqtt_password": inv.new_mqtt_password(ident.node_id, "node", ident.commune)}
    salt = os.urandom(8)
    auth = {"salt": salt.hex(), "hash": pin_hash(salt, pin), "fails": 0}
    files = {"data/keys.json": json.dumps(keys).encode(),
             "data/auth.json": json.dumps(auth).encode()}
    if ident.broker_ca:
        files["data/ca.der"] = ident.broker_ca
    return cfg, files


def provision(con: NodeConsole, inv: Inventory, ident: Identity, pin: str,
              current_pin: str | None = None, board: str | None = None,
              report: Report | None = None, tone_s: float = 1.0) -> dict:
    """Provision the node on con; return what was read back (without secrets)."""
    step = report or (lambda label, frac, note: None)
    _check_pin(pin)
    cfg = ident.config()
    status = con.wait_ready(20)
    try:
        con.request("auth", {"pin": current_pin or pin})
    except NodeError as e:
        raise LoaxaError(f"the node refused the service PIN ({e.node_msg})",
                         "this node was provisioned before: give its PIN with "
                         "--current-pin, or factory-reset it") from None
    step("config", 0.2, "")
    con.request("config.set", cfg)
    step("keys", 0.4, "")
    # A new node key every time (re-provisioning rotates it); no key is shared
    # between nodes (docs/security.md). keys.set also drops an old node's
    # commune key from its flash. Its broker user is its node id, with a new
    # password each time: re-provisioning rotates that too.
    keys = {"node_key": inv.new_node_key(ident.node_id),
            "mqtt_password": inv.new_mqtt_password(ident.node_id, "node", ident.commune)}
    if ident.broker_ca:
        keys["broker_ca"] = base64.b64encode(ident.broker_ca).decode()
    con.request("keys.set", keys)
    step("pin", 0.5, "")
    con.request("pin.set", {"pin": pin})
    step("selftest", 0.6, "tone")
    con.request("tone", {"freq": 1000, "seconds": tone_s}, timeout=tone_s + 15)
    status = con.request("status")
    if status.get("safe_mode"):
        raise LoaxaError("the node runs in safe mode (it crashed on boot)",
                         "read its log: loaxa console --port PORT log")
    back = con.request("config.get", {"keys": sorted(cfg)})
    wrong = sorted(k for k, v in cfg.items()
                   if k not in config.SECRET and back.get(k) != v)
    if wrong or status.get("node_id") != ident.node_id:
        raise LoaxaError(f"the node did not keep {', '.join(wrong) or 'node_id'}",
                         "run provision again; if it repeats the node's flash may be failing")
    inv.record(ident.node_id, "provision", f"fw {status.get('fw')}", mac=status.get("uid"),
               board=board or status.get("board"), commune=ident.commune, zones=ident.zones,
               net=ident.net, broker=ident.broker)
    step("selftest", 1.0, "ok")
    return {"status": status, "config": back}


def factory_write(port: str, board: dict, inv: Inventory, ident: Identity, pin: str,
                  image: str | None = None, **esptool_opts) -> FlashResult:
    """Flash a bare board ready to run: firmware, app and provisioning in one write.

    The node boots into the app with the identity, keys and PIN that
    provision() would have given it; the inventory records it like provision.
    """
    from .image import node_files

    cfg, data = data_files(inv, ident, pin)
    files = node_files(board["name"], cfg, data)
    r = factory(port, board, files, image, **esptool_opts)
    inv.record(ident.node_id, "factory", f"fw {r.version}", mac=r.mac or None,
               board=board["name"], image_version=r.version, app=files[PTR].decode(),
               commune=ident.commune, zones=ident.zones, net=ident.net, broker=ident.broker)
    return r
