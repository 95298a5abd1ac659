"""What each endpoint of the head-end's API returns (docs/headend.md, "API"):
declared so that /openapi.json describes the answers as well as the requests.
Fields a later head-end adds pass through (extra="allow"); what is declared is
checked on the way out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from loaxa_node.control.protocol import BROADCAST_PRIORITIES

if TYPE_CHECKING:
    BroadcastPriority = str
else:  # the node's own list (control/protocol.py), named in the OpenAPI description
    BroadcastPriority = Literal[BROADCAST_PRIORITIES]


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


# -- the later areas: bulletins, alerts, clusters, the schedule forms, users ---------
class Bulletin(Out):
    """A bulletin of the library: uploaded, synthesised, or copied into the folder."""

    name: str
    title: str
    seconds: float | None = None
    uploader: str | None = None
    at: str | None = Field(None, description="when it was added (ISO 8601)")
    source: str | None = Field(None, description="upload, tts or folder")


class Deleted(Out):
    name: str
    state: str


class Spoken(Out):
    """A synthesised bulletin (the Bulletin's fields), or with `dry` only `spoken`."""

    spoken: str = Field(description="the text as it is read: numbers, times and "
                                    "abbreviations in words")


class TtsEngine(Out):
    engine: str
    command: str
    voices: list[str]
    default_voice: str


class Alert(Out):
    id: int
    at: str | None
    kind: str
    node: str | None = None
    detail: dict[str, Any]
    cleared: str | None = None
    acked_by: str | None = None
    acked_at: str | None = None
    sent: dict[str, Any]
    text: str = Field(description="the alert as a sentence, in the asked language")


class Acked(Out):
    id: int
    acked_by: str


class RulesForm(Out):
    """The rules in force as the schedule forms show them."""

    base: str = Field(description="the text the form was made from; send it back")
    windows: list[dict[str, Any]]
    items: list[dict[str, Any]]
    zones: list[str]
    known_zones: list[str]


class RulesFormSaved(Out):
    text: str
    check: dict[str, Any] = Field(description="the checker's verdict, as POST /api/rules/check")
    pushed: dict[str, Any] | None = Field(None, description="with `push`: as POST /api/rules")


class ClusterHistory(Out):
    """The last hours of one loudspeaker cluster."""

    node: dict[str, Any] = Field(description="as GET /api/nodes gives it")
    timeline: list[dict[str, Any]]
    events: list[dict[str, Any]]
    plays: list[dict[str, Any]]
    hours: int | float


class User(Out):
    name: str
    role: str
    created_by: str
    created_at: str


class UserState(Out):
    user: str
    role: str | None = None
    state: str | None = None
