"""One loudspeaker cluster's page and commands (docs/headend.md, "A cluster's
page"): its online/offline timeline over the last day from its status
history, its recent events and play log, and, for the right roles, volume, a
test tone, stop and restart sent to that node alone, signed and audited like
every command."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from loaxa_node.control.protocol import HEARTBEAT_S

from .service import SILENT_S, Actor, Headend

HOURS = 24
EVENTS = 50


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cmd: Literal["volume", "tone", "stop", "reboot"]
    volume: int | None = Field(None, ge=0, le=100)
    freq: int = Field(1000, ge=50, le=8000)
    seconds: int = Field(3, ge=1, le=30)


NEEDS = {"volume": "operator", "tone": "operator", "stop": "operator", "reboot": "admin"}


def timeline(he: Headend, node: str, t0: float, t1: float) -> list[dict]:
    """[{from, width (percent of the span), state, start, end}] covering [t0, t1),
    as the report counts uptime: online from a status, offline from a will, or
    from one heartbeat after a status not followed by another in time; unknown
    before the first status."""
    raw: list[tuple[float, float, str]] = []
    hist = he.store.status_history(node, t0, t1)
    if not hist or hist[0][0] > t0:
        raw.append((t0, hist[0][0] if hist else t1, "unknown"))
    for i, (rx, st) in enumerate(hist):
        nxt = hist[i + 1][0] if i + 1 < len(hist) else t1
        rx = max(rx, t0)
        if st == "offline":
            raw.append((rx, nxt, "offline"))
        elif nxt - rx > SILENT_S:
            raw.append((rx, rx + HEARTBEAT_S, "online"))
            raw.append((rx + HEARTBEAT_S, nxt, "offline"))
        else:
            raw.append((rx, nxt, "online"))
    spans: list[list] = []
    for a, b, st in raw:
        a, b = max(a, t0), min(b, t1)
        if b <= a:
            continue
        if spans and spans[-1][2] == st and abs(spans[-1][1] - a) < 1e-6:
            spans[-1][1] = b
        else:
            spans.append([a, b, st])
    span = t1 - t0
    return [{"from": round(100 * (a - t0) / span, 3), "width": round(100 * (b - a) / span, 3),
             "state": s, "start": datetime.fromtimestamp(a, he.tz).strftime("%H:%M"),
             "end": datetime.fromtimestamp(b, he.tz).strftime("%H:%M")}
            for a, b, s in spans]


def history(he: Headend, actor: Actor, node: str) -> dict:
    he._check(actor, "viewer", "node", {"node": node})
    nodes = {n["node_id"]: n for n in he.store.nodes()}
    if node not in nodes:
        raise he._refuse(actor, "node", {"node": node}, f"no loudspeaker cluster {node!r}")
    t1 = time.time()
    t0 = t1 - HOURS * 3600
    events = he.store.events(node=node, since=t0)

    def at(e: dict) -> str:
        return datetime.fromtimestamp(e["_rx"], he.tz).isoformat(sep=" ", timespec="seconds")
    evs = [{"at": at(e), "type": e.get("type"),
            "detail": {k: v for k, v in e.items() if k not in
                       ("type", "node", "boot", "n", "t", "ms", "_rx")}}
           for e in reversed(events)][:EVENTS]
    plays = [{"at": at(e), "title": e.get("title"), "seconds": round(
        (e.get("duration_ms") or 0) / 1000, 1), "priority": e.get("priority"),
        "outcome": e.get("outcome")} for e in reversed(events) if e.get("type") == "play"]
    return {"node": nodes[node], "timeline": timeline(he, node, t0, t1), "events": evs,
            "plays": plays[:EVENTS], "hours": HOURS}


def command(he: Headend, actor: Actor, node: str, c: Command) -> dict:
    detail: dict[str, object] = {"node": node, "cmd": c.cmd}
    he._check(actor, NEEDS[c.cmd], "node." + c.cmd, detail)
    if node not in {n["node_id"] for n in he.store.nodes()}:
        raise he._refuse(actor, "node." + c.cmd, detail, f"no loudspeaker cluster {node!r}")
    body: dict = {"cmd": c.cmd}
    if c.cmd == "volume":
        if c.volume is None:
            raise he._refuse(actor, "node.volume", detail, "give a volume from 0 to 100")
        body["volume"] = detail["volume"] = c.volume
    elif c.cmd == "tone":
        body.update(freq=c.freq, seconds=c.seconds)
        if c.volume is not None:
            body["volume"] = c.volume
        detail.update(freq=c.freq, seconds=c.seconds)
    return he._send(actor, "node." + c.cmd, c.cmd, f"node:{node}", body, detail)


def router(he: Headend) -> APIRouter:
    """A cluster's page and its routes."""
    from ..errors import LoaxaError
    from . import models as m
    from .app import actor
    from .web import page

    r = APIRouter(tags=["clusters"])

    @r.get("/api/nodes/{node}/history", response_model=m.ClusterHistory,
           response_model_exclude_unset=True)
    def node_history(node: str, request: Request) -> dict:
        """The last day of one cluster: online/offline timeline, events, play log."""
        return history(he, actor(request), node)

    @r.post("/api/nodes/{node}/command", response_model=m.Sent)
    def node_command(node: str, body: Command, request: Request) -> dict:
        """volume (operator), a test tone (operator), stop (operator), restart
        (reboot, admin): to this cluster alone."""
        return command(he, actor(request), node, body)

    @r.get("/clusters/{node}", response_class=HTMLResponse, include_in_schema=False)
    def cluster_page(node: str, request: Request) -> Response:
        try:
            return page(request, "cluster.html", "clusters",
                        lambda who: {"h": history(he, who, node)})
        except LoaxaError as e:
            return HTMLResponse(e.msg, 404)

    return r
