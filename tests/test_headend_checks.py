"""What nodes send is checked before the head-end believes it (docs/headend.md,
"What nodes send is checked"): through a real broker (the embedded one and
mosquitto), a malformed status or event is dropped, counted on its node's row
and never stored or counted in the report; the head-end's own MQTT connection
outlives a flood of them; rows an older head-end stored unchecked render on
every page; the CSV opens as text whatever the titles say."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import date

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_headend_api import COMMUNE, Listener, commune, headend_store, login

from loaxa.control import Controller
from loaxa.headend.amqtt_access import InventoryAccess
from loaxa.headend.app import create_app
from loaxa.headend.server import EmbeddedBroker, Loop, connect
from loaxa.headend.service import Headend
from loaxa.headend.store import MIGRATIONS, Store
from loaxa.rig.broker import Broker, free_port, mosquitto_path
from loaxa_node import envelope, timeutil

DAY = date(2026, 11, 23)
START = timeutil.t2k(2026, 11, 23, 2, 0)  # 09:00 in Việt Nam, the report's day
PAGES = ("/", "/map", "/scheduled", f"/report?from={DAY}&to={DAY}", "/api/nodes",
         f"/api/report?from={DAY}&to={DAY}", f"/api/report?from={DAY}&to={DAY}&format=csv",
         "/api/scheduled", "/api/live", "/api/rules", "/api/audit", "/docs", "/openapi.json")


def play(node: str, n: int, **over: object) -> dict:
    doc = {"type": "play", "node": node, "boot": 3, "n": n, "t": START, "start": START + 60 * n,
           "duration_ms": 30_000, "outcome": "done", "title": f"bản tin {n}",
           "priority": "normal", "bulletin": f"b{n}", "volume": 70, "underruns": 0}
    return {**doc, **over}


def status(node: str, **over: object) -> dict:
    doc = {"state": "online", "node": node, "fw": "0.1.0", "zones": ["thon-1"],
           "location": "10.5,105.1", "volume": 70, "play": "stopped", "playing": None,
           "net": {"type": "host", "up": True, "signal": None}, "uptime_s": 5,
           "counters": {"cmd_ok": 1}}
    return {**doc, **over}


@pytest.fixture(scope="module", params=["embedded", "mosquitto"])
def rig(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("checks")
    mosq = None
    if request.param == "mosquitto" and mosquitto_path() is None:
        pytest.skip("mosquitto not installed")
    # fake-nodes publishes what any node could, and what none may
    keys, listen_pw, fake_pw = commune(tmp, "fake-nodes")
    if request.param == "mosquitto":
        mosq = Broker(tmp / "broker", inventory=tmp / "inv.sqlite", communes=(COMMUNE,)).start()
    io = Loop()
    emb = None if mosq else EmbeddedBroker(
        io, "127.0.0.1", free_port(),
        InventoryAccess(tmp / "inv.sqlite", "loaxa", [COMMUNE])).start()
    url = mosq.url if mosq else emb.url  # type: ignore[union-attr]
    store, cfg = headend_store(tmp, url)
    he = Headend(store)
    he.connect = lambda: connect(cfg, he, store, "headend-checks")
    _ = he.ctl
    store.add_user("an", "an-secret", "admin", "test")
    node = Controller(url, COMMUNE, client_id="fake-nodes", user="fake-nodes", password=fake_pw)
    client = TestClient(create_app(he))
    # the genuine play logs of the report's day
    for n in (1, 2):
        node.publish(f"loaxa/{COMMUNE}/node/n1/event", json.dumps(play("n1", n)))
    wait(lambda: len(store.events("play")) == 2)
    yield {"he": he, "store": store, "client": client, "node": node, "keys": keys,
           "io": io, "url": url, "listen_pw": listen_pw, "admin": login(client, "an")}
    client.close()
    node.close()
    he.close()
    if emb:
        emb.stop()
    io.stop()
    if mosq:
        mosq.stop()


def wait(pred, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


MARK = [0]


def sync(rig) -> None:
    """Everything published before has been handled: a valid status of n2 with
    a new uptime is published last and waited for (one publisher, one order)."""
    MARK[0] += 1
    rig["node"].publish(f"loaxa/{COMMUNE}/node/n2/status",
                        json.dumps(status("n2", zones=["thon-2"], uptime_s=MARK[0])))
    wait(lambda: (rig["store"].nodes()[1]["status"] or {}).get("uptime_s") == MARK[0])


def report(rig) -> dict:
    r = rig["client"].get(f"/api/report?from={DAY}&to={DAY}", headers=rig["admin"])
    assert r.status_code == 200, r.text
    return {k: r.json()[k] for k in ("zones", "plays")}


def every_page_answers(rig) -> None:
    c, h = rig["client"], rig["admin"]
    for path in PAGES:
        r = c.get(path, headers=h)
        assert r.status_code == 200, (path, r.text[-500:])
    with c.stream("GET", "/api/stream", headers=h) as s:
        assert s.status_code == 200
        assert next(s.iter_lines()) == "event: nodes"


def test_bad_statuses_and_events_are_dropped_counted_and_shown(rig):
    store, node, c = rig["store"], rig["node"], rig["client"]
    sync(rig)
    before, rows, bad = report(rig), len(store.events()), rig["he"].malformed().get("n1", 0)
    history = store._read("SELECT count(*) FROM status")[0][0]
    sent = [("n1/status", status("n1", location=123)),  # made the page fail before
            ("n1/status", status("n1", zones=5)),
            ("n1/status", status("n2")),  # another node's id on n1's topic
            ("n1/status", status("n1", state="up")),
            ("n9/status", status("n9")),  # a node the inventory does not know
            ("n1/event", play("n1", 7, duration_ms="30000")),  # broke every report
            ("n1/event", play("n1", 8, boot={"x": 1})),  # raised in the MQTT handler
            ("n1/event", play("n1", 9, start=-5)),
            ("n1/event", play("n1", 10, title="x" * 300)),
            ("n1/event", {"type": "hack", "node": "n1", "boot": 1, "n": 1}),
            ("n1/event", [1, 2]), ("n1/event", "b\xff"), ("n9/event", play("n9", 1))]
    for t, doc in sent:
        payload = doc.encode("latin-1") if isinstance(doc, str) else json.dumps(doc)
        node.publish(f"loaxa/{COMMUNE}/node/{t}", payload)
    sync(rig)
    assert len(store.events()) == rows  # nothing stored
    assert store._read("SELECT count(*) FROM status")[0][0] == history + 1  # the marker
    assert report(rig) == before
    assert [n["node_id"] for n in store.nodes()] == ["n1", "n2"]  # n9 is not listed
    assert rig["he"].malformed()["n1"] == bad + 11, "|".join(rig["he"].bad["n1"])
    assert rig["he"].bad["n1"]["location: not a text of at most 64 chars"] >= 1
    assert rig["he"].bad["n1"]["duration_ms: not an integer 0..604800000"] >= 1
    assert rig["he"].bad["n9"]["not a node of the inventory"] >= 2
    page = c.get("/clusters?lang=en", headers=rig["admin"]).text
    row = page[page.index('id="node-n1"'):]
    assert f"{bad + 11} malformed messages" in row[:row.index("</tr>")]
    assert "n9 × " in page
    assert "tin nhắn sai dạng" in c.get("/clusters?lang=vi", headers=rig["admin"]).text
    every_page_answers(rig)


def test_a_forged_event_cannot_take_a_nodes_event_numbers(rig):
    store, node = rig["store"], rig["node"]
    before = len(store.events("play"))
    # someone else sends n1's next event numbers first, with other content
    node.publish(f"loaxa/{COMMUNE}/node/n1/event",
                 json.dumps(play("n1", 3, start=START - 86400, title="forged")))
    real = play("n1", 3, start=START - 2 * 86400)
    node.publish(f"loaxa/{COMMUNE}/node/n1/event", json.dumps(real))
    node.publish(f"loaxa/{COMMUNE}/node/n1/event", json.dumps(real))  # sent again: a copy
    sync(rig)
    got = store.events("play")
    assert len(got) == before + 2
    assert any(e["title"] == "bản tin 3" for e in got)  # the node's own is kept
    assert rig["he"].bad["n1"]["boot, n: another event holds them (both kept)"] >= 1


def test_the_connection_outlives_1000_malformed_events_and_an_emergency_follows(rig):
    he, node = rig["he"], rig["node"]
    lis = Listener(rig["io"], rig["url"], rig["listen_pw"])
    connects = he.ctl.client.connects
    for i in range(1000):  # each of these raised in the handler and dropped the connection
        node.publish(f"loaxa/{COMMUNE}/node/n1/event",
                     json.dumps(play("n1", 100 + i, boot=[i], duration_ms={"ms": i})))
    sync(rig)
    oper = rig["admin"]
    n0 = len(lis.got)
    t0 = time.monotonic()
    r = rig["client"].post("/api/emergency", json={"action": "start"}, headers=oper)
    assert r.status_code == 200, r.text
    got = lis.wait(n0 + 2)[n0:n0 + 2]  # each node its own message
    took = time.monotonic() - t0
    for t, env, _ in got:
        to = t.split("/")[-2]
        assert envelope.open_(env, rig["keys"][to], "cmd", to)["action"] == "start"
    assert took < 0.5, f"the emergency reached the nodes after {took:.3f} s"
    assert he.ctl.client.connects == connects and he.ctl.client.up
    rig["client"].post("/api/emergency", json={"action": "stop"}, headers=oper)

    async def close() -> None:
        lis.client.deinit()
    rig["io"].run(close())


# -- arbitrary input ---------------------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)
WRONG = st.one_of(st.text(max_size=300), st.integers(-(2**70), 2**70), st.floats(),
                  st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                       st.integers(), max_size=2),
                  st.booleans())


@st.composite
def damaged(draw: st.DrawFn) -> tuple[str, bytes]:
    """A topic and payload: bytes, any JSON, or a genuine-looking status or play
    log of a known or unknown node with one field made wrong."""
    node = draw(st.sampled_from(["n1", "n2", "n9", "n1/../n2"]))
    channel = draw(st.sampled_from(["status", "event"]))
    kind = draw(st.integers(0, 2))
    if kind == 0:
        payload = draw(st.binary(max_size=300))
    elif kind == 1:
        payload = json.dumps(draw(JSON)).encode()
    else:
        doc = status(node) if channel == "status" else play(node, draw(st.integers(50, 60)))
        field = draw(st.sampled_from(sorted(doc)))
        value = draw(WRONG)
        if field in ("type", "state", "node") or channel == "event":
            # the report's day must not change: a play log may only arrive broken
            value = draw(WRONG.filter(lambda v: not isinstance(v, int) or isinstance(v, bool)
                                      or v < 0) if field not in (
                "title", "priority", "bulletin", "source", "kind")
                else st.integers() | st.lists(st.integers(), max_size=2) | st.text(
                    min_size=513, max_size=600))
        doc[field] = value
        payload = json.dumps(doc).encode()
    return f"loaxa/{COMMUNE}/node/{node}/{channel}", payload


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(msgs=st.lists(damaged(), min_size=1, max_size=6))
def test_whatever_nodes_send_every_page_answers_and_the_report_stays(rig, msgs):
    before = report(rig)
    for t, payload in msgs:
        rig["node"].publish(t, payload)
    sync(rig)
    assert report(rig) == before
    c, h = rig["client"], rig["admin"]
    assert c.get("/", headers=h).status_code == 200
    assert c.get("/map", headers=h).status_code == 200
    assert c.get("/api/nodes", headers=h).status_code == 200


def test_after_arbitrary_input_every_page_and_endpoint_answers(rig):
    every_page_answers(rig)


# -- what an older head-end stored ------------------------------------------------
def test_odd_rows_an_older_head_end_stored_render_everywhere(tmp_path):
    db = sqlite3.connect(tmp_path / "headend.sqlite")
    for m in MIGRATIONS[:2]:
        db.executescript(m)
    db.execute("PRAGMA user_version=2")
    rx = START + timeutil.UNIX_OFFSET + 3600
    odd_status = [json.dumps(s) for s in (
        {"state": "online", "location": 123, "zones": 5, "playing": "x", "net": [1]},
        {"state": 7, "volume": "loud", "counters": "many"}, "not json {")]
    db.executemany("INSERT INTO nodes (node_id, commune, zones, state, last_seen, status) "
                   "VALUES (?,?,?,?,?,?)", [
                       ("n1", COMMUNE, '["thon-1"]', "online", rx, odd_status[0]),
                       ("n2", COMMUNE, "7", "weird", "yesterday", odd_status[1]),
                       ("n3", COMMUNE, "{not json", "online", rx, odd_status[2]),
                       ("ghost", None, '["thon-x"]', "online", rx, odd_status[0])])
    good = play("n1", 1)
    for i, doc in enumerate((good, play("n1", 2, duration_ms="30000"),
                             play("n1", 3, start="9am"), play("n2", 1, boot="3"),
                             {"type": "play", "node": "n1"}, "][", play("ghost", 1))):
        text = doc if isinstance(doc, str) else json.dumps(doc)
        db.execute("INSERT INTO events (node, boot, n, type, rx, doc) VALUES (?,?,?,?,?,?)",
                   ("ghost" if i == 6 else "n2" if i == 3 else "n1", 3, i, "play", rx, text))
        db.execute("INSERT INTO status (node, rx, state, doc) VALUES (?,?,?,?)",
                   ("n1", rx + i, "online" if i % 2 else "mystery", text))
    db.commit()
    db.close()
    store = Store(tmp_path / "headend.sqlite")
    he = Headend(store)
    store.add_user("an", "an-secret", "admin", "test")
    c = TestClient(create_app(he))
    rig = {"client": c, "admin": login(c, "an")}
    every_page_answers(rig)
    assert [n["node_id"] for n in store.nodes()] == ["n1", "n2", "n3"]  # no ghost
    assert [n["status"] for n in store.nodes()] == [None, None, None]
    assert report(rig)["zones"] == [{"zone": "thon-1", "day": str(DAY), "seconds": 30.0,
                                     "minutes": 0.5}]  # only the good play log counts
    store.close()


def test_the_csv_opens_as_text_whatever_the_titles_say(tmp_path):
    store = Store(tmp_path / "headend.sqlite")
    store.sync_nodes([{"node_id": "n1", "zones": ["=thon"]}])
    rx = START + timeutil.UNIX_OFFSET
    for i, title in enumerate(("=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)",
                               "\tx", "\rx", "bản tin", "1-2")):
        store.ingest_event("n1", play("n1", i + 1, title=title, start=START + 100 * i), rx)
    he = Headend(store)
    text = he.report_csv(he.report(("an", "admin"), DAY, DAY))
    plays = text.split("\n\n")[3].encode()
    for raw in (b"'=HYPERLINK(\"\"http://x\"\")", b",'+1,", b",'-2+3,", b",'@SUM(A1),",
                b",'\tx,", b",' x,", b",b\xe1\xba\xa3n tin,", b",1-2,"):
        assert raw in plays, (raw, plays)
    assert text.split("\n\n")[0].splitlines()[1].startswith("'=thon,")
    assert b",30.0," in plays  # numbers stay numbers
    store.close()


def test_what_a_node_plays_in_its_own_words_is_kept():
    """The status and play events a node sends while it plays, in its own vocabulary
    (control/protocol.py): every priority and kind, a payload codec or a tone's sine,
    are kept; a priority or kind outside it is not."""
    from loaxa.headend.checks import check_event, check_status
    from loaxa_node.audio.codec import NAMES
    from loaxa_node.control.protocol import KINDS, PRIORITIES

    for p in PRIORITIES:
        for codec in (*NAMES, "sine"):
            doc = {"state": "online", "node": "n1",
                   "playing": {"source": "tone:1200", "priority": p, "codec": codec}}
            assert check_status("n1", doc)[0] == doc, (p, codec)
        for k in KINDS:
            ev = {"type": "play", "node": "n1", "boot": 1, "n": 1, "priority": p, "kind": k}
            assert check_event("n1", ev)[0] == ev, (p, k)
    bad = {"state": "online", "node": "n1", "playing": {"priority": "urgent"}}
    assert check_status("n1", bad) == (None, "playing: not an object whose priority is one of "
                                       + "|".join(PRIORITIES))
    assert check_event("n1", {"type": "play", "node": "n1", "boot": 1, "n": 1,
                              "kind": "podcast"})[0] is None
