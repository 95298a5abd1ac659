"""Give a node its identity, network, broker, keys and service PIN, then self-test.

Everything goes over the console protocol (config.set, keys.set, pin.set).
Keys are generated here, stored (encrypted) in the inventory before they are
sent, and never printed. The config is validated first with the node's own
schema (loaxa_node.config), so a typo fails before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from loaxa_node import config

from .console import NodeConsole
from .errors import LoaxaError, NodeError
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


def _check_pin(pin: str) -> None:
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise LoaxaError("the service PIN must be 4-12 digits")


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
    node_key = inv.new_node_key(ident.node_id)
    commune_key = inv.commune_key(ident.commune)
    con.request("keys.set", {"node_key": node_key, "commune_key": commune_key})
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
