"""The head-end's store and API (docs/headend.md), against the embedded broker:
every endpoint, the refusals (no session, wrong role, bad input) each with a
clear error and nothing changed, commands that reach the broker signed, and
the report from play logs."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from loaxa import streamer
from loaxa.control import Controller
from loaxa.errors import LoaxaError
from loaxa.headend.amqtt_access import InventoryAccess
from loaxa.headend.app import create_app
from loaxa.headend.server import EmbeddedBroker, Loop, connect
from loaxa.headend.service import Denied, Headend
from loaxa.headend.store import MIGRATIONS, Store
from loaxa.i18n import t_in
from loaxa.inventory import Inventory
from loaxa.rig.broker import free_port
from loaxa_node import envelope, timeutil
from loaxa_node.net import mqtt as net_mqtt

COMMUNE = "an-phu"
RULES = """
version = "v7"
[[window]]
name = "day"
days = "daily"
time = "06:00-21:00"
volume = 80
"""


class Listener:
    """A plain MQTT client on the command and rules topics, as a node would be."""

    def __init__(self, io: Loop, url: str, password: str):
        self.got: list[tuple[str, dict, int]] = []
        self.cond = threading.Condition()
        self.client = net_mqtt.Client(url, "listener", self._on,
                                      [f"loaxa/{COMMUNE}/node/+/cmd",
                                       f"loaxa/{COMMUNE}/node/+/rules"],
                                      user="listener", password=password)

        async def go() -> None:
            self.client.start()
        io.run(go())
        self.io = io

    async def _on(self, t: bytes, payload: memoryview, retained: int) -> None:
        with self.cond:
            self.got.append((t.decode(), json.loads(bytes(payload)), retained))
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 10) -> list[tuple[str, dict, int]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= n, timeout), self.got
            return list(self.got)


def commune(tmp: Path, fake_user: str) -> tuple[dict[str, bytes], str, str]:
    """The inventory tmp/inv.sqlite of COMMUNE's two nodes (n1 in thon-1, n2 in
    thon-2), each with its key, and the test's own broker users with a
    head-end's rights: `listener` listens as nodes would, fake_user publishes
    as nodes do. Returns the nodes' keys and the two users' passwords."""
    with Inventory(tmp / "inv.sqlite") as inv:
        for node, zone in (("n1", "thon-1"), ("n2", "thon-2")):
            inv.record(node, "provision", commune=COMMUNE, zones=[zone])
            inv.new_node_key(node)
        keys = {n: bytes.fromhex(inv.node_key(n)) for n in ("n1", "n2")}
        listen_pw = inv.new_mqtt_password("listener", "headend", COMMUNE)
        fake_pw = inv.new_mqtt_password(fake_user, "headend", COMMUNE)
    return keys, listen_pw, fake_pw


def headend_store(tmp: Path, url: str) -> tuple[Store, dict]:
    """The head-end's store at tmp/headend.sqlite with the inventory's nodes,
    and the configuration that connects it to the broker at url."""
    store = Store(tmp / "headend.sqlite")
    with Inventory(tmp / "inv.sqlite") as inv:
        store.sync_nodes(list(inv.nodes()))
    return store, {"broker": url, "commune": COMMUNE, "inventory": str(tmp / "inv.sqlite"),
                   "prefix": "loaxa"}


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("headend")
    keys, listen_pw, fake_pw = commune(tmp, "fake-node")
    io = Loop()
    broker = EmbeddedBroker(io, "127.0.0.1", free_port(),
                            InventoryAccess(tmp / "inv.sqlite", "loaxa", [COMMUNE])).start()
    (tmp / "media").mkdir()
    (tmp / "media" / "news.wav").write_bytes(b"RIFF")
    store, cfg = headend_store(tmp, broker.url)
    he = Headend(store, media=tmp / "media", files_url="http://127.0.0.1:8001/file/")
    he.connect = lambda: connect(cfg, he, store, "headend-test")
    for name, role in (("vien", "viewer"), ("oanh", "operator"), ("an", "admin")):
        store.add_user(name, f"{name}-secret", role, "test")
    listener = Listener(io, broker.url, listen_pw)
    node = Controller(broker.url, COMMUNE, client_id="fake-node", user="fake-node",
                      password=fake_pw)  # publishes as nodes do
    client = TestClient(create_app(he))
    yield {"he": he, "store": store, "client": client, "listener": listener, "node": node,
           "keys": keys, "tmp": tmp, "io": io}
    client.close()
    node.close()
    he.close()
    broker.stop()
    io.stop()


def login(client: TestClient, user: str) -> dict:
    r = client.post("/api/login", json={"user": user, "password": f"{user}-secret"})
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["token"]}


def test_sequences_only_grow_across_restarts_clock_steps_and_processes(tmp_path,
                                                                       monkeypatch):
    path = tmp_path / "headend.sqlite"
    store = Store(path)
    a = store.next_seq("headend")
    assert store.next_seq("headend") == a + 1
    assert abs(a - (time.time() - timeutil.UNIX_OFFSET) * 1000) < 60_000  # above old ms seqs
    store.close()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # the clock stepped back
    store = Store(path)
    other = Store(path)  # the CLI, another process on the same file
    got = [store.next_seq("headend"), other.next_seq("headend"), store.next_seq("headend")]
    assert got == [a + 2, a + 3, a + 4]
    assert other.next_seq("headend-cli") < a  # another sender, its own counter
    store.close()
    other.close()


def test_an_older_store_is_migrated_keeping_its_rows(tmp_path):
    db = sqlite3.connect(tmp_path / "old.sqlite")
    db.executescript(MIGRATIONS[0])
    db.execute("INSERT INTO settings VALUES ('k', '1')")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    s = Store(tmp_path / "old.sqlite")
    assert s.version == len(MIGRATIONS) and s.setting("k") == 1 and s.scheduled() == []
    s.close()


def counts(store: Store) -> tuple[int, int]:
    return (len(store.broadcasts()), len(store.setting("rules") or {}))


def test_store_migrates_hashes_passwords_and_keeps_what_it_committed(tmp_path):
    s = Store(tmp_path / "h.sqlite")
    assert s.version == len(MIGRATIONS)
    s.add_user("lan", "mat-khau-dai", "operator", "test")
    s.close()
    db = sqlite3.connect(tmp_path / "h.sqlite")
    pw = db.execute("SELECT pw_hash FROM users").fetchone()[0]
    assert pw.startswith("$argon2id$") and "mat-khau-dai" not in pw
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with pytest.raises(Exception, match="newer head-end"):
        Store(tmp_path / "h.sqlite")
    db = sqlite3.connect(tmp_path / "h.sqlite")
    db.execute(f"PRAGMA user_version={len(MIGRATIONS)}")
    db.commit()
    db.close()
    s = Store(tmp_path / "h.sqlite")
    assert s.login("lan", "wrong-password") is None and s.login("nobody", "x" * 8) is None
    token, role = s.login("lan", "mat-khau-dai") or ("", "")
    assert role == "operator" and s.session(token) == ("lan", "operator")
    with pytest.raises(Exception, match="unknown role"):
        s.add_user("x", "12345678", "root", "test")
    with pytest.raises(Exception, match="shorter than 8"):
        s.add_user("x", "short", "viewer", "test")
    assert [(a["action"], a["result"]) for a in s.audit_log()] == [
        ("login", "ok"), ("login", "refused: wrong name or password"),
        ("login", "refused: wrong name or password"), ("user.set", "ok")]


def test_no_session_wrong_role_and_bad_input_change_nothing(rig):
    c, store = rig["client"], rig["store"]
    before = counts(store)
    for method, path, body in (("get", "/api/nodes", None),
                               ("post", "/api/broadcast", {"file": "news"}),
                               ("post", "/api/emergency", {"action": "start"}),
                               ("post", "/api/rules", {"text": RULES}),
                               ("get", "/api/rules", None),
                               ("post", "/api/rules/check", {"text": RULES}),
                               ("get", "/api/scheduled", None),
                               ("delete", "/api/scheduled/1", None),
                               ("post", "/api/broadcast/1/stop", None),
                               ("get", "/api/live", None),
                               ("get", "/api/report?from=2026-01-01&to=2026-01-02", None)):
        r = c.request(method, path, json=body)
        assert r.status_code == 401 and r.json()["error"] == "not logged in", (path, r.text)
    assert c.post("/api/login", json={"user": "oanh", "password": "guess"}).status_code == 401
    viewer, oper = login(c, "vien"), login(c, "oanh")
    r = c.post("/api/broadcast", json={"file": "news"}, headers=viewer)
    assert r.status_code == 403 and "operator role" in r.json()["error"]
    r = c.post("/api/rules", json={"text": RULES}, headers=oper)
    assert r.status_code == 403 and "admin role" in r.json()["error"]
    r = c.post("/api/broadcast", json={"file": "news", "zones": ["thon-9"]}, headers=oper)
    assert r.status_code == 400 and "unknown zones thon-9" in r.json()["error"]
    r = c.post("/api/broadcast", json={"file": "missing"}, headers=oper)
    assert r.status_code == 400 and "no file 'missing'" in r.json()["error"]
    r = c.post("/api/broadcast", json={"file": "news", "priority": "emergency"}, headers=oper)
    assert r.status_code == 422 and r.json()["error"].startswith("bad input: priority")
    r = c.post("/api/broadcast", json={"file": "news", "volume": 100}, headers=oper)
    assert r.status_code == 422 and "volume" in r.json()["error"]
    r = c.post("/api/rules", json={"text": "version = 3\n"}, headers=login(c, "an"))
    assert r.status_code == 400 and "version" in r.json()["error"]
    assert counts(store) == before
    audit = [(a["who"], a["action"], a["result"].split(":")[0]) for a in store.audit_log(8)]
    assert audit == [("an", "rules.push", "refused"), ("an", "login", "ok"),
                     ("oanh", "broadcast", "refused"), ("oanh", "broadcast", "refused"),
                     ("oanh", "rules.push", "refused"), ("vien", "broadcast", "refused"),
                     ("oanh", "login", "ok"), ("vien", "login", "ok")]
    r = c.post("/api/broadcast/1/stop", headers=viewer)
    assert r.status_code == 403 and "operator role" in r.json()["error"]
    r = c.post("/api/broadcast/1/stop", headers=oper)
    assert r.status_code == 400 and "not a live relay that is running" in r.json()["error"]
    assert c.get("/api/live", headers=viewer).json() == []
    assert counts(store) == before


def test_broadcast_emergency_and_rules_reach_the_broker_signed(rig):
    c, store, lis, keys = rig["client"], rig["store"], rig["listener"], rig["keys"]
    n0 = len(lis.got)
    oper, admin = login(c, "oanh"), login(c, "an")
    r = c.post("/api/broadcast", json={"file": "news", "zones": ["thon-1"], "title": "Tin"},
               headers=oper)
    assert r.status_code == 200, r.text
    sent = r.json()
    assert sent["state"] == "sent" and sent["bulletin"] == f"b{sent['id']}"
    assert c.post("/api/emergency", json={"action": "start", "title": "Bão"},
                  headers=oper).status_code == 200
    assert c.post("/api/emergency", json={"action": "stop"}, headers=oper).status_code == 200
    r = c.post("/api/rules", json={"text": RULES}, headers=admin)
    assert r.status_code == 200 and r.json()["version"] == "v7"
    # one message per node, on its own topic, signed with its own key and naming
    # it: the play for thon-1 reaches n1 only, the rest both nodes
    got = lis.wait(n0 + 7)[n0:]
    P = f"loaxa/{COMMUNE}/node"
    assert [g[0] for g in got] == [f"{P}/n1/cmd", f"{P}/n1/cmd", f"{P}/n2/cmd", f"{P}/n1/cmd",
                                   f"{P}/n2/cmd", f"{P}/n1/rules", f"{P}/n2/rules"]
    bodies = [envelope.open_(g[1], keys[g[1]["to"]], g[0].rpartition("/")[2],
                             g[0].split("/")[-2]) for g in got]
    play = bodies[0]
    assert play["cmd"] == "play" and play["zones"] == ["thon-1"]
    # the broadcast's own stream token: the stream server serves nothing without one
    base, token, name = play["session"]["url"].rsplit("/", 2)
    assert (base, name) == ("http://127.0.0.1:8001/file", "news")
    assert rig["he"].files.allows(token, "news") and not rig["he"].files.allows(token, "x")
    assert bodies[1] == bodies[2] == {"cmd": "emergency", "action": "start", "tone": 1200,
                                      "title": "Bão", "bulletin": f"b{sent['id'] + 1}"}
    assert bodies[3] == bodies[4] == {"cmd": "emergency", "action": "stop"}
    assert bodies[5]["ver"] == bodies[6]["ver"] == "v7"
    for g in got[:5]:
        assert 0 < g[1]["exp"] - g[1]["ts"] <= 300  # commands expire; rules do not
    seqs = [g[1]["seq"] for g in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4  # one sequence per broadcast
    assert [b["state"] for b in store.broadcasts()[:4]] == ["sent"] * 4
    assert store.setting("rules")["text"] == RULES
    r = c.get("/api/audit", headers=admin)
    assert [a["action"] for a in r.json()[:4]] == ["rules.push", "emergency", "emergency",
                                                  "broadcast"]
    assert c.get("/api/audit", headers=oper).status_code == 403
    viewer = login(c, "vien")
    r = c.get("/api/rules", headers=viewer)
    assert r.json() == {"version": "v7", "name": "rules.toml", "seq": seqs[-1], "text": RULES}
    # the checker, for the page's editor: nothing sent, nothing stored
    r = c.post("/api/rules/check", json={"text": RULES.replace("21:00", "25:00")},
               headers=viewer).json()
    assert (r["ok"], r["line"], r["key"]) == (False, 6, "window[0].time"), r
    r = c.post("/api/rules/check", json={"text": RULES}, headers=viewer).json()
    assert r["ok"] and r["version"] == "v7" and [len(z["days"]) for z in r["week"]] == [7]
    assert r["week"][0]["days"][0]["blocks"] == [{"from": 360, "to": 1260, "window": "day",
                                                  "volume": 80, "items": []}]
    assert len(lis.got) == n0 + 7 and store.setting("rules")["seq"] == seqs[-1]


def test_nodes_and_report_come_from_what_nodes_publish(rig):
    c, node, store = rig["client"], rig["node"], rig["store"]
    start = timeutil.t2k(2026, 11, 23, 2, 0)  # 09:00 in Việt Nam
    node.publish(f"loaxa/{COMMUNE}/node/n1/status", json.dumps(
        {"state": "online", "node": "n1", "zones": ["thon-1"], "volume": 70}), retain=True)
    events = [("n1", 1, 90_000, start), ("n2", 1, 60_000, start + 30),
              ("n1", 2, 30_000, start + 60),  # overlaps the first: counted once
              ("n1", 2, 30_000, start + 60)]  # a duplicate (sent again): dropped
    for n, num, ms, t0 in events:
        node.publish(f"loaxa/{COMMUNE}/node/{n}/event", json.dumps(
            {"type": "play", "node": n, "boot": 3, "n": num, "t": t0, "start": t0,
             "duration_ms": ms, "outcome": "done", "title": f"bản tin {n}-{num}"}))
    deadline = time.monotonic() + 10
    while len(store.events("play")) < 3 or store.nodes()[0]["state"] != "online":
        assert time.monotonic() < deadline, store.events("play")
        time.sleep(0.05)
    time.sleep(0.3)
    assert len(store.events("play")) == 3
    viewer = login(c, "vien")
    nodes = c.get("/api/nodes", headers=viewer).json()
    assert [(n["node_id"], n["state"]) for n in nodes] == [("n1", "online"), ("n2", "unknown")]
    assert nodes[0]["status"]["volume"] == 70 and nodes[0]["last_seen"]
    r = c.get("/api/report?from=2026-11-23&to=2026-11-23", headers=viewer)
    assert r.status_code == 200
    assert r.json()["zones"] == [
        {"zone": "thon-1", "day": "2026-11-23", "seconds": 90.0, "minutes": 1.5},
        {"zone": "thon-2", "day": "2026-11-23", "seconds": 60.0, "minutes": 1.0}]
    assert len(r.json()["plays"]) == 3
    r = c.get("/api/report?from=2026-11-23&to=2026-11-23&format=csv", headers=viewer)
    assert r.headers["content-type"].startswith("text/csv")
    zones, uptime, offline, plays = r.text.split("\n\n")
    assert zones.splitlines() == ["zone,day,minutes,seconds", "thon-1,2026-11-23,1.5,90.0",
                                  "thon-2,2026-11-23,1.0,60.0"]
    assert uptime.splitlines()[0] == "node,zones,uptime_pct,online_s,observed_s,offline_periods"
    assert offline.splitlines() == ["node,offline_from,offline_to,seconds,cause"]
    assert c.get("/api/report?from=2026-11-24&to=2026-11-24",
                 headers=viewer).json()["zones"] == []
    r = c.get("/api/report?from=2026-11-24&to=2026-11-23", headers=viewer)
    assert r.status_code == 400 and "ends before it starts" in r.json()["error"]
    r = c.get("/api/report?from=yesterday&to=2026-11-23", headers=viewer)
    assert r.status_code == 422 and "from" in r.json()["error"]
    assert date  # the report's days are local dates


def test_a_broadcast_at_a_time_waits_in_the_store_and_can_be_cancelled(rig):
    c, store = rig["client"], rig["store"]
    viewer, oper = login(c, "vien"), login(c, "oanh")
    sent = len(store.broadcasts())
    soon = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 7 * 3600 + 3600))
    r = c.post("/api/broadcast", json={"file": "news", "zones": ["thon-2"], "at": soon},
               headers=oper)
    assert r.status_code == 200 and r.json()["state"] == "pending", r.text
    sid = r.json()["id"]
    assert r.json()["due"] == soon + "+07:00"  # no offset: the commune's time
    assert len(store.broadcasts()) == sent  # nothing sent yet
    listed = c.get("/api/scheduled", headers=viewer).json()
    assert (listed[0]["id"], listed[0]["zones"], listed[0]["state"]) == (sid, ["thon-2"],
                                                                        "pending")
    assert c.delete(f"/api/scheduled/{sid}", headers=viewer).status_code == 403
    for bad in ({"file": "news", "at": "2020-01-01T06:00:00"},  # passed
                {"file": "news", "at": "soon"}, {"file": "nope", "at": soon},
                {"file": "news", "zones": ["thon-9"], "at": soon}):
        r = c.post("/api/broadcast", json=bad, headers=oper)
        assert r.status_code in (400, 422) and r.json()["error"], (bad, r.text)
    assert len(store.scheduled()) == len(listed)
    assert c.delete(f"/api/scheduled/{sid}", headers=oper).json() == {"id": sid,
                                                                      "state": "cancelled"}
    r = c.delete(f"/api/scheduled/{sid}", headers=oper)
    assert r.status_code == 400 and "cancelled, not pending" in r.json()["error"]
    r = c.delete("/api/scheduled/999", headers=oper)
    assert r.status_code == 400 and "no scheduled broadcast 999" in r.json()["error"]
    rig["he"].fire_due()
    assert len(store.broadcasts()) == sent  # a cancelled one never goes out


def test_uptime_and_offline_periods_come_from_the_will_and_heartbeat_gaps(tmp_path):
    store = Store(tmp_path / "headend.sqlite")
    store.sync_nodes([{"node_id": "n1", "zones": ["thon-1"]},
                      {"node_id": "n2", "zones": ["thon-2"]}])
    he = Headend(store)
    nine = timeutil.t2k(2026, 11, 20, 2, 0) + timeutil.UNIX_OFFSET  # 09:00 in Việt Nam
    for node, at, state in (("n1", 0, "online"), ("n1", 60, "online"),
                            ("n1", 120, "offline"),  # its will: the connection dropped
                            ("n1", 600, "online"), ("n1", 660, "online"),
                            ("n1", 1260, "online"),  # 10 min silent, no will
                            ("n2", 0, "online")):
        store.ingest_status(node, {"state": state, "node": node}, nine + at)
    rep = he.report(("an", "admin"), date(2026, 11, 20), date(2026, 11, 20))
    n1, n2 = rep["nodes"]
    end = 15 * 3600 - 1260  # from the last status to midnight: silent
    assert [(o["from"][11:], o["seconds"], o["cause"]) for o in n1["offline"]] == [
        ("09:02:00+07:00", 480.0, "will"), ("09:12:00+07:00", 540.0, "silent"),
        ("09:22:00+07:00", end - 60.0, "silent")]
    assert n1["observed_s"] == 15 * 3600 and n1["online_s"] == 15 * 3600 - 1020 - end + 60
    assert n2["offline"][0]["from"][11:] == "09:01:00+07:00"  # one heartbeat after it
    # the day before n1's first status counts nothing, nor against it
    assert he.report(("an", "admin"), date(2026, 11, 19), date(2026, 11, 19)
                     )["nodes"][0] == {"node": "n1", "zones": ["thon-1"], "observed_s": 0.0,
                                       "online_s": 0.0, "uptime_pct": None, "offline": []}
    csv = he.report_csv(rep).split("\n\n")
    assert csv[1].splitlines()[1] == f"n1,thon-1,{n1['uptime_pct']},{n1['online_s']},54000.0,3"
    assert csv[2].splitlines()[1] == ("n1,2026-11-20T09:02:00+07:00,"
                                      "2026-11-20T09:10:00+07:00,480.0,will")
    store.close()


@pytest.mark.parametrize("serve", [True, False], ids=["serve", "cli"])
def test_a_relay_only_comes_from_where_a_relay_can_come_from(rig, monkeypatch, serve):
    """A source that is no station or microphone is refused before ffmpeg starts
    or anything is sent or queued, by serve (which relays) and by the CLI (which
    hands live sources to serve)."""
    c, store, he, lis = rig["client"], rig["store"], rig["he"], rig["listener"]
    started: list = []
    monkeypatch.setattr(streamer.subprocess, "Popen", lambda *a, **k: started.append(a))
    monkeypatch.setattr(he, "io", rig["io"] if serve else None)
    oper = login(c, "oanh")
    before = (counts(store), len(store.scheduled()), len(lis.got))
    for source in ("file:///etc/passwd", "concat:/etc/passwd|/etc/hosts",
                   "subfile,,start,0,end,64,,:/etc/passwd", "tcp://127.0.0.1:8080",
                   "gopher://127.0.0.1:70/_GET", "FILE:///etc/passwd", "/etc/passwd",
                   "../news", "pipe:0", "data:audio/wav;base64,UklGRg==", "http:/etc/passwd",
                   "alsa:default; rm -rf /", "https://host/a b", "udp"):
        r = c.post("/api/broadcast", json={"file": source}, headers=oper)
        assert r.status_code == 400, (source, r.text)
        err = r.json()
        assert ("a relay cannot come from" in err["error"] or "sound card" in err["error"]
                or "no file" in err["error"]), (source, err)
    r = c.post("/api/broadcast", json={"file": "file:///etc/passwd"}, headers=oper).json()
    assert r == {"error": "a relay cannot come from file:", "hint": streamer.SOURCES_HINT}
    assert started == []  # no ffmpeg
    assert (counts(store), len(store.scheduled()), len(lis.got)) == before
    assert store.audit_log(1)[0]["result"] == "refused: a relay cannot come from file:"


def test_ffmpeg_is_held_to_the_sources_protocols(tmp_path, monkeypatch):
    """The second wall: ffmpeg may open only the protocols of the source's scheme
    (-protocol_whitelist), a local file only as a file."""
    argv: list[list[str]] = []
    monkeypatch.setattr(streamer.subprocess, "Popen", lambda a, **k: argv.append(a))
    (tmp_path / "a:b.wav").write_bytes(b"RIFF")
    for source, allow in (("http://radio.example/live.mp3", "http,https,tls,tcp,crypto"),
                          ("HTTPS://radio.example/x.m3u8", "http,https,tls,tcp,crypto"),
                          ("rtp://@239.1.1.1:5004", "rtp,udp"), ("srt://10.0.0.1:9000", "srt,udp"),
                          (str(tmp_path / "a:b.wav"), "file")):
        streamer.ffmpeg_pcm(source, 16000)
        a = argv[-1]
        assert a[a.index("-protocol_whitelist") + 1] == allow, a
    assert a[a.index("-i") + 1] == str(tmp_path / "a:b.wav")
    streamer.ffmpeg_pcm("alsa:hw:1,0", 16000)
    assert argv[-1][argv[-1].index("-f") + 1:argv[-1].index("-i") + 2] == ["alsa", "-i", "hw:1,0"]
    for bad in ("file:///etc/passwd", "gopher://x/", "concat:a|b"):
        with pytest.raises(LoaxaError):
            streamer.ffmpeg_pcm(bad, 16000)
    assert len(argv) == 6


def test_openapi_describes_every_endpoint(rig):
    paths = rig["client"].get("/openapi.json", headers=login(rig["client"], "vien")).json()["paths"]
    assert set(paths) == {"/api/login", "/api/logout", "/api/nodes", "/api/broadcast",
                          "/api/emergency", "/api/rules", "/api/report", "/api/audit",
                          "/api/stream", "/api/scheduled", "/api/scheduled/{sid}",
                          "/api/rules/check", "/api/broadcast/{bid}/stop", "/api/live",
                          "/api/media", "/api/media/{name}", "/api/media/{name}/audio",
                          "/api/tts", "/api/alerts", "/api/alerts/{aid}/ack",
                          "/api/rules/form", "/api/lockouts", "/api/lockouts/{user}",
                          "/api/nodes/{node}/history", "/api/nodes/{node}/command",
                          "/api/users", "/api/users/{name}"}


def test_web_page_speaks_vietnamese_unless_asked_and_lists_nodes_live(rig):
    c = TestClient(create_app(rig["he"]))
    page = c.get("/")
    assert page.status_code == 200 and 'lang="vi"' in page.text and "Đăng nhập" in page.text
    assert "Log in" in c.get("/", headers={"Accept-Language": "en-GB,en;q=0.8"}).text
    r = c.post("/login", data={"user": "oanh", "password": "wrong"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/?bad=1"
    assert "Sai tên người dùng hoặc mật khẩu." in c.get("/?bad=1").text
    r = c.post("/login", data={"user": "vien", "password": "vien-secret"})
    page = c.get("/").text
    assert t_in("vi", "web.now") in page and 'id="node-n1"' in page and 'id="node-n2"' in page
    assert 'viewport' in page  # phone-width screens
    with c.stream("GET", "/api/stream?lang=en") as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        lines = []
        for line in s.iter_lines():
            lines.append(line)
            if line == "" and len(lines) > 1:
                break
    assert lines[0] == "event: nodes" and 'id="node-n1"' in "".join(lines)
    assert "".join(lines).count("<td") == 16  # every column, as the clusters page shows them
    with c.stream("GET", "/api/stream?lang=en&view=brief") as s:  # the overview's four
        for line in s.iter_lines():
            if 'id="node-n1"' in line:
                assert line.count("<td") == 8, line  # two rows of four
                break
    c.post("/logout")
    assert "Đăng nhập" in c.get("/").text
    assert TestClient(create_app(rig["he"])).get("/api/stream").status_code == 401


def test_serve_sends_its_signed_time_to_a_node_whose_clock_is_not_trusted(rig):
    """docs/envelope.md: a node without trusted time gets a `time` command (then
    it can judge expiry), at most every HINT_S, and only a node that says so."""
    he, store, lis, keys = rig["he"], rig["store"], rig["listener"], rig["keys"]
    n0 = len(lis.got)
    now = time.time()
    store.ingest_status("n1", {"state": "online", "node": "n1", "clock_synced": False}, now)
    store.ingest_status("n2", {"state": "online", "node": "n2", "clock_synced": True}, now)
    assert he.hint_clocks() == ["n1"]
    (t, env, _), = lis.wait(n0 + 1)[n0:]
    assert t == f"loaxa/{COMMUNE}/node/n1/cmd"
    assert envelope.open_(env, keys["n1"], "cmd", "n1") == {"cmd": "time"}
    assert he.hint_clocks() == []  # not again before HINT_S
    time.sleep(0.3)
    assert len(lis.got) == n0 + 1
    assert store.audit_log(1)[0]["action"] == "clock.hint"


def test_one_clusters_history_and_commands_to_it_alone(rig):
    c, store, lis, keys = rig["client"], rig["store"], rig["listener"], rig["keys"]
    oper, admin, view = login(c, "oanh"), login(c, "an"), login(c, "vien")
    now = time.time()
    for k in range(31):  # heartbeats for half an hour, its will, back for the last 10 min
        store.ingest_status("n2", {"state": "online", "node": "n2"}, now - 3600 + 60 * k)
    store.ingest_status("n2", {"state": "offline", "node": "n2"}, now - 1800)
    for k in range(11):
        store.ingest_status("n2", {"state": "online", "node": "n2"}, now - 600 + 60 * k)
    h = c.get("/api/nodes/n2/history", headers=view).json()
    spans = [(s["state"], round(s["width"] * 24 * 60 / 100)) for s in h["timeline"]]
    assert [s for s, _ in spans][-3:] == ["online", "offline", "online"], spans
    assert [m for _, m in spans][-3:] == [30, 20, 10], spans  # minutes of the day
    assert abs(sum(s["width"] for s in h["timeline"]) - 100) < 0.01
    assert c.get("/api/nodes/nope/history", headers=view).status_code == 400
    n0 = len(lis.got)
    assert c.post("/api/nodes/n2/command", json={"cmd": "volume", "volume": 40},
                  headers=view).status_code == 403
    assert c.post("/api/nodes/n2/command", json={"cmd": "reboot"},
                  headers=oper).status_code == 403  # a restart is the admin's
    assert c.post("/api/nodes/n2/command", json={"cmd": "volume", "volume": 140},
                  headers=oper).status_code == 422
    assert c.post("/api/nodes/n2/command", json={"cmd": "volume"},
                  headers=oper).status_code == 400
    for body, who in (({"cmd": "volume", "volume": 40}, oper), ({"cmd": "tone"}, oper),
                      ({"cmd": "stop"}, oper), ({"cmd": "reboot"}, admin)):
        r = c.post("/api/nodes/n2/command", json=body, headers=who)
        assert r.status_code == 200 and r.json()["state"] == "sent", r.text
    got = lis.wait(n0 + 4)[n0:]
    assert {g[0] for g in got} == {f"loaxa/{COMMUNE}/node/n2/cmd"}  # n2 alone
    cmds = [envelope.open_(g[1], keys["n2"], "cmd", "n2") for g in got]
    assert [x["cmd"] for x in cmds] == ["volume", "tone", "stop", "reboot"]
    assert cmds[0]["volume"] == 40 and cmds[1]["freq"] == 1000
    acts = [a["action"] for a in store.audit_log(20) if a["action"].startswith("node.")]
    assert acts[:4] == ["node.reboot", "node.stop", "node.tone", "node.volume"]
    page = c.get("/clusters/n2", headers=admin)
    assert page.status_code == 200 and 'id="timeline"' in page.text and "data-cmd=\"reboot\"" \
        in page.text


def test_files_url_for_rules_signed_elsewhere_carries_a_token_for_every_file(rig):
    he = rig["he"]
    url = he.files_token_url(("an", "admin"))
    base, token, end = url.rsplit("/", 2)
    assert (base, end) == ("http://127.0.0.1:8001/file", "")
    assert he.files.allows(token, "news") and he.files.allows(token, "any-other")
    assert not he.files.allows(token[:-1] + ("0" if token[-1] != "0" else "1"), "news")
    with pytest.raises(Denied):
        he.files_token_url(("vien", "viewer"))


def test_the_users_page_adds_changes_and_removes_users_audited(rig):
    c, store = rig["client"], rig["store"]
    admin, oper = login(c, "an"), login(c, "oanh")
    assert c.get("/api/users", headers=oper).status_code == 403
    assert c.put("/api/users/moi", json={"role": "operator", "password": "short"},
                 headers=admin).status_code == 422
    r = c.put("/api/users/moi", json={"role": "operator", "password": "moi-secret-1"},
              headers=admin)
    assert r.status_code == 200, r.text
    rows = {u["name"]: u for u in c.get("/api/users", headers=admin).json()}
    assert rows["moi"]["role"] == "operator" and rows["moi"]["created_by"] == "an"
    moi = c.post("/api/login", json={"user": "moi", "password": "moi-secret-1"})
    assert moi.status_code == 200
    assert c.put("/api/users/moi", json={"role": "viewer", "password": "moi-secret-2"},
                 headers=admin).status_code == 200
    # the new password and role end the session the old ones opened
    assert c.get("/api/nodes", headers={"Authorization": "Bearer " + moi.json()["token"]}
                 ).status_code == 401
    r = c.put("/api/users/an", json={"role": "viewer", "password": "an-secret-xx"},
              headers=admin)
    assert r.status_code == 400 and "own admin role" in r.json()["error"]
    assert c.delete("/api/users/an", headers=admin).status_code == 400
    assert c.delete("/api/users/moi", headers=oper).status_code == 403
    assert c.delete("/api/users/moi", headers=admin).status_code == 200
    assert "moi" not in {u["name"] for u in c.get("/api/users", headers=admin).json()}
    acts = [(a["action"], a["result"]) for a in store.audit_log(30) if a["action"].startswith(
        "user.") and a["detail"].get("user") in ("moi", "an")]
    assert acts[0] == ("user.remove", "ok") and ("user.set", "ok") in acts
    page = c.get("/users", headers=admin)
    assert page.status_code == 200 and 'id="user-set"' in page.text
    assert c.get("/users", headers=oper).status_code == 403


def test_every_page_of_the_navigation_by_role(rig):
    """Viewers see every page but users, operators get the forms that act, the admin
    the schedule forms, the raw rules' buttons and the users page; each page says
    where it is in the navigation; one not logged in goes to the login form."""
    c = rig["client"]
    who = {r: login(c, u) for r, u in (("viewer", "vien"), ("operator", "oanh"),
                                       ("admin", "an"))}
    acts = {"/bulletins": 'id="upload"', "/broadcast": 'id="broadcast"',
            "/schedule": 'id="sched-form"'}
    for path, nav in (("/", "overview"), ("/clusters", "clusters"), ("/bulletins", "bulletins"),
                      ("/broadcast", "broadcast"), ("/schedule", "schedule"),
                      ("/report", "reports"), ("/clusters/n1", "clusters"), ("/users", "users")):
        r = TestClient(c.app).get(path, follow_redirects=False)
        if path == "/":
            assert 'action="/login"' in r.text and 'id="nav-' not in r.text
        else:
            assert r.status_code == 303 and r.headers["location"].startswith("/?"), path
        for role, h in who.items():
            r = c.get(path, headers=h)
            if path == "/users" and role != "admin":
                assert r.status_code == 403, (path, role)
                continue
            assert r.status_code == 200, (path, role, r.text[:200])
            page = r.text
            assert f'id="nav-{nav}" aria-current="page"' in page, (path, role)
            assert ('id="nav-users"' in page) == (role == "admin"), (path, role)
            assert page.count('id="alerts"') == 1, (path, role)  # the banner, once
            if path in acts:
                needs = "admin" if path == "/schedule" else "operator"
                assert (acts[path] in page) == (role in ("admin", needs)), (path, role)
    # the overview: the clusters at a glance; the broadcast page with a bulletin chosen
    page = c.get("/?lang=en", headers=who["viewer"]).text
    assert "of 2 loudspeaker clusters online" in page
    page = c.get("/broadcast?file=news", headers=who["operator"]).text
    assert '<option value="news" selected>' in page
    # the reports page opened without dates: this month
    today = rig["he"].today()
    page = c.get("/report", headers=who["viewer"]).text
    assert t_in("vi", "web.rep.title", start=today.replace(day=1).isoformat(),
                end=today.isoformat()) in page
