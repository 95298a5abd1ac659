# Topics, subscriptions and the last will of the node's control plane, from
# its config (docs/control.md). Loaded when the control plane starts and when
# the node's identity or zones change.
import json

from .. import storage
from ..net.mqtt import Client
from .protocol import NODE_READS, STATUS, node_topic

CA_FILE = "ca.der"  # the one CA a TLS broker's certificate must chain to


def configure(ctl):
    cfg = ctl.node.cfg
    ctl.me = node_topic(cfg["topic_prefix"], cfg["commune"], cfg["node_id"])
    # Its own topics only: the head-end sends every node of a zone (or of the
    # commune) its own message, signed with its own key (docs/control.md).
    subs = [ctl.me + ch for ch in NODE_READS]
    will = (ctl.me + STATUS, json.dumps({"state": "offline", "node": cfg["node_id"]}),
            True, 1)
    # the broker knows the node by its id and the password provisioning gave it
    keys, _ = storage.read_json("keys.json", {})
    user, password = cfg["node_id"], keys.get("mqtt_password")
    c = ctl.client
    if c is not None and c.url == cfg["broker.url"]:
        c.subs, c.will, c.client_id = subs, will, "loaxa-" + cfg["node_id"]
        c.user, c.password = user, password
        c.drop("subscriptions changed", True)
        return
    if c is not None:
        c.deinit()
    try:
        with open(storage.path(CA_FILE), "rb") as f:
            ca = f.read()
    except OSError:
        ca = None
    ctl.client = Client(cfg["broker.url"], "loaxa-" + cfg["node_id"], ctl._msg, subs, will,
                        ca=ca, on_up=ctl._up, on_down=ctl._down,
                        link=getattr(ctl.node, "link", None), user=user, password=password,
                        on_refused=ctl._refused)
    if ctl._tasks:
        ctl._tasks[0] = ctl.client.start()
