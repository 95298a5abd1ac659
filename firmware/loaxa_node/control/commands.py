# One message from the broker (docs/control.md): on the node's own topics
# only, the signed envelope is verified with the node's own key and must name
# this node (envelope.py), then the rule set or command acts and is
# acknowledged on the event topic. Anything else is refused, counted and
# reported; nothing unauthenticated acts. Loaded per message.
import json

from .. import envelope, log, storage
from ..compat import unload, uses
from ..console import CmdError
from .plane import again_if_short
from .protocol import NODE_READS

# command: (handler "module.function" called as fn(node, args) like the
# console's app.COMMANDS, body fields besides "cmd")
COMMANDS = {
    "play": ("control.play.play", ("session", "priority", "kind", "zones", "until",
                                       "volume", "bulletin", "title", "source")),
    "stop": ("control.play.stop", ("bulletin", "priority")),
    "volume": ("control.commands.volume", ("volume",)),
    "tone": ("control.system.tone", ("freq", "seconds", "volume")),
    "emergency": ("control.play.emergency", ("action", "session", "tone", "until",
                                            "volume", "bulletin", "title", "source")),
    "time": ("control.commands.time_hint", ()),
    "reboot": ("control.system.reboot", ()),
    "config": ("control.system.config_set", ("set",)),
}


def _channel(ctl, topic):
    """'cmd' or 'rules' for the node's own topics, else None: a node listens
    to nothing else (no zone or commune-wide topic, no shared key)."""
    if topic.startswith(ctl.me):
        ch = topic[len(ctl.me):]
        if ch in NODE_READS:
            return ch
    return None


async def handle(ctl, topic, payload, retained):
    env = None
    try:
        topic = topic.decode()
    except UnicodeError:
        topic = repr(topic)
    try:
        ch = _channel(ctl, topic)
        if ch is None:
            raise CmdError("bad_topic", "not a topic this node listens to")
        try:
            env = json.loads(payload)
        except Exception:  # ValueError, UnicodeError: any bytes may arrive
            raise CmdError("bad_json", "payload is not JSON")
        keys, _ = storage.read_json("keys.json", {})
        if keys.pop("commune_key", None) is not None:  # an old node's: off its flash
            storage.write_json("keys.json", keys)
        if "node_key" not in keys:
            raise CmdError("no_key", "no node_key on this node: provision one with keys.set")
        key = envelope.key_bytes(keys["node_key"])
        if ch == "rules":
            await _rules(ctl, env, key, retained)
        else:
            await _command(ctl, env, key)
    except (CmdError, envelope.EnvelopeError) as e:
        ctl.refuse(e.code, e.msg, topic, env, getattr(e, "reason", None))


async def _rules(ctl, env, key, retained):
    rs = ctl.node.rules
    if rs is None:
        raise CmdError("safe_mode", "no rules in safe mode")
    if retained and isinstance(env, dict):
        s = env.get("seq")
        if isinstance(s, int) and s <= rs.seq.get(env.get("from"), 0):
            return  # the retained rules in force (or older ones), seen again on reconnect
    from ..rules import commands as rulecmd
    info = rulecmd.accept(ctl.node, env, key)
    ctl.ok += 1
    ctl.event("rules", {"version": info["version"], "seq": env["seq"], "from": env["from"]})


async def _command(ctl, env, key):
    node = ctl.node
    sender = env.get("from") if isinstance(env, dict) else None
    last = ctl.seq.get(sender, 0) if isinstance(sender, str) else 0
    clock = node.clock
    trusted = clock.trusted()
    body = envelope.open_(env, key, "cmd", node.cfg["node_id"], last,
                          clock.now() if trusted else None)
    unload("envelope")  # verified: its RAM goes to what the command loads
    name = body.get("cmd")
    if name not in COMMANDS:
        raise CmdError("unknown_command", "unknown command %r; known: %s" % (
            name, " ".join(sorted(COMMANDS))))
    handler, fields = COMMANDS[name]
    for k in body:
        if k != "cmd" and k not in fields:
            raise CmdError("bad_args", "%s: unknown field %r; allowed: %s" % (
                name, k, ", ".join(fields)))
    # Stored before it acts: after a power cut a replay of it is still stale.
    seq = dict(ctl.seq)
    seq[sender] = env["seq"]
    storage.write_json("cmdseq.json", seq)
    ctl.seq = seq
    args = dict(body)
    del args["cmd"]
    zones = args.pop("zones", None)
    if zones is not None:
        if not isinstance(zones, list):
            raise CmdError("bad_args", "zones must be a list of zone names")
        if not any(z in node.cfg["zones"] for z in zones):
            log.debug("mqtt: %s for zones %s: not ours" % (name, zones))
            return
    if name == "config":
        ch = args.get("set")
        if not isinstance(ch, dict):
            raise CmdError("bad_args", "config: set must be an object of key: value")
        args = ch
    elif name == "play":
        args.setdefault("kind", "live")  # the head-end's plays are the rules' to govern
    elif name == "time":
        args = {"ts": env["ts"]}
    mod, _, fn = handler.rpartition(".")

    async def act():
        with uses(mod) as m:
            r = getattr(m, fn)(node, args)
            if hasattr(r, "send"):  # coroutine
                r = await r
        return r
    # Tried again here, not from the top: its sequence is spent (stored above).
    try:
        r = await again_if_short(act)
    except MemoryError:
        raise CmdError("no_memory", "%s not done: the node's heap stayed short" % name)
    ctl.ok += 1
    ctl.event("ack", {"seq": env["seq"], "from": sender, "cmd": name, "result": r})


def time_hint(node, args):
    """The signed envelope's time sets a clock that has none it trusts."""
    c = node.clock
    if c.trusted():
        return {"set": False}
    c.set(args["ts"], 0, "headend")
    log.info("clock set from the head-end's signed time")
    return {"set": True}


def volume(node, args):
    """The head-end sets the node's volume: it ramps what plays (as the
    console's `volume`) and stays the default for new plays, reboots too."""
    from .play import volume as ramp
    from .system import config_set
    r = ramp(node, args)
    now = node.player.now if node.player else None
    if now is not None and "kind" in now:
        now["asked"] = r["volume"]  # the scheduler's next pass keeps it (within the rules)
    config_set(node, {"volume": r["volume"]})
    return r
