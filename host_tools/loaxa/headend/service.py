"""What an operator can do, once: the API, the web page and the CLI all call
these (docs/headend.md). Every call names who acts; every action, refused or
done, goes into the audit log; a refused one changes nothing else."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from loaxa_node import timeutil
from loaxa_node.control.protocol import BROADCAST_PRIORITIES, HEARTBEAT_S
from loaxa_node.rules import engine

from .. import rules
from ..control import Controller, topic
from ..errors import LoaxaError
from ..streamer import CAPTURE, FileServer, Format, Relay, is_live
from . import checks
from .roles import allowed
from .store import Store

SIREN_HZ = 1200
SILENT_S = 1.5 * HEARTBEAT_S  # a node silent longer was offline, will or not
LATE_S = 600  # a scheduled broadcast the head-end was down for still goes out this late
MALFORMED_LOG_S = 60  # at most one log line this often about dropped messages
MAX_STRANGERS = 64  # ids counted apart; more unknown ones are counted together as "..."
LOG = logging.getLogger("loaxa.headend")
RULES_TOKEN_S = 400 * 86400  # the rules' stream token outlives any push interval
HINT_S = 600  # a node without trusted time gets the head-end's at most this often


class Denied(LoaxaError):
    """The actor's role may not do this."""


Actor = tuple[str, str]  # (user, role)


class Headend:
    def __init__(self, store: Store, connect: Callable[[], Controller] | None = None,
                 media: str | Path | None = None, files_url: str | None = None,
                 fmt: Format | None = None, tz_min: int = timeutil.TZ_MIN):
        self.store = store
        self.connect = connect
        self._ctl: Controller | None = None
        # tokens for the stream server: serve's and this CLI's alike (docs/security.md)
        self.files = FileServer(media, fmt or Format(), secret=store.stream_secret())
        self.files_url = files_url
        # serve's: the loop live relays run on (.run(coro)), the URL nodes fetch
        # them from; a CLI has neither and hands a live broadcast to serve
        self.io: Any = None
        self.live_url: str | None = None
        self.relays: dict[int, Relay] = {}  # broadcast id -> its relay, while it runs
        self.fmt = fmt or Format()
        self.tz = timezone(timedelta(minutes=tz_min))
        self.bad: dict[str, dict[str, int]] = {}  # node -> reason -> messages dropped
        self._bad_since = 0
        self._bad_logged = -float(MALFORMED_LOG_S)
        self._hinted: dict[str, float] = {}  # node -> when it was last sent the time

    @property
    def ctl(self) -> Controller:
        if self._ctl is None:
            if self.connect is None:
                raise LoaxaError("this head-end has no broker", "start `loaxa headend serve`")
            self._ctl = self.connect()
        return self._ctl

    def close(self) -> None:
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None

    # -- what nodes report (the controller's on_doc) ------------------------------
    def ingest(self, channel: str, node: str, payload: bytes, rx: float) -> None:
        """A status or event as the broker delivered it: checked (checks.py), then
        stored; a bad one is dropped, never stored, and counted per node and reason."""
        if channel == "status" and not payload:
            return  # a retained status cleared
        doc, why = checks.parse(payload)
        if why:
            doc = None
        elif not self.store.known(node):
            why = "not a node of the inventory"
        elif channel == "status":
            doc, why = checks.check_status(node, doc)
        elif channel == "event":
            doc, why = checks.check_event(node, doc)
        else:
            why = "not a status or an event"
        if why or doc is None:
            self._malformed(node, why)
        elif channel == "status":
            self.store.ingest_status(node, doc, rx)
        elif self.store.ingest_event(node, doc, rx) == "clash":
            self._malformed(node, "boot, n: another event holds them (both kept)")

    def _malformed(self, node: str, why: str) -> None:
        """Count a dropped message; say so in the log at most once a minute."""
        node = node[:64] if self.store.known(node) or node in self.bad or \
            len(self.bad) < MAX_STRANGERS else "..."
        per = self.bad.setdefault(node, {})
        per[why] = per.get(why, 0) + 1
        self._bad_since += 1
        now = time.monotonic()
        if now - self._bad_logged >= MALFORMED_LOG_S:
            self._bad_logged = now
            worst = sorted(((c, n, w) for n, p in self.bad.items() for w, c in p.items()),
                           reverse=True)[:5]
            LOG.warning("%d malformed messages from nodes dropped since the last report; "
                        "most: %s", self._bad_since,
                        "; ".join(f"{n}: {w} ({c})" for c, n, w in worst))
            self._bad_since = 0

    def malformed(self) -> dict[str, int]:
        """Messages dropped since serve started, per node (nodes the inventory does
        not know included)."""
        return {n: sum(p.values()) for n, p in self.bad.items()}

    # -- guard ------------------------------------------------------------------
    def _check(self, actor: Actor, need: str, action: str, detail: dict) -> None:
        if not allowed(actor[1], need):
            self.store.audit(actor[0], action, detail, f"refused: needs {need}")
            raise Denied(f"{action} needs the {need} role; {actor[0]} is {actor[1]}")

    def _refuse(self, actor: Actor, action: str, detail: dict, msg: str,
                hint: str | None = None) -> LoaxaError:
        self.store.audit(actor[0], action, detail, "refused: " + msg)
        return LoaxaError(msg, hint)

    def _send(self, actor: Actor, action: str, kind: str, target: str, body: dict,
              detail: dict, rules_body: dict | None = None,
              settings: dict | None = None) -> dict:
        """Record, publish (QoS 1: returns once the broker has it), then mark sent.
        The row is committed before publishing and its end after: a crash in
        between leaves `sending`, never a sent command the store does not know."""
        bid = self.store.begin_broadcast(actor[0], kind, target, body)
        try:
            if rules_body is not None:
                env = self.ctl.rules(target, rules_body)
            else:
                if body["cmd"] == "play" or body.get("action") == "start":
                    body = {**body, "bulletin": f"b{bid}"}  # names it in the play log
                env = self.ctl.command(target, body)
        except Exception as e:
            self.store.end_broadcast(bid, None, "failed", actor[0], action,
                                     {**detail, "error": str(e)})
            raise LoaxaError(f"{action} was not sent: {e}",
                             "is the broker running? see `loaxa headend serve`") from None
        if settings is not None:
            settings = {k: {**v, "seq": env["seq"]} for k, v in settings.items()}
        self.store.end_broadcast(bid, env["seq"], "sent", actor[0], action, detail, settings)
        return {"id": bid, "seq": env["seq"], "target": target, "state": "sent",
                "bulletin": body.get("bulletin")}

    def media(self) -> list[str]:
        """The names a broadcast may give: the media folder's files, without extension."""
        if self.files.root is None:
            return []
        return sorted({f.rpartition(".")[0] or f for f in os.listdir(self.files.root)
                       if self.files.find(f)})

    def today(self) -> date:
        """The commune's day (UTC+7 in Việt Nam), which the report counts in."""
        return datetime.now(self.tz).date()

    # -- nodes ------------------------------------------------------------------
    # -- sessions (the API's and the page's way in) --------------------------------
    def session(self, token: str) -> Actor | None:
        """The (user, role) of a live session, None once it ended."""
        return self.store.session(token) if token else None

    def logout(self, token: str) -> None:
        self.store.logout(token)

    def commune(self) -> str:
        return (self.store.setting("serve") or {}).get("commune", "")

    def zones(self, actor: Actor) -> list[str]:
        """The zones of the inventory's nodes, the ones a broadcast may name."""
        self._check(actor, "viewer", "nodes", {})
        return sorted(self.store.zones())

    def nodes(self, actor: Actor) -> list[dict]:
        """The inventory's nodes, each with the messages of it dropped as malformed."""
        self._check(actor, "viewer", "nodes", {})
        bad = self.malformed()
        return [{**n, "malformed": bad.get(n["node_id"], 0)} for n in self.store.nodes()]

    def strangers(self, actor: Actor) -> dict[str, int]:
        """Nodes the inventory does not know that sent messages (dropped), with how many."""
        self._check(actor, "viewer", "nodes", {})
        return {n: c for n, c in self.malformed().items() if not self.store.known(n)}

    # -- broadcast --------------------------------------------------------------
    def _zones(self, actor: Actor, action: str, detail: dict, zones: list[str]) -> list[str]:
        known = self.store.zones()
        bad = sorted(set(zones) - known)
        if bad:
            raise self._refuse(actor, action, detail, f"unknown zones {', '.join(bad)}",
                               "known: " + (", ".join(sorted(known)) or "none"))
        return zones

    def _file_session(self, actor: Actor, action: str, detail: dict, name: str) -> dict:
        if self.files.root is None or self.files_url is None:
            raise self._refuse(actor, action, detail, "this head-end serves no files",
                               "start it with --media DIR")
        if self.files.find(name) is None:
            raise self._refuse(actor, action, detail, f"no file {name!r} in {self.files.root}")
        # the broadcast's own token: the stream server serves nothing without one
        return self.fmt.session(transport="http",
                                url=f"{self.files_url}{self.files.grant(name)}/{name}")

    def broadcast(self, actor: Actor, file: str, zones: list[str] | None = None,
                  priority: str = "normal", title: str = "",
                  at: datetime | None = None) -> dict:
        """Play a file of the media folder, or relay a live source (a station's
        URL, a microphone as alsa:DEVICE), on every node of zones (all: None),
        now or, given at (a naive time is the commune's), then. Only serve
        relays: elsewhere a live broadcast is handed to it, due now."""
        detail = {"file": file, "zones": zones, "priority": priority, "title": title}
        if at is not None:
            detail["at"] = at.isoformat()
        self._check(actor, "operator", "broadcast", detail)
        if priority not in BROADCAST_PRIORITIES:  # emergency has its own call
            raise self._refuse(actor, "broadcast", detail, f"unknown priority {priority!r}",
                               "one of " + ", ".join(BROADCAST_PRIORITIES)
                               + "; emergencies: emergency")
        try:  # before anything starts or is queued (docs/headend.md, "Live relays")
            live = is_live(file)
        except LoaxaError as e:
            raise self._refuse(actor, "broadcast", detail, e.msg, e.hint) from None
        if zones:
            zones = self._zones(actor, "broadcast", detail, zones)
        if at is not None or (live and self.io is None):
            if not live:
                self._file_session(actor, "broadcast", detail, file)
            return self._schedule(actor, detail, at)
        relay = None
        if live:
            relay, session = self._relay(actor, detail, file)
        else:
            session = self._file_session(actor, "broadcast", detail, file)
        kind = ("live" if file.startswith(CAPTURE) else "relay") if live else "file"
        body: dict[str, Any] = {"cmd": "play", "kind": kind, "priority": priority,
                                "session": session, "source": file, "title": title or file}
        target = "all"
        if zones:
            body["zones"] = zones  # the node checks them against its own zones too
            target = "zone:" + ",".join(zones)
        try:
            out = self._send(actor, "broadcast", "play", target, body, detail)
        except LoaxaError:
            if relay:
                relay.stop()
            raise
        if relay:
            bid = out["id"]
            self.relays[bid] = relay
            relay.ended.append(lambda: self.relays.pop(bid, None))
        return out

    def _relay(self, actor: Actor, detail: dict, source: str) -> tuple[Relay, dict]:
        """Start relaying source; refused, with ffmpeg's words, if no audio comes."""
        if len(self.files.relays) >= self.files.max_encoders:
            raise self._refuse(actor, "broadcast", detail,
                               f"{len(self.files.relays)} live relays run already",
                               "stop one (DELETE /api/live/ID) first")
        relay = Relay(source, self.fmt)
        try:
            self.io.run(relay.start())
        except LoaxaError as e:
            raise self._refuse(actor, "broadcast", detail, e.msg, e.hint) from None
        name = secrets.token_hex(6)  # unguessable: only the nodes told get the stream
        self.files.relays[name] = relay
        relay.ended.append(lambda: self.files.relays.pop(name, None))
        return relay, self.fmt.session(
            transport="http", url=f"{self.live_url}{self.files.grant(name)}/{name}")

    def stop_broadcast(self, actor: Actor, bid: int) -> dict:
        """End a live relay: its source closes, and every node's stream with it."""
        detail = {"broadcast": bid}
        self._check(actor, "operator", "broadcast.stop", detail)
        relay = self.relays.get(bid)
        if relay is None:
            raise self._refuse(actor, "broadcast.stop", detail,
                               f"broadcast {bid} is not a live relay that is running",
                               "a file ends by itself; live relays: GET /api/live")
        relay.stop()
        self.store.audit(actor[0], "broadcast.stop", detail, "ok")
        return {"id": bid, "state": "stopped"}

    def live(self, actor: Actor) -> list[dict]:
        """The live relays running now: broadcast id, source, nodes listening, seconds."""
        self._check(actor, "viewer", "live", {})
        return [{"id": bid, "source": r.source, "listeners": r.fan.stats.clients,
                 "seconds": r.fan.stats.seconds} for bid, r in sorted(self.relays.items())
                if r.running]

    # -- scheduled broadcasts -----------------------------------------------------
    def _schedule(self, actor: Actor, detail: dict, at: datetime | None) -> dict:
        """Queue a broadcast for serve to send at at (None: now, a live one)."""
        due = time.time()
        if at is not None:
            due = (at if at.tzinfo else at.replace(tzinfo=self.tz)).timestamp()
            if due <= time.time():
                raise self._refuse(actor, "broadcast", detail,
                                   f"{_iso(due, self.tz)} has passed",
                                   "give a time to come, or none to broadcast now")
            if due > time.time() + 366 * 86400:
                raise self._refuse(actor, "broadcast", detail, "more than a year ahead")
        sid = self.store.schedule(actor[0], due, {k: detail[k] for k in
                                                  ("file", "zones", "priority", "title")})
        return {"id": sid, "state": "pending", "due": _iso(due, self.tz)}

    def scheduled(self, actor: Actor, limit: int = 100) -> list[dict]:
        """Scheduled broadcasts, the latest due first, with their state: pending,
        fired (its broadcast's id), cancelled, failed, missed or interrupted."""
        self._check(actor, "viewer", "scheduled", {})
        return [{**s, "due": _iso(s["due"], self.tz), "at": _iso(s["at"], self.tz)}
                for s in self.store.scheduled(limit=limit)]

    def cancel(self, actor: Actor, sid: int) -> dict:
        detail = {"scheduled": sid}
        self._check(actor, "operator", "broadcast.cancel", detail)
        rows = self.store.scheduled(sid)
        if not rows:
            raise self._refuse(actor, "broadcast.cancel", detail,
                               f"no scheduled broadcast {sid}")
        if not self.store.settle(sid, "pending", "cancelled", actor[0], "broadcast.cancel"):
            state = self.store.scheduled(sid)[0]["state"]
            raise self._refuse(actor, "broadcast.cancel", detail,
                               f"scheduled broadcast {sid} is {state}, not pending")
        return {"id": sid, "state": "cancelled"}

    def fire_due(self) -> list[dict]:
        """Send the scheduled broadcasts whose time has come (serve calls this every
        second). Each is claimed (pending -> firing) before it is sent, so it goes
        out once; it then names the broadcast it became. It goes out in its
        author's name only if the author may still broadcast (a user removed or
        made a viewer since: failed, saying so)."""
        out = []
        for s in self.store.due(time.time()):
            if not self.store.settle(s["id"], "pending", "firing", "headend", None):
                continue  # cancelled or claimed meanwhile
            # the CLI acts as admin for whoever may open the head-end's files
            role = "admin" if s["who"].startswith("cli:") else self.store.role_of(s["who"])
            try:
                if role is None or not allowed(role, "operator"):
                    raise LoaxaError(f"{s['who']} may no longer broadcast (" +
                                     (f"now {role}" if role else "removed") + ")")
                r = self.broadcast((s["who"], role), s["file"], s["zones"],
                                   s["priority"], s["title"])
            except LoaxaError as e:
                self.store.settle(s["id"], "firing", "failed", "headend", "broadcast.fire",
                                  note=e.msg)
                continue
            self.store.settle(s["id"], "firing", "fired", "headend", "broadcast.fire",
                              broadcast=r["id"])
            out.append(r)
        return out

    def hint_clocks(self) -> list[str]:
        """Send the signed time (a `time` command) to every online node whose
        status says its clock is not trusted, at most every HINT_S per node: with
        it, the node refuses expired commands (docs/envelope.md). serve calls
        this every second."""
        now = time.time()
        keys = self.ctl.node_keys
        due = [n["node_id"] for n in self.store.nodes()
               if n["state"] == "online" and n["node_id"] in keys
               and (n["status"] or {}).get("clock_synced") is False
               and now - self._hinted.get(n["node_id"], 0) >= HINT_S]
        if due:
            for n in due:
                self._hinted[n] = now
            env = self.ctl.command(due, {"cmd": "time"})
            self.store.audit("headend", "clock.hint", {"nodes": due, "seq": env["seq"]},
                             "sent")
        return due

    def emergency(self, actor: Actor, action: str, file: str | None = None,
                  title: str = "") -> dict:
        """Start (a file, or a siren) or stop the emergency on every node."""
        detail = {"action": action, "file": file, "title": title}
        self._check(actor, "operator", "emergency", detail)
        body: dict[str, Any] = {"cmd": "emergency", "action": action}
        if action == "start":
            if file:
                body["session"] = self._file_session(actor, "emergency", detail, file)
            else:
                body["tone"] = SIREN_HZ
            if title:
                body["title"] = title
        elif action != "stop":
            raise self._refuse(actor, "emergency", detail, f"unknown action {action!r}",
                               "start or stop")
        return self._send(actor, "emergency", "emergency", "all", body, detail)

    # -- rules ------------------------------------------------------------------
    def push_rules(self, actor: Actor, text: str, name: str = "rules.toml") -> dict:
        """Check, then sign and publish (retained) the commune's rules."""
        detail = {"name": name, "size": len(text)}
        self._check(actor, "admin", "rules.push", detail)
        try:
            compiled = self._files_token(rules.compile_text(text, name).rules)
        except LoaxaError as e:
            raise self._refuse(actor, "rules.push", detail, e.msg, e.hint) from None
        detail["version"] = compiled.get(engine.VER)
        r = self._send(actor, "rules.push", "rules", "all", {"version": compiled.get(engine.VER)},
                       detail, rules_body=compiled, settings={"rules": {
                           "text": text, "name": name, "version": compiled.get(engine.VER)}})
        return {**r, "version": compiled.get(engine.VER)}

    def _files_token(self, R: dict) -> dict:
        """Rules whose [files] url is this head-end's stream server get a token
        for every file in it (schedule items file:NAME), good RULES_TOKEN_S; a
        push or a restart makes a new one (docs/security.md)."""
        fs = R.get(engine.FILES)
        if fs and self.files_url and fs.get("url") == self.files_url:
            R = {**R, engine.FILES: {**fs, "url": f"{self.files_url}"
                             f"{self.files.grant('*', RULES_TOKEN_S)}/"}}
        return R

    def files_token_url(self, actor: Actor) -> str:
        """serve's files URL with a token for every file, good RULES_TOKEN_S: the
        [files] url of rules signed elsewhere (`loaxa rules compile --sign`)."""
        self._check(actor, "admin", "rules.files_url", {})
        if not self.files_url:
            raise self._refuse(actor, "rules.files_url", {}, "this head-end serves no files",
                               "start it with --media DIR")
        self.store.audit(actor[0], "rules.files_url", {}, "ok")
        return f"{self.files_url}{self.files.grant('*', RULES_TOKEN_S)}/"

    def check_rules(self, actor: Actor, text: str, name: str = "rules.toml") -> dict:
        """The checker's verdict on a rules text, changing nothing: its first error
        with the line it is on, or the week it gives each zone (the page's editor)."""
        self._check(actor, "viewer", "rules.check", {})
        try:
            c = rules.compile_text(text, name)
        except rules.RulesFileError as e:
            return {"ok": False, "error": e.msg, "hint": e.hint, "line": e.line, "key": e.key}
        except LoaxaError as e:
            return {"ok": False, "error": e.msg, "hint": e.hint, "line": None, "key": None}
        R = c.rules
        monday, start = rules.week_of(R, int(time.time()) - timeutil.UNIX_OFFSET)
        week = []
        for zone in c.zones or [""]:
            segs = rules.segments(R, start, start + 7 * 86400, [zone] if zone else [])
            days = []
            for k in range(7):
                a = start + k * 86400
                y, m, d = timeutil.civil_from_days(monday + k)
                days.append({"date": f"{y:04d}-{m:02d}-{d:02d}", "blocks": [
                    {"from": (max(s0, a) - a) // 60, "to": (min(s1, a + 86400) - a) // 60,
                     "window": wid, "volume": vol, "items": items}
                    for s0, s1, ok, vol, _, wid, items in segs
                    if s1 > a and s0 < a + 86400 and ok]})
            week.append({"zone": zone or None, "days": days})
        return {"ok": True, "version": R.get(engine.VER), "week": week}

    def rules_in_force(self, actor: Actor) -> dict:
        """The last acknowledged push: what the broker keeps retained for every node."""
        self._check(actor, "viewer", "rules", {})
        r = self.store.setting("rules")
        return {"version": r.get("version"), "name": r["name"], "seq": r["seq"],
                "text": r["text"]} if r else {"version": None}

    def recover(self) -> dict:
        """At a start, before anything else is sent. A command a crash left
        `sending` was never acknowledged: it is marked interrupted, and the rules
        in force stay the last acknowledged ones. Those are published again,
        retained, so that the broker holds exactly what the API states (the
        embedded broker forgot everything; an external one may hold an
        interrupted push); with none acknowledged yet, an interrupted push's
        retained copy is cleared."""
        interrupted = self.store.interrupt_sending("headend")
        for s in self.store.scheduled(limit=1000):
            if s["state"] == "firing":  # its broadcast, if any, is among the interrupted
                self.store.settle(s["id"], "firing", "interrupted", "headend",
                                  "broadcast.fire")
            elif s["state"] == "pending" and s["due"] < time.time() - LATE_S:
                self.store.settle(s["id"], "pending", "missed", "headend", "broadcast.fire",
                                  note=f"the head-end was down at {_iso(s['due'], self.tz)}")
        r = self.store.setting("rules")
        if r:
            compiled = self._files_token(rules.compile_text(r["text"], r["name"]).rules)
            env = self.ctl.rules("all", compiled)
            self.store.set_setting("rules", {**r, "seq": env["seq"]})
            self.store.audit("headend", "rules.restore",
                             {"version": r.get("version"), "seq": env["seq"]}, "sent")
        elif any(i["kind"] == "rules" for i in interrupted):
            self.ctl.publish_many([(topic(self.ctl.prefix, self.ctl.commune, n, "rules"), b"",
                                    True) for n in sorted(self.ctl.node_keys)])
            self.store.audit("headend", "rules.clear", {}, "sent")
        return {"interrupted": [i["id"] for i in interrupted],
                "rules": r.get("version") if r else None}

    # -- report -----------------------------------------------------------------
    def report(self, actor: Actor, start: date, end: date) -> dict:
        """Broadcast time per zone and local day, from the nodes' play logs: the
        union of the zone's nodes' play intervals (two nodes playing the same
        broadcast count once), days [start, end] inclusive."""
        detail = {"from": start.isoformat(), "to": end.isoformat()}
        self._check(actor, "viewer", "report", detail)
        if end < start:
            raise self._refuse(actor, "report", detail, "the report ends before it starts")
        tz = self.tz
        t0 = datetime(start.year, start.month, start.day, tzinfo=tz).timestamp()
        t1 = datetime(end.year, end.month, end.day, tzinfo=tz).timestamp() + 86400
        zones_of = {n["node_id"]: n["zones"] for n in self.store.nodes()}
        plays: list[dict] = []
        spans: dict[str, list[tuple[float, float]]] = {}
        # The nodes of a zone play one broadcast together; their starts are whole
        # seconds, so a union of their intervals would stretch it by up to one:
        # a zone's broadcast counts once, as its longest play. A broadcast that an
        # emergency preempted plays again when it resumes: the k-th play of a
        # bulletin on each node is one play of the zone's.
        heard: dict[tuple[str, str, int], tuple[float, float]] = {}
        nth: dict[tuple[str, str], int] = {}
        for e in self.store.events("play"):
            dur = (e.get("duration_ms") or 0) / 1000
            a = (e["start"] + timeutil.UNIX_OFFSET if isinstance(e.get("start"), int)
                 else e["_rx"] - dur)  # a node without trusted time: it ended when it said
            b = a + dur
            if b <= t0 or a >= t1 or dur <= 0:
                continue
            plays.append({"node": e["node"], "zones": zones_of.get(e["node"], []),
                          "start": _iso(a, tz),
                          "seconds": round(dur, 1), "title": e.get("title"),
                          "priority": e.get("priority"), "outcome": e.get("outcome"),
                          "bulletin": e.get("bulletin")})
            if e.get("bulletin"):
                k = nth[(e["node"], e["bulletin"])] = nth.get((e["node"], e["bulletin"]), -1) + 1
            for z in zones_of.get(e["node"], []):
                if e.get("bulletin"):
                    had = heard.get((z, e["bulletin"], k))
                    if had is None or had[1] - had[0] < b - a:
                        heard[(z, e["bulletin"], k)] = (a, b)
                else:
                    spans.setdefault(z, []).append((max(a, t0), min(b, t1)))
        for (z, _, _), (a, b) in heard.items():
            spans.setdefault(z, []).append((max(a, t0), min(b, t1)))
        per: dict[tuple[str, str], float] = {}
        for z, iv in spans.items():
            for a, b in _union(iv):
                while a < b:  # split at local midnights
                    day = datetime.fromtimestamp(a, tz).date()
                    midnight = datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
                    cut = min(b, midnight + 86400)
                    per[(z, day.isoformat())] = per.get((z, day.isoformat()), 0) + cut - a
                    a = cut
        rows = [{"zone": z, "day": d, "seconds": round(s, 1), "minutes": round(s / 60, 2)}
                for (z, d), s in sorted(per.items())]
        nodes = [self._uptime(n, t0, min(t1, time.time()), tz) for n in self.store.nodes()]
        self.store.audit(actor[0], "report", detail, "ok")
        return {"from": detail["from"], "to": detail["to"], "zones": rows, "plays": plays,
                "nodes": nodes}

    def _uptime(self, node: dict, t0: float, t1: float, tz: timezone) -> dict:
        """A node's time online in [t0, t1) from its status history: offline from
        its last will (`offline`, sent by the broker the moment the connection
        drops) or, when it fell silent without one, from one heartbeat after its
        last status, until the next status says it is back. Time before its first
        status is not counted: it was not in service yet."""
        hist = self.store.status_history(node["node_id"], t0, t1)
        down: list[tuple[float, float, str]] = []
        start = None
        for i, (rx, state) in enumerate(hist):
            nxt = hist[i + 1][0] if i + 1 < len(hist) else t1
            if start is None:
                start = max(rx, t0)
            if state == "offline":
                down.append((max(rx, t0), nxt, "will"))
            elif nxt - rx > SILENT_S:
                down.append((max(rx + HEARTBEAT_S, t0), nxt, "silent"))
        down = [d for d in down if d[1] > d[0]]
        observed = t1 - start if start is not None else 0.0
        off = sum(b - a for a, b, _ in down)
        return {"node": node["node_id"], "zones": node["zones"],
                "observed_s": round(observed, 1), "online_s": round(observed - off, 1),
                "uptime_pct": round(100 * (observed - off) / observed, 2) if observed else None,
                "offline": [{"from": _iso(a, tz), "to": _iso(b, tz), "seconds": round(b - a, 1),
                             "cause": cause} for a, b, cause in down]}

    @staticmethod
    def report_csv(rep: dict) -> str:
        """The zones' minutes, the nodes' uptime, each offline period, then each
        play: four tables, each with its header, a blank line between them. A
        text cell that a spreadsheet would read as a formula is neutralised."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")

        def rows(table: Any) -> None:
            w.writerows([csv_cell(v) for v in r] for r in table)
        w.writerow(["zone", "day", "minutes", "seconds"])
        rows([r["zone"], r["day"], r["minutes"], r["seconds"]] for r in rep["zones"])
        w.writerow([])
        w.writerow(["node", "zones", "uptime_pct", "online_s", "observed_s", "offline_periods"])
        rows([n["node"], " ".join(n["zones"]), n["uptime_pct"], n["online_s"],
              n["observed_s"], len(n["offline"])] for n in rep["nodes"])
        w.writerow([])
        w.writerow(["node", "offline_from", "offline_to", "seconds", "cause"])
        rows([n["node"], o["from"], o["to"], o["seconds"], o["cause"]]
             for n in rep["nodes"] for o in n["offline"])
        w.writerow([])
        w.writerow(["start", "node", "zones", "seconds", "title", "priority", "outcome",
                    "bulletin"])
        rows([p["start"], p["node"], " ".join(p["zones"]), p["seconds"], p["title"],
              p["priority"], p["outcome"], p["bulletin"]] for p in rep["plays"])
        return out.getvalue()

    def lockouts(self, actor: Actor) -> list[dict]:
        """User names locked out after too many failed logins, until when."""
        self._check(actor, "admin", "lockouts", {})
        return [{**x, "until": _iso(x["until"], self.tz)} for x in self.store.lockouts()]

    def unlock(self, actor: Actor, user: str) -> dict:
        """Lift a lockout before its time (audited)."""
        self._check(actor, "admin", "login.unlock", {"user": user})
        if not self.store.unlock(user, actor[0]):
            raise self._refuse(actor, "login.unlock", {"user": user},
                               f"{user} is not locked out")
        return {"user": user, "state": "unlocked"}

    def audit_log(self, actor: Actor, limit: int = 100) -> list[dict]:
        self._check(actor, "admin", "audit", {})
        return self.store.audit_log(limit)


def _iso(ts: float, tz: timezone) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(v: Any) -> Any:
    """A text a spreadsheet would take for a formula (=, +, -, @, tab, CR first)
    gets a leading ' so it opens as the text it is (OWASP, "CSV Injection"), and
    a line break inside a text becomes a space (a row stays one line); numbers
    stay numbers."""
    if not isinstance(v, str):
        return v
    return ("'" + v if v.startswith(FORMULA) else v).replace("\r", " ").replace("\n", " ")


def _union(iv: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(iv):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def dump(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2)
