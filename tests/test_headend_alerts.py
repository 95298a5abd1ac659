"""Alerts (docs/headend.md): a loudspeaker cluster offline past the setting, a
safe-mode boot, a crash loop, a rules refusal and an amplifier error each raise
one alert while the cause lasts; the e-mail reaches a real SMTP server (aiosmtpd)
and the webhook a real HTTP server; an acknowledgement is for operators and is
audited; the banner's sentence comes in the page's language."""

from __future__ import annotations

import json
import threading
import time
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from fastapi.testclient import TestClient

from loaxa.headend.alerts import parse_config
from loaxa.headend.app import create_app
from loaxa.headend.service import Headend
from loaxa.headend.store import Store
from loaxa.rig.process import free_port


class Inbox:
    def __init__(self) -> None:
        self.mail: list = []
        self.cond = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        with self.cond:
            self.mail.append((envelope.rcpt_tos, message_from_bytes(envelope.content,
                                                                    policy=policy.default)))
            self.cond.notify_all()
        return "250 OK"


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=free_port())
    ctl.start()
    yield inbox, f"127.0.0.1:{ctl.port}"
    ctl.stop()


@pytest.fixture
def hook():
    got: list = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a) -> None:  # type: ignore[no-untyped-def]
            pass
    srv = HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield got, f"http://127.0.0.1:{srv.server_port}/hook"
    srv.shutdown()


def setup(tmp, smtp_addr: str, hook_url: str):  # type: ignore[no-untyped-def]
    store = Store(tmp / "h.sqlite")
    store.sync_nodes([{"node_id": n, "commune": "an-phu", "zones": [z]}
                      for n, z in (("n1", "thon-1"), ("n2", "thon-2"))])
    store.add_user("oanh", "oanh-secret", "operator", "test")
    store.add_user("vien", "vien-secret", "viewer", "test")
    store.set_setting("serve", {"commune": "an-phu", "alerts": parse_config(
        "can-bo@an-phu.vn", smtp_addr, "loa@an-phu.vn", hook_url, 3)})
    he = Headend(store)
    client = TestClient(create_app(he))
    return he, store, client, client.app.state.alerts  # type: ignore[attr-defined]


def login(c: TestClient, user: str) -> dict:
    r = c.post("/api/login", json={"user": user, "password": f"{user}-secret"})
    return {"Authorization": "Bearer " + r.json()["token"]}


def ev(node: str, n: int, type_: str, **kw) -> dict:  # type: ignore[no-untyped-def]
    return {"type": type_, "node": node, "boot": kw.pop("boot", 1), "n": n, **kw}


def test_each_cause_raises_one_alert_mailed_posted_and_acknowledged(tmp_path, smtp, hook):
    inbox, addr = smtp
    posted, url = hook
    he, store, c, alerts = setup(tmp_path, addr, url)
    t = time.time()
    for n in ("n1", "n2"):
        store.ingest_status(n, {"state": "online", "node": n}, t)
    alerts.check(t + 1)
    assert alerts.rows() == []
    store.ingest_status("n1", {"state": "offline", "node": "n1"}, t + 2)  # its will
    alerts.check(t + 3)
    assert alerts.rows() == []  # offline for 1 s: not yet
    alerts.check(t + 5.5)
    alerts.check(t + 6)  # once while it lasts
    rows = alerts.rows()
    assert [(a["kind"], a["node"]) for a in rows] == [("offline", "n1")]
    assert rows[0]["sent"] == {"email": "ok", "webhook": "ok"}
    with inbox.cond:
        assert inbox.cond.wait_for(lambda: inbox.mail, 5)
    rcpt, msg = inbox.mail[0]
    assert rcpt == ["can-bo@an-phu.vn"] and msg["From"] == "loa@an-phu.vn"
    assert msg["Subject"] == "[loaxa an-phu] Cụm loa n1 mất kết nối", msg["Subject"]
    assert posted[0]["kind"] == "offline" and posted[0]["node"] == "n1"
    # a node silent past the setting without a will (power cut, no broker left to tell)
    alerts.check(t + 200)
    assert {(a["kind"], a["node"]) for a in alerts.rows()} == {("offline", "n1"),
                                                             ("offline", "n2")}
    # events: safe mode, a crash loop, a rules refusal, an amplifier error
    rx = time.time()
    for i, cause in enumerate(("watchdog", "watchdog", "brownout")):
        store.ingest_event("n2", ev("n2", 0, "boot", boot=10 + i, reset_cause=cause,
                                    boots=10 + i), rx)
    store.ingest_event("n2", ev("n2", 1, "boot", boot=13, reset_cause="hard", boots=13,
                                safe_mode=True), rx)
    store.ingest_event("n1", ev("n1", 5, "refused", code="bad_sig", msg="signature",
                                topic="loaxa/an-phu/all/rules", seq=7), rx)
    store.ingest_event("n1", ev("n1", 6, "refused", code="busy", msg="busy",
                                topic="loaxa/an-phu/all/cmd", seq=8), rx)
    store.ingest_event("n1", ev("n1", 7, "error", msg="amp fault: output shorted"), rx)
    alerts.check(rx + 1)
    kinds = sorted((a["kind"], a["node"]) for a in alerts.rows())
    assert kinds == [("amp_fault", "n1"), ("crash_loop", "n2"), ("offline", "n1"),
                     ("offline", "n2"), ("rules_refused", "n1"), ("safe_mode", "n2")], kinds
    assert len(inbox.mail) == 6 and len(posted) == 6
    # the API: the open ones in the page's language; acknowledging is audited
    v, o = login(c, "vien"), login(c, "oanh")
    shown = c.get("/api/alerts?open=true&lang=en", headers=v).json()
    assert len(shown) == 6 and "Loudspeaker cluster n1 refused" in \
        next(a["text"] for a in shown if a["kind"] == "rules_refused")
    aid = next(a["id"] for a in shown if a["kind"] == "offline" and a["node"] == "n1")
    assert c.post(f"/api/alerts/{aid}/ack", headers=v).status_code == 403
    r = c.post(f"/api/alerts/{aid}/ack", headers=o)
    assert r.status_code == 200 and r.json() == {"id": aid, "acked_by": "oanh"}
    assert c.post(f"/api/alerts/{aid}/ack", headers=o).status_code == 400
    assert aid not in {a["id"] for a in c.get("/api/alerts?open=true", headers=v).json()}
    done = next(a for a in c.get("/api/alerts", headers=v).json() if a["id"] == aid)
    assert done["acked_by"] == "oanh" and done["acked_at"]
    audit = [a for a in store.audit_log(50) if a["action"] == "alert.ack"]
    assert [(a["who"], a["result"]) for a in audit] == [
        ("oanh", f"refused: no alert {aid} waiting for acknowledgement"), ("oanh", "ok"),
        ("vien", "refused: needs operator")]
    # n1 back: its offline alert, acknowledged, is over; a new outage is a new alert
    store.ingest_status("n1", {"state": "online", "node": "n1"}, time.time())
    alerts.check(time.time())
    store.ingest_status("n1", {"state": "offline", "node": "n1"}, time.time())
    alerts.check(time.time() + 4)
    assert sum(a["kind"] == "offline" and a["node"] == "n1" for a in alerts.rows()) == 2


def test_the_status_fault_line_raises_and_clears_an_amplifier_alert(tmp_path, smtp, hook):
    _, addr = smtp
    _, url = hook
    he, store, c, alerts = setup(tmp_path, addr, url)
    now = time.time()
    store.ingest_status("n1", {"state": "online", "node": "n1", "amp_fault": False}, now)
    alerts.check(now)
    assert alerts.rows() == []
    store.ingest_status("n1", {"state": "online", "node": "n1", "amp_fault": "short"}, now)
    alerts.check(now)
    a = alerts.rows()
    assert [(x["kind"], x["detail"]) for x in a] == [("amp_fault", {"fault": "short"})]
    store.ingest_status("n1", {"state": "online", "node": "n1", "amp_fault": False}, now)
    alerts.check(now)
    assert alerts.rows()[0]["cleared"]


def test_an_unreachable_smtp_server_is_recorded_not_fatal(tmp_path, hook):
    _, url = hook
    he, store, c, alerts = setup(tmp_path, f"127.0.0.1:{free_port()}", url)
    store.ingest_status("n1", {"state": "offline", "node": "n1"}, time.time() - 10)
    alerts.check()
    sent = alerts.rows()[0]["sent"]
    assert sent["email"].startswith("failed:") and sent["webhook"] == "ok", sent


def test_bad_alert_settings_are_refused():
    from loaxa.errors import LoaxaError

    for args in (("not-an-address", None, None, None, None),
                 (None, None, None, "ftp://x", None), (None, None, None, None, 0.5)):
        with pytest.raises(LoaxaError):
            parse_config(*args)
