# The console commands `play`, `stop` and `volume`. The stream itself
# (rtpsource.py and what it imports) loads on the first play, not at boot: a
# node that only idles keeps its heap.
import gc

from .compat import unload
from .console import CmdError

PRIORITIES = ("test", "normal", "priority", "emergency")  # DESIGN §6, lowest first


def _parse_session(obj):
    # The SDP parser is needed once per play: dropped again so it does not sit
    # in the heap for the whole broadcast.
    from . import sdp
    try:
        return sdp.session(obj)
    finally:
        unload("sdp")


def install(node):
    def play(args):
        from .service import _arg
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
        vol = _arg(args, "volume", int, node.cfg["volume"], 0, 100)
        now = node.player.now
        if now and PRIORITIES.index(now.get("priority", "test")) > PRIORITIES.index(prio):
            raise CmdError("busy", "a %s broadcast is playing" % now.get("priority"))
        return _start(sess, prio, vol, args.get("source"))

    async def _start(sess, prio, vol, source):
        await node.player.stop()  # its source holds the arena until it ends
        # Long-lived stream objects go into the lowest free blocks, not between
        # the garbage of parsing: keeps the heap in one piece for the hours ahead.
        gc.collect()
        try:
            from .rtpsource import RtpSource
            src = RtpSource(sess, node.cfg["jitter_ms"], node.player.arena(),
                            node.player.sink)
        except ValueError as e:
            raise CmdError("too_big", str(e))
        info = {"source": source or sess.get("url") or "rtp://%s:%d" % (sess["addr"],
                                                                      sess["port"]),
                "priority": prio, "codec": sess["codec"], "rate": sess["rate"]}
        await node.player.play(src, vol, info)
        return {"playing": info, "volume": vol}

    async def stop(args):
        if node.player is None or not node.player.playing():
            return {"stopped": False}
        await node.player.stop()
        return {"stopped": True}

    def volume(args):
        from .service import _arg
        v = _arg(args, "volume", int, None, 0, 100)
        if node.player:
            node.player.set_volume(v)  # ramps: no step the listener hears
        return {"volume": v}

    node.register("play", play, True)
    node.register("volume", volume, True)
    node.register("stop", stop, True)
