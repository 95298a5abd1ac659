# The commands `play`, `stop`, `volume` (console and MQTT) and `emergency`
# (MQTT, docs/control.md). The node loads this module for a request and drops
# it afterwards (app.COMMANDS), and with it what the request imported: the
# stream's code (audio/stream.py and what it imports) stays alive only as long
# as a stream plays.
from ..compat import detached
from ..console import CmdError, arg
from .protocol import PLAY_KINDS, PRIORITIES

MAX_SIREN_S = 600  # an emergency tone without `until`


def _parse_session(obj):
    # The SDP parser is needed once per play: dropped at once so the stream's
    # long-lived objects do not land above it in the heap.
    return detached(_session, obj)


def _session(obj):
    from ..audio import sdp
    return sdp.session(obj)


# Fields a play request may carry besides the session (docs/control.md).
LABELS = ("bulletin", "title", "source")


async def play(node, args):
    """Console `play`, and the body of an MQTT play command: arbitration
    (arbiter.py) decides; with `kind` the rules do too."""
    if node.player is None:
        raise CmdError("safe_mode", "audio is off in safe mode")
    sess = args.get("session")
    if isinstance(sess, str):
        sess = {"sdp": sess}
    try:
        sess = _parse_session(sess)
    except ValueError as e:
        raise CmdError("bad_session", str(e))
    prio = args.get("priority", "normal")
    if prio not in PRIORITIES:
        raise CmdError("bad_args", "priority must be one of " + ", ".join(PRIORITIES))
    vol = arg(args, "volume", int, node.cfg["volume"], 0, 100)
    _check_labels(args)
    info = {"source": args.get("source") or sess.get("url") or "rtp://%s:%d" % (
        sess["addr"], sess["port"]), "priority": prio, "codec": sess["codec"],
        "rate": sess["rate"]}
    for k in LABELS + ("kind", "until"):
        if args.get(k) is not None:
            info[k] = args[k]
    from ..audio.player import stream_maker
    from .arbiter import play as arbitrate
    # a file (the head-end's /file/NAME) ends with its response, as a
    # schedule item's does (rules/service.py); live and relay streams rejoin
    make = stream_maker(sess, node.cfg["jitter_ms"], node.player,
                        once=args.get("kind") == "file")
    vol = await arbitrate(node, info, make, vol)
    return {"playing": info, "volume": vol}


def _check_labels(args):
    k = args.get("kind")
    if k is not None and k not in PLAY_KINDS:  # with a kind the rules govern a play
        raise CmdError("bad_args", "kind must be one of " + ", ".join(PLAY_KINDS))
    u = args.get("until")
    if u is not None and (not isinstance(u, int) or isinstance(u, bool)):
        raise CmdError("bad_args", "until must be t2k seconds (an integer)")


async def stop(node, args):
    """Fade out what plays; with `bulletin` only that one, with `priority`
    only at or below it. A held (preempted) broadcast it covers is dropped."""
    from .arbiter import drop_held, rank
    b = args.get("bulletin")
    pr = args.get("priority")

    def covers(info):
        return (b is None or info.get("bulletin") == b) and (
            pr is None or rank(info) <= rank({"priority": pr}))
    drop_held(node, covers)
    p = node.player
    if p is None or p.now is None or not covers(p.now):
        return {"stopped": False}
    await p.stop()
    return {"stopped": True}


async def emergency(node, args):
    """{"action": "start", "session" | "tone": Hz, ...} or {"action": "stop"}:
    an emergency broadcast, at the rules' emergency volume, at any hour."""
    act = args.get("action")
    p = node.player
    if act == "stop":
        if p is not None and p.now is not None and p.now.get("priority") == "emergency":
            await p.stop()  # what it preempted resumes (arbiter.py)
            return {"stopped": True}
        return {"stopped": False}
    if act != "start":
        raise CmdError("bad_args", "action must be start or stop")
    if p is None:
        raise CmdError("safe_mode", "audio is off in safe mode")
    args = dict(args)
    del args["action"]
    args["priority"] = "emergency"
    args["kind"] = "live"
    if "session" in args:
        if "tone" in args:
            raise CmdError("bad_args", "give session or tone, not both")
        return await play(node, args)
    _check_labels(args)
    freq = arg(args, "tone", int, 880, 50, 8000)
    until = args.get("until")
    secs = MAX_SIREN_S if until is None else max(1, until - node.clock.now())
    info = {"source": args.get("source") or "tone:%d" % freq, "priority": "emergency",
            "kind": "live", "codec": "sine"}
    for k in LABELS[:2] + ("until",):
        if args.get(k) is not None:
            info[k] = args[k]
    from ..audio.player import tone_maker
    from .arbiter import play as arbitrate
    vol = await arbitrate(node, info, tone_maker(freq, secs),
                          arg(args, "volume", int, node.cfg["volume"], 0, 100))
    return {"playing": info, "volume": vol}


def volume(node, args):
    v = arg(args, "volume", int, None, 0, 100)
    if node.player:
        node.player.set_volume(v)  # ramps: no step the listener hears
    return {"volume": v}
