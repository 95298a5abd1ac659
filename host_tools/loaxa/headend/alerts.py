"""Alerts: what the officer must not learn from the villagers (docs/headend.md,
"Alerts"). A loudspeaker cluster offline longer than a setting (default three
heartbeats), an amplifier fault, a node in safe mode or in a crash loop, a
node refusing the commune's rules. Each is raised once while its cause lasts,
shown on every page as a banner until someone acknowledges it (audited), and
sent by e-mail (SMTP) and/or to a webhook when serve is told where.

serve's loop has a task that checks every second (server.every_second); the
rows are the store's (store.py, the one place that touches SQLite)."""

from __future__ import annotations

import json
import logging
import os
import smtplib
import time
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from fastapi import APIRouter, Request

from loaxa_node.control.protocol import HEARTBEAT_S

from ..errors import LoaxaError
from .service import Actor, Headend

OFFLINE_S = 3 * HEARTBEAT_S
CRASHES = 3  # crash resets within CRASH_WINDOW_S: a crash loop
CRASH_WINDOW_S = 15 * 60
CRASH = ("watchdog", "brownout", "unknown")  # not power_on, hard (a reboot), soft, deepsleep
KINDS = ("offline", "amp_fault", "safe_mode", "crash_loop", "rules_refused")
log = logging.getLogger("loaxa.headend")


def config(he: Headend) -> dict:
    return (he.store.setting("serve") or {}).get("alerts") or {}


class Alerts:
    """The rules that raise and clear alerts; the rows are the store's."""

    def __init__(self, he: Headend):
        self.he = he
        self.cursor = time.time()  # events before this start are history, not news

    # -- the rows -------------------------------------------------------------
    def raise_(self, kind: str, node: str | None, key: str, detail: dict) -> int | None:
        aid = self.he.store.raise_alert(kind, node, key, detail)
        if aid is not None:
            self._notify(aid)
        return aid

    def clear(self, key: str) -> None:
        self.he.store.clear_alert(key)

    def rows(self, limit: int = 100, open_only: bool = False) -> list[dict]:
        tz = self.he.tz

        def iso(ts: float | None) -> str | None:
            return None if ts is None else datetime.fromtimestamp(ts, tz).isoformat(
                timespec="seconds")
        return [{**a, "at": iso(a["at"]), "cleared": iso(a["cleared"]),
                 "acked_at": iso(a["acked_at"])}
                for a in self.he.store.alerts(limit, open_only)]

    def list(self, actor: Actor, limit: int = 100, open_only: bool = False) -> list[dict]:
        self.he._check(actor, "viewer", "alerts", {})
        return self.rows(limit, open_only)

    def ack(self, actor: Actor, aid: int) -> dict:
        detail = {"alert": aid}
        self.he._check(actor, "operator", "alert.ack", detail)
        if not self.he.store.ack_alert(aid, actor[0]):
            raise self.he._refuse(actor, "alert.ack", detail,
                                  f"no alert {aid} waiting for acknowledgement")
        return {"id": aid, "acked_by": actor[0]}

    # -- what raises them -----------------------------------------------------------
    def check(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        after = float(config(self.he).get("offline_s") or OFFLINE_S)
        for n in self.he.store.nodes():
            nid = n["node_id"]
            seen = n["last_seen"]
            if seen is None:
                continue  # never heard from: not in service yet
            # offline: its will, or silent past the setting
            gone = n["state"] == "offline" or now - seen > max(after, 1.5 * HEARTBEAT_S)
            down_s = now - seen
            if gone and down_s >= after:
                self.raise_("offline", nid, f"offline:{nid}", {"since_s": round(down_s)})
            elif not gone:
                self.clear(f"offline:{nid}")
            fault = (n["status"] or {}).get("amp_fault")
            if fault and not gone:
                self.raise_("amp_fault", nid, f"amp_fault:{nid}", {"fault": fault})
            elif n["state"] == "online" and fault is False:
                self.clear(f"amp_fault:{nid}")
        events = self.he.store.events(since=self.cursor)
        for e in events:
            self.cursor = max(self.cursor, e["_rx"] + 1e-6)
            nid, typ = e["node"], e.get("type")
            if typ == "boot" and e.get("safe_mode"):
                self.raise_("safe_mode", nid, f"safe_mode:{nid}:{e.get('boots')}",
                            {"reset_cause": e.get("reset_cause"), "fw": e.get("fw")})
            elif typ == "boot" and e.get("reset_cause") in CRASH:
                boots = [b for b in self.he.store.events("boot", nid, now - CRASH_WINDOW_S)
                         if b.get("reset_cause") in CRASH]
                if len(boots) >= CRASHES:
                    self.raise_("crash_loop", nid, f"crash_loop:{nid}",
                                {"boots": len(boots), "minutes": CRASH_WINDOW_S // 60,
                                 "reset_cause": e.get("reset_cause")})
            elif typ == "refused" and str(e.get("topic", "")).endswith("/rules"):
                self.raise_("rules_refused", nid, f"rules_refused:{nid}:{e.get('seq')}",
                            {"code": e.get("code"), "msg": e.get("msg")})
            elif typ == "error" and any(w in str(e.get("msg", "")).lower()
                                        for w in ("amp", "speaker")):
                self.raise_("amp_fault", nid, f"amp_fault:{nid}", {"msg": e.get("msg")})

    # -- sending them out -------------------------------------------------------------
    def text(self, a: dict) -> tuple[str, str]:
        from ..i18n import t_in

        lang = config(self.he).get("lang", "vi")
        commune = (self.he.store.setting("serve") or {}).get("commune", "")
        what = t_in(lang, "alert." + a["kind"], node=a["node"] or "-")
        subject = f"[loaxa {commune}] {what}"
        body = (f"{what}\n{a['at']}\n" + json.dumps(a["detail"], ensure_ascii=False) +
                "\n\n" + t_in(lang, "alert.ack_hint"))
        return subject, body

    def _notify(self, aid: int) -> None:
        cfg = config(self.he)
        if not (cfg.get("email_to") or cfg.get("webhook")):
            return
        a = next(r for r in self.rows(1000) if r["id"] == aid)
        sent: dict[str, str] = {}
        subject, body = self.text(a)
        if cfg.get("email_to"):
            try:
                send_mail(cfg, subject, body)
                sent["email"] = "ok"
            except (OSError, smtplib.SMTPException) as e:
                sent["email"] = f"failed: {e}"
                log.warning("alert %s: e-mail failed: %s", aid, e)
        if cfg.get("webhook"):
            try:
                import httpx

                r = httpx.post(cfg["webhook"], json={**a, "subject": subject, "text": body},
                               timeout=10)
                sent["webhook"] = "ok" if r.is_success else f"failed: HTTP {r.status_code}"
            except httpx.HTTPError as e:
                sent["webhook"] = f"failed: {e}"
                log.warning("alert %s: webhook failed: %s", aid, e)
        self.he.store.alert_sent(aid, sent)


def send_mail(cfg: dict, subject: str, body: str) -> None:
    """One message through the configured SMTP server: STARTTLS when it offers
    it (required with a login), plain on 127.0.0.1 and in tests."""
    host, _, port = str(cfg.get("smtp") or "127.0.0.1:25").rpartition(":")
    msg = EmailMessage()
    msg["From"] = cfg.get("email_from") or "loaxa-headend@localhost"
    msg["To"] = ", ".join(cfg["email_to"])
    msg["Subject"] = subject
    msg.set_content(body)
    with smtplib.SMTP(host or "127.0.0.1", int(port or 25), timeout=15) as s:
        s.ehlo()
        if s.has_extn("starttls"):
            s.starttls()
            s.ehlo()
        user = os.environ.get("LOAXA_SMTP_USER")  # not on the command line, not in the store
        if user:
            s.login(user, os.environ.get("LOAXA_SMTP_PASSWORD", ""))
        s.send_message(msg)


def parse_config(email_to: str | None, smtp: str | None, email_from: str | None,
                 webhook: str | None, offline_s: float | None) -> dict:
    cfg: dict[str, Any] = {}
    if email_to:
        cfg["email_to"] = [a.strip() for a in email_to.split(",") if a.strip()]
        if not all("@" in a for a in cfg["email_to"]):
            raise LoaxaError(f"bad e-mail address in {email_to!r}")
        cfg["smtp"] = smtp or "127.0.0.1:25"
        if email_from:
            cfg["email_from"] = email_from
    if webhook:
        if not webhook.startswith(("http://", "https://")):
            raise LoaxaError("--alert-webhook must be an http(s) URL")
        cfg["webhook"] = webhook
    if offline_s is not None:
        if offline_s < 1:
            raise LoaxaError("--alert-offline-s must be at least 1")
        cfg["offline_s"] = offline_s
    return cfg


def router(alerts: Alerts) -> APIRouter:
    """The alerts' routes."""
    from . import models as m
    from .app import actor

    r = APIRouter(prefix="/api/alerts", tags=["alerts"])

    @r.get("", response_model=list[m.Alert], response_model_exclude_unset=True)
    def list_alerts(request: Request, open: bool = False, limit: int = 100,
                    lang: str = "vi") -> list[dict]:
        """Alerts, newest first: kind, node, time, detail, when its cause ended
        (cleared), who acknowledged it and when, how it was sent out, and `text`
        (the sentence in lang: vi or en)."""
        from ..i18n import t_in

        code = lang if lang in ("vi", "en") else "vi"
        return [{**a, "text": t_in(code, "alert." + a["kind"], node=a["node"] or "-")}
                for a in alerts.list(actor(request), min(max(limit, 1), 1000), open)]

    @r.post("/{aid}/ack", response_model=m.Acked)
    def ack(aid: int, request: Request) -> dict:
        return alerts.ack(actor(request), aid)

    return r
