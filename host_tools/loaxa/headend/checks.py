"""What the head-end believes of what nodes send (docs/headend.md, "What nodes
send is checked"): every status and event is checked here before the store
keeps it, and again when it is read back (rows an older head-end stored
unchecked), so pages, the map and the report only ever see checked documents.

A check answers (the document as it will be kept, None) or (None, reason):
only the fields of docs/control.md are kept, each of its type and within its
range and length; unknown fields are left out. A reason is a short phrase
from a fixed set (a field's name and what it should be), so counting them per
reason stays bounded whatever arrives.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from loaxa_node.control.protocol import KINDS, PRIORITIES

MAX_DOC = 4096  # bytes of one status or event: the node's are well under 1 KB
MAX_ANY = 1024  # bytes of a free-form field (an ack's result, a refusal's reason)
INT32 = 2**31 - 1
INT63 = 2**63 - 1
T2K_MAX = 2**32  # seconds since 2000: year 2136

Check = Callable[[Any], str | None]  # None: fits; else what it should be


def _str(n: int) -> Check:
    def c(v: Any) -> str | None:
        return None if isinstance(v, str) and len(v) <= n else f"a text of at most {n} chars"
    return c


def _int(lo: int, hi: int) -> Check:
    def c(v: Any) -> str | None:
        ok = isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
        return None if ok else f"an integer {lo}..{hi}"
    return c


def _num(lo: float, hi: float) -> Check:
    def c(v: Any) -> str | None:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) \
            and lo <= v <= hi
        return None if ok else f"a number {lo:g}..{hi:g}"
    return c


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _one_of(*values: str) -> Check:
    def c(v: Any) -> str | None:
        return None if v in values and isinstance(v, str) else "one of " + "|".join(values)
    return c


def _scalar(v: Any) -> str | None:
    """A short text, a number or a truth value (a reset cause, a link's details)."""
    if isinstance(v, bool) or (isinstance(v, int) and abs(v) <= INT63):
        return None
    if isinstance(v, float) and math.isfinite(v):
        return None
    return _str(200)(v) and "a short text, number or true/false"


def _list_of(item: Check, n: int) -> Check:
    def c(v: Any) -> str | None:
        ok = isinstance(v, list) and len(v) <= n and all(item(x) is None for x in v)
        return None if ok else f"a list of at most {n} items"
    return c


def _any(v: Any) -> str | None:
    """Free-form JSON (what a command answered), kept if small."""
    try:
        return None if len(json.dumps(v)) <= MAX_ANY else f"at most {MAX_ANY} bytes"
    except (TypeError, ValueError):
        return f"at most {MAX_ANY} bytes"


Fields = dict[str, Check]


def _object(fields: Fields) -> Check:
    """A JSON object: the known fields checked (each may be null), others left out."""
    def c(v: Any) -> str | None:
        if not isinstance(v, dict):
            return "an object"
        for k, chk in fields.items():
            if v.get(k) is not None and chk(v[k]) is not None:
                return "an object whose " + k + " is " + (chk(v[k]) or "")
        return None
    c.fields = fields  # type: ignore[attr-defined]  # what _fields keeps of it
    return c


def _counters(v: Any) -> str | None:
    ok = isinstance(v, dict) and len(v) <= 32 and all(
        isinstance(k, str) and len(k) <= 32 and _int(0, INT63)(x) is None for k, x in v.items())
    return None if ok else "at most 32 counters, each a name and an integer >= 0"


NODE_ID = _str(64)
TEXT = _str(200)
PRIORITY = _one_of(*PRIORITIES)
KIND = _one_of(*KINDS)
BRIEF = _object({"source": _str(512), "priority": PRIORITY, "bulletin": _str(32),
                 "title": TEXT, "codec": _str(16)})  # a payload codec, or "sine" for a tone
NET = _object({"type": _str(16), "up": _bool, "addr": _str(64), "signal": _num(-200, 200),
               "up_s": _int(0, INT63), "reconnects": _int(0, INT63), "error": TEXT})
ZONES = _list_of(_str(32), 16)

STATUS: Fields = {
    "state": _one_of("online", "offline"), "node": NODE_ID, "fw": _str(32),
    "board": _str(32), "uid": _str(64), "commune": _str(64), "zones": ZONES,
    "location": _str(64), "uptime_s": _int(0, INT63), "volume": _int(0, 100),
    "play": _one_of("playing", "paused", "stopped"), "playing": BRIEF, "held": BRIEF,
    "net": NET, "temperature": _num(-100, 200), "amp_fault": _scalar, "rules": _str(64),
    "clock_synced": _bool, "t": _int(0, T2K_MAX), "counters": _counters,
}
STATUS_REQUIRED = ("state", "node")

EVENT_COMMON: Fields = {"type": _str(16), "node": NODE_ID, "boot": _int(0, INT32),
                        "n": _int(0, INT32), "t": _int(0, T2K_MAX), "ms": _int(0, INT63)}
EVENT_REQUIRED = ("type", "node", "boot", "n")
PLAY_OUTCOMES = ("done", "stopped", "preempted", "replaced", "error")
EVENTS: dict[str, Fields] = {
    "ack": {"seq": _int(0, INT63), "from": _str(32), "cmd": _str(32), "result": _any},
    "refused": {"code": _str(32), "msg": TEXT, "topic": TEXT, "seq": _any, "from": _any,
                "reason": _any},
    "play": {"bulletin": _str(32), "title": TEXT, "priority": PRIORITY, "kind": KIND,
             "source": _str(512), "start": _int(0, T2K_MAX),
             "duration_ms": _int(0, 7 * 86400 * 1000), "volume": _int(0, 100),
             "outcome": _one_of(*PLAY_OUTCOMES), "underruns": _int(0, INT63)},
    "cut_short": {"bulletin": _str(32), "title": TEXT, "priority": PRIORITY,
                  "source": _str(512), "reason": _any},
    "rules": {"version": _str(64), "seq": _int(0, INT63), "from": _str(32)},
    "boot": {"reset_cause": _scalar, "fw": _str(32), "boots": _int(0, INT63),
             "safe_mode": _scalar},
    "broker": {"up": _bool, "error": TEXT, "reconnects": _int(0, INT63)},
    "link": {"up": _bool, "info": NET},
    "error": {"msg": TEXT},
}


def _fields(doc: dict, fields: Fields, required: tuple[str, ...]) -> tuple[dict | None, str]:
    for k in required:
        if doc.get(k) is None:
            return None, f"{k}: missing"
    out = {}
    for k, chk in fields.items():
        if k not in doc:
            continue
        v = doc[k]
        if v is not None:
            why = chk(v)
            if why is not None:
                return None, f"{k}: not {why}"
            inner = getattr(chk, "fields", None)
            if inner is not None:  # a nested object keeps its known fields only
                v = {f: v[f] for f in inner if f in v}
        out[k] = v
    return out, ""


def _size(doc: Any) -> int:
    try:
        return len(json.dumps(doc, ensure_ascii=False).encode())
    except (TypeError, ValueError):
        return MAX_DOC + 1


def check_status(node: str, doc: Any) -> tuple[dict | None, str]:
    """A node's status on its own topic (node: the topic's id)."""
    if not isinstance(doc, dict):
        return None, "not a JSON object"
    if _size(doc) > MAX_DOC:
        return None, f"larger than {MAX_DOC} bytes"
    out, why = _fields(doc, STATUS, STATUS_REQUIRED)
    if out is not None and out["node"] != node:
        return None, "node: not the topic's node"
    return out, why


def check_event(node: str, doc: Any) -> tuple[dict | None, str]:
    """A node's event on its own topic (node: the topic's id)."""
    if not isinstance(doc, dict):
        return None, "not a JSON object"
    if _size(doc) > MAX_DOC:
        return None, f"larger than {MAX_DOC} bytes"
    kind = doc.get("type")
    if not isinstance(kind, str) or kind not in EVENTS:
        return None, "type: not one of " + "|".join(EVENTS)
    out, why = _fields(doc, {**EVENT_COMMON, **EVENTS[kind]}, EVENT_REQUIRED)
    if out is not None and out["node"] != node:
        return None, "node: not the topic's node"
    return out, why


def parse(payload: bytes) -> tuple[Any, str]:
    """(the JSON value, "") or (None, reason) for bytes that are no JSON."""
    if len(payload) > MAX_DOC:
        return None, f"larger than {MAX_DOC} bytes"
    try:
        return json.loads(payload), ""
    except (ValueError, RecursionError):
        return None, "not JSON"
