"""serve's one loop (docs/headend.md, "One loop, one store"): the app's lifespan
starts the embedded broker, the stream server, the controller's MQTT client,
the scheduler and the alert watcher on the app's own loop, with no thread of
their own; commands sent from the API's worker threads and from the scheduler
reach a node; a blocking call made on the loop is refused, not a deadlock; the
lifespan's end stops everything it started."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from loaxa.headend.app import create_app
from loaxa.headend.server import Loop, Serving
from loaxa.headend.service import Headend
from loaxa.headend.store import Store
from loaxa.inventory import Inventory
from loaxa.rig.broker import free_port
from loaxa_node.net import mqtt as net_mqtt

COMMUNE = "an-phu"
OWN_THREADS = ("control", "headend-io", "headend-schedule", "headend-alerts")


def test_serve_runs_its_parts_on_the_apps_loop_and_stops_them(tmp_path):
    inv_path = tmp_path / "inv.sqlite"
    with Inventory(inv_path) as inv:
        inv.record("n1", "provision", commune=COMMUNE, zones=["thon-1"])
        inv.new_node_key("n1")
        listen_pw = inv.new_mqtt_password("listener", "headend", COMMUNE)
        nodes = list(inv.nodes())
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "news.wav").write_bytes(b"RIFF")
    store = Store(tmp_path / "headend.sqlite")
    store.sync_nodes(nodes)
    store.add_user("oanh", "oanh-secret", "operator", "test")
    he = Headend(store, media=tmp_path / "media")
    cfg = {"broker": "", "commune": COMMUNE, "inventory": str(inv_path), "prefix": "loaxa",
           "media": str(tmp_path / "media"), "files_url": None, "broker_ca": None,
           "tts": None, "alerts": {}}
    serving = Serving(he, cfg, "http://127.0.0.1/", "127.0.0.1", free_port(), "127.0.0.1",
                      free_port(), None, 8883)
    io = Loop()  # the test's own node-like listener, not the head-end's
    before = {t.name for t in threading.enumerate()}
    got: list[dict] = []
    cond = threading.Condition()

    async def on(t: bytes, payload: memoryview, retained: int) -> None:
        with cond:
            got.append(json.loads(bytes(payload)))
            cond.notify_all()

    def wait_for(pred, timeout: float = 10) -> None:
        with cond:
            assert cond.wait_for(lambda: any(pred(e) for e in got), timeout), got

    try:
        with TestClient(create_app(he, lifespan=serving.lifespan)) as c:
            loop = c.portal.call(asyncio.get_running_loop)
            # one loop: the controller's client, he.io (relays) and the tasks are the app's
            assert he.ctl._loop is loop and he.io.loop is loop and serving.emb is not None
            assert all(t.get_loop() is loop for t in serving.tasks) and len(serving.tasks) == 2
            assert not {t.name for t in threading.enumerate()} - before & set(OWN_THREADS)
            assert store.setting("serve")["broker"] == serving.emb.url

            listener = net_mqtt.Client(serving.emb.url, "listener", on,
                                       [f"loaxa/{COMMUNE}/node/+/cmd"], user="listener",
                                       password=listen_pw)

            async def go() -> None:
                listener.start()
            io.run(go())
            assert c.post("/api/login", json={"user": "oanh", "password": "oanh-secret"}
                          ).status_code == 200
            t0 = time.monotonic()
            r = c.post("/api/emergency", json={"action": "start"})
            assert r.status_code == 200, r.text
            wait_for(lambda e: e["body"].get("cmd") == "emergency")
            assert time.monotonic() - t0 < 5

            # the scheduler, a task of the loop, sends it from a worker thread
            at = (datetime.now(he.tz) + timedelta(seconds=2)).replace(tzinfo=None)
            r = c.post("/api/broadcast", json={"file": "news", "at": at.isoformat()})
            assert r.status_code == 200 and r.json()["state"] == "pending", r.text
            wait_for(lambda e: e["body"].get("cmd") == "play", 15)
            # marked fired once every node's message is acknowledged, which is after
            # the listener has the play: give that a moment
            deadline = time.monotonic() + 5
            while (state := store.scheduled(r.json()["id"])[0]["state"]) == "firing" \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            assert state == "fired"

            # a blocking call on the loop would wait for itself: refused
            with pytest.raises(RuntimeError, match="wait for itself"):
                c.portal.call(lambda: he.ctl.command("all", {"cmd": "time"}))
            assert c.get("/api/nodes").status_code == 200  # and the loop goes on

            async def down() -> None:
                listener.deinit()
            io.run(down())
        # the lifespan's end stopped what it started
        assert serving.tasks == [] and he.io is None and serving.emb.broker is None
        assert he._ctl is None
    finally:
        io.stop()
        store.close()
