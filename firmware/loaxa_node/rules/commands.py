# Console commands of the rules (docs/console.md): rules.get, rules.set
# (signed envelope only) and rules.eval, on the node's RulesService. The node
# loads this module for a request and drops it afterwards (app.COMMANDS).
from .. import log, storage, timeutil
from ..console import CmdError
from . import engine as rules


def get(node, args):
    svc = node.rules
    out = svc.info()
    out["rules"] = svc.R
    out["senders"] = svc.seq
    return out


def set_(node, args):
    keys, _ = storage.read_json("keys.json", {})
    if "node_key" not in keys:
        raise CmdError("no_key", "no node key on this node: provision one with keys.set")
    from .. import envelope
    return accept(node, args, envelope.key_bytes(keys["node_key"]))


def accept(node, env, key):
    """Put the rule set in the signed envelope env into force, or raise
    CmdError and keep the rules in force. Console and MQTT (control/commands.py) alike."""
    svc = node.rules
    from .. import envelope
    from .check import check
    sender = env.get("from") if isinstance(env, dict) else None
    try:
        body = envelope.open_(env, key, "rules", node.cfg["node_id"],
                              svc.seq.get(sender, 0) if isinstance(sender, str) else 0)
        check(body)
    except envelope.EnvelopeError as e:
        log.warn("rules refused: " + e.msg)
        raise CmdError(e.code, e.msg + "; the rules in force stay")
    except rules.RulesError as e:
        log.warn("rules refused: %s" % e)
        raise CmdError("bad_rules", "%s; the rules in force stay" % e)
    seq = dict(svc.seq)
    seq[sender] = env["seq"]
    # one atomic write (storage.py): a power cut leaves the old or the new set
    storage.write_json("rules.json", {"rules": body, "seq": seq})
    svc.R, svc.seq = body, seq
    log.info("rules %s from %s (seq %d) in force" % (body.get("ver", ""), sender,
                                                      env["seq"]))
    svc.poke()
    return svc.info()


def eval_(node, args):
    svc = node.rules
    clock = svc.node.clock
    at = args.get("at")
    if at is None:
        now = clock.now()
    elif isinstance(at, str):
        try:
            now = timeutil.parse_iso(at)
        except ValueError as e:
            raise CmdError("bad_args", str(e))
    else:
        raise CmdError("bad_args", 'at must look like "2026-11-23T05:30:00+07:00"')
    req = {"priority": args.get("priority", "normal"), "kind": args.get("kind", "live"),
           "zones": args.get("zones", svc.zones()), "volume": args.get("volume")}
    try:
        d = rules.evaluate(svc.R, now, req, svc.used(clock.now()), clock.trusted())
    except rules.RulesError as e:
        raise CmdError("bad_args", str(e))
    tz = svc.R.get(rules.TZ, timeutil.TZ_MIN)
    d["at"] = timeutil.iso(now, tz)
    d["until"] = None if d["until"] is None else timeutil.iso(d["until"], tz)
    d["window"] = rules.current(svc.R, now, req["zones"])["window"]
    d["trusted"] = clock.trusted()
    return d
