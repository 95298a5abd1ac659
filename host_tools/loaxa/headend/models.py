"""What each endpoint of the head-end's API returns (docs/headend.md, "API"):
declared so that /openapi.json describes the answers as well as the requests.
Fields a later head-end adds pass through (extra="allow"); what is declared is
checked on the way out."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Session(Out):
    user: str
    role: str
    token: str = Field(description="also set as the HttpOnly session cookie")


class LoggedOut(Out):
    user: str


class Node(Out):
    node_id: str
    commune: str | None = None
    zones: list[str]
    state: str = Field(description="online, offline or unknown")
    last_seen: float | None = Field(None, description="Unix time of its last message")
    status: dict[str, Any] | None = Field(None, description="its last status, as checked")
    malformed: int = Field(0, description="its messages dropped as malformed since serve "
                                          "started")


class Sent(Out):
    """A broadcast, an emergency or a rules push sent (or, with a time, queued)."""

    id: int
    state: str = Field(description="sent, or pending (scheduled)")
    seq: int | None = None
    target: str | None = None
    bulletin: str | None = Field(None, description="the name nodes' play logs give it")
    due: str | None = Field(None, description="a scheduled one's time (ISO 8601)")
    version: str | None = Field(None, description="a rules push: the version sent")


class State(Out):
    id: int
    state: str


class Relay(Out):
    id: int
    source: str
    listeners: int
    seconds: float


class Scheduled(Out):
    id: int
    due: str
    at: str
    who: str
    state: str
    file: str | None = None
    zones: list[str] | None = None
    priority: str | None = None
    title: str | None = None
    broadcast: int | None = None
    note: str | None = None


class RulesCheck(Out):
    ok: bool
    version: str | None = None
    week: list[dict[str, Any]] | None = None
    error: str | None = None
    hint: str | None = None
    line: int | None = None
    key: str | None = None


class RulesInForce(Out):
    version: str | None
    name: str | None = None
    seq: int | None = None
    text: str | None = None


class ZoneDay(Out):
    zone: str
    day: str
    seconds: float
    minutes: float


class Offline(Out):
    from_: str = Field(alias="from")
    to: str
    seconds: float
    cause: str = Field(description="will or silent")


class Uptime(Out):
    node: str
    zones: list[str]
    observed_s: float
    online_s: float
    uptime_pct: float | None
    offline: list[Offline]


class Play(Out):
    node: str
    zones: list[str]
    start: str
    seconds: float
    title: str | None = None
    priority: str | None = None
    outcome: str | None = None
    bulletin: str | None = None


class Report(Out):
    from_: str = Field(alias="from")
    to: str
    zones: list[ZoneDay]
    plays: list[Play]
    nodes: list[Uptime]


class AuditEntry(Out):
    at: float
    who: str
    action: str
    detail: Any
    result: str


class Lockout(Out):
    user: str
    until: str
    addr: str | None = None


class Unlocked(Out):
    user: str
    state: str
