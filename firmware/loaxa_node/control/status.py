# The node's retained status document (docs/control.md, "Status"): the fields
# the provincial source information systems collect, plus our counters.
# Loaded for each heartbeat only.
import gc

from .. import VERSION


def _brief(info):
    if info is None:
        return None
    out = {}
    for k in ("source", "priority", "bulletin", "title", "codec"):
        if k in info:
            out[k] = info[k]
    return out


def status(ctl):
    node = ctl.node
    cfg = node.cfg
    p = node.player
    now = p.now if p else None
    held = node.arb.held
    held = held[0] if held else None
    c = ctl.client
    clock = node.clock
    return {
        "state": "online", "node": cfg["node_id"], "fw": VERSION,
        "board": node.board.get("name"), "uid": node.hal.unique_id(),
        "commune": cfg["commune"], "zones": cfg["zones"], "location": cfg["location"],
        "uptime_s": node.uptime_s(),
        "volume": p.volume if now else cfg["volume"],
        "play": "playing" if now else ("paused" if held else "stopped"),
        "playing": _brief(now), "held": _brief(held),
        "net": node.link.info(),
        "temperature": node.hal.temperature(),
        "amp_fault": node.hal.amp_fault() or False,
        "rules": node.rules.R.get("ver", "") if node.rules else None,
        "clock_synced": clock.trusted(),
        "t": clock.now() if clock.trusted() else None,
        "counters": {"cmd_ok": ctl.ok, "cmd_refused": ctl.refused,
                     "mqtt_oversized": c.oversized, "mqtt_malformed": c.malformed,
                     "reconnects": max(0, c.connects - 1), "queued_events": ctl._qn,
                     "dropped_events": ctl.dropped,
                     "underruns": p.sink.underruns if p else 0,
                     "heap_free": gc.mem_free()},
    }
