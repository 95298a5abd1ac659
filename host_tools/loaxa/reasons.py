"""The rules engine's reasons, worded for people.

The engine (firmware `loaxa_node.rules.engine`) answers with a code and its
parameters, e.g. {"code": "window_denies_priority", "window": "market",
"priority": "test"}; the node logs and returns that, and the host says it in
the reader's language. docs/rules.md lists the codes.
"""

from __future__ import annotations

import json
from typing import Any

from loaxa_node.control.protocol import KINDS, PRIORITIES

from .i18n import t

CODES = ("emergency", "untrusted_live", "untrusted_waits", "quiet_hours", "exception_mutes",
         "outside_windows", "window_denies_priority", "sessions_per_day", "minutes_per_day",
         "session_minutes", "window_allows", "item_ended")


def priority(p: str) -> str:
    return t("priority." + p) if p in PRIORITIES else p


def kind(k: str) -> str:
    return t("kind." + k) if k in KINDS else k


def describe(reason: Any) -> str:
    """One sentence for a reason dict; an unknown code (a newer node) shows as sent."""
    if not isinstance(reason, dict) or reason.get("code") not in CODES:
        return reason if isinstance(reason, str) else json.dumps(reason, ensure_ascii=False)
    kw = dict(reason)
    code = kw.pop("code")
    if "priority" in kw:
        kw["priority"] = priority(kw["priority"])
    if "kind" in kw:
        kw["kind"] = kind(kw["kind"])
    if code == "outside_windows":
        zones = kw.get("zones") or []
        return t("reason.outside_zones", zones=",".join(zones)) if zones else \
            t("reason.outside_windows")
    try:
        said = t("reason." + code, **kw)
        if code in ("sessions_per_day", "minutes_per_day", "session_minutes") and "zone" in kw:
            said += t("reason.of_zone", zone=kw["zone"])  # the zone's own, tighter limit
        return said
    except (KeyError, IndexError, ValueError):  # parameters a newer node renamed
        return json.dumps(reason, ensure_ascii=False)

