# The console commands `play`, `stop` and `volume`. The node loads this module
# for a request and drops it afterwards (app.COMMANDS), and with it what the
# request imported: the stream's code (rtpsource.py and what it imports) stays
# alive only as long as a stream plays.
import gc

from .compat import unload
from .console import CmdError, arg

PRIORITIES = ("test", "normal", "priority", "emergency")  # DESIGN §6, lowest first


def _parse_session(obj):
    # The SDP parser is needed once per play: dropped at once so the stream's
    # long-lived objects do not land above it in the heap.
    from . import sdp
    try:
        return sdp.session(obj)
    finally:
        unload("sdp")


async def play(node, args):
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
    now = node.player.now
    if now and PRIORITIES.index(now.get("priority", "test")) > PRIORITIES.index(prio):
        raise CmdError("busy", "a %s broadcast is playing" % now.get("priority"))
    await node.player.stop()  # its source holds the arena until it ends
    # Long-lived stream objects go into the lowest free blocks, not between
    # the garbage of parsing: keeps the heap in one piece for the hours ahead.
    gc.collect()
    try:
        from .rtpsource import RtpSource
        src = RtpSource(sess, node.cfg["jitter_ms"], node.player.arena(), node.player.sink)
    except ValueError as e:
        raise CmdError("too_big", str(e))
    info = {"source": args.get("source") or sess.get("url") or "rtp://%s:%d" % (
        sess["addr"], sess["port"]), "priority": prio, "codec": sess["codec"],
        "rate": sess["rate"]}
    await node.player.play(src, vol, info)
    return {"playing": info, "volume": vol}


async def stop(node, args):
    if node.player is None or not node.player.playing():
        return {"stopped": False}
    await node.player.stop()
    return {"stopped": True}


def volume(node, args):
    v = arg(args, "volume", int, None, 0, 100)
    if node.player:
        node.player.set_volume(v)  # ramps: no step the listener hears
    return {"volume": v}
