# Who plays (docs/control.md, "Arbitration"): one broadcast at a time; a
# higher priority preempts a lower one with a fade, the same priority goes to
# the newer request, a lower one is refused. The preempted broadcast is held
# and resumes when the preempting one ends if its `until` and the rules still
# allow it, else it is logged as cut short. Every request that plays passes
# here: console play and tone, MQTT commands.
#
# Loaded for a request or a playback's end only; its state lives in node.arb
# (app.Arb).
import asyncio
import gc

from .. import log
from ..compat import detached
from ..console import CmdError
from .protocol import PRIORITIES  # lowest first: the rank


def rank(info):
    p = info.get("priority", "test")
    return PRIORITIES.index(p) if p in PRIORITIES else 0


async def play(node, info, make, volume):
    """Play make() (a fresh source) with info (status and log fields:
    priority, source; with `kind` the rules govern it; `until` t2k stops it).
    Returns the volume; raises CmdError when it may not play."""
    a = node.arb
    cur = node.player.now
    if cur is not None and rank(cur) > rank(info):
        raise CmdError("busy", "a %s broadcast is playing" % cur.get("priority"))
    if "kind" in info:
        info["asked"] = volume  # what the scheduler's passes re-level it from
    volume = allowed(node, info, volume)
    until = info.get("until")
    if until is not None and until <= node.clock.now():
        raise CmdError("bad_args", "until is in the past")
    if cur is not None:
        if rank(cur) < rank(info):
            cur["outcome"] = "preempted"
            if cur is a.cur:
                _hold(node, (cur, a.make, a.vol))
        else:
            cur["outcome"] = "replaced"
    await _start(node, info, make, volume)
    return volume


async def _start(node, info, make, volume):
    p = node.player
    a = node.arb
    await p.stop()  # fades out; the old source gives the arena back
    info.pop("outcome", None)
    info["start"] = node.clock.now() if node.clock.trusted() else None
    gc.collect()  # long-lived stream objects go into the lowest free blocks
    try:
        src = detached(make)  # what it imports lives on in the source only
    except ValueError as e:
        raise CmdError("too_big", str(e))
    a.cur, a.make, a.vol = info, make, volume
    await p.play(src, volume, info)
    if "kind" in info and node.rules is not None:
        node.rules.started(info)  # the rules' limits count it
    if a.timer:
        a.timer.cancel()
        a.timer = None
    if info.get("until") is not None:
        a.timer = asyncio.create_task(_stop_at(node, info, info["until"]))


def allowed(node, info, volume):
    """The volume the rules give a rule-governed request (one with a `kind`);
    CmdError not_allowed, carrying the rules' reason, if they refuse."""
    rs = node.rules
    if "kind" not in info or rs is None:
        return volume
    from ..rules import engine as rules
    clock = node.clock
    now = clock.now()
    d = rules.evaluate(rs.R, now, {"priority": info["priority"], "kind": info["kind"],
                                   "zones": rs.zones(), "volume": volume},
                       rs.used(now), clock.trusted())
    if not d["allow"]:
        e = CmdError("not_allowed", "the rules do not allow it now")
        e.reason = d["reason"]  # type: ignore[attr-defined]
        raise e
    return d["volume"]


def _hold(node, held):
    if node.arb.held is not None:
        cut_short(node, node.arb.held[0], {"code": "preempted_again"})
    node.arb.held = held


def cut_short(node, info, reason):
    log.info("cut short: %s" % info.get("source"))
    if node.control:
        node.control.event("cut_short", {
            "bulletin": info.get("bulletin"), "title": info.get("title"),
            "priority": info.get("priority"), "source": info.get("source"), "reason": reason})


def drop_held(node, match):
    """Forget the held broadcast if match(info) (a stop that covers it)."""
    h = node.arb.held
    if h is not None and match(h[0]):
        node.arb.held = None
        cut_short(node, h[0], {"code": "stopped"})


async def _stop_at(node, info, until):
    # its own task: holds this module's code until the broadcast ends
    while node.player.now is info:
        left = until - node.clock.now()
        if left <= 0:
            await node.player.stop()
            return
        await asyncio.sleep(min(left, 30))  # clock syncs may move time


async def ended(node, info, outcome, stats, ms):
    """A playback ended (Node._play_ended): log it, then resume what it
    preempted, or let the scheduler restart a preempted item."""
    a = node.arb
    if node.control:
        node.control.event("play", {
            "bulletin": info.get("bulletin"), "title": info.get("title"),
            "priority": info.get("priority"), "kind": info.get("kind"),
            "source": info.get("source"), "start": info.get("start"), "duration_ms": ms,
            "volume": info.get("volume", node.player.volume), "outcome": outcome,
            "underruns": stats.get("underruns", 0) if stats else 0})
    if info is a.cur and node.player.now is None:
        a.cur = a.make = None
    if outcome in ("preempted", "replaced"):
        if outcome == "preempted" and info.get("item") and node.rules is not None:
            node.rules.forget(info["item"])  # restarted if its slot still runs
        return
    h = a.held
    if h is None or node.player.now is not None:
        if node.rules is not None:
            node.rules.poke()
        return
    a.held = None
    info, make, vol = h
    until = info.get("until")
    if until is not None and until <= node.clock.now():
        cut_short(node, info, {"code": "until_passed"})
        return
    try:
        vol = allowed(node, info, vol)
        info["resumed"] = info.get("resumed", 0) + 1
        log.info("resume %s" % info.get("source"))
        await _start(node, info, make, vol)
    except CmdError as e:
        cut_short(node, info, getattr(e, "reason", {"code": e.code}))
