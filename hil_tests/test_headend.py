"""`loaxa headend serve` with simulated nodes, against the embedded broker and
against a real mosquitto (docs/headend.md): rules pushed and a file broadcast
through the API reach the zone's node (its speaker plays the file, the other
zone's does not), the report equals what was played, and a SIGKILL of the
head-end right after an acknowledged broadcast loses nothing, one during a
rules push leaves the API, the broker and the nodes on one set, and a node's
power cut is an offline period of its length in the report."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_control import _cert

from loaxa.errors import LoaxaError
from loaxa.inventory import Inventory
from loaxa.rig.broker import Broker, mosquitto_path
from loaxa.rig.headend import HeadendProcess as Headend
from loaxa.rig.headend import enrol, node_up, poll
from loaxa.rig.process import free_port
from loaxa.sim import SimNode
from loaxa.testsignals import read_wav

COMMUNE = "an-phu"
RULES = """
version = "{version}"
quiet_hours = ""
[[window]]
name = "all-day"
days = "daily"
time = "00:00-24:00"
volume = 80
"""
TONE_HZ, TONE_S = 440, 3
OFF_S = 3  # a power cut's length


@pytest.fixture(params=["embedded", "mosquitto"])
def headend(request, tmp_path, target_name):
    if target_name != "sim":
        pytest.skip("the head-end suites run simulated nodes")
    mosq = None
    if request.param == "mosquitto":
        if mosquitto_path() is None:
            pytest.skip("mosquitto not installed")
        # letting in the users of the head-end's inventory (HeadendProcess's inv.sqlite)
        mosq = Broker(tmp_path / "broker", inventory=tmp_path / "inv.sqlite",
                      communes=(COMMUNE,))
    (tmp_path / "media").mkdir()
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16",
                    str(tmp_path / "media" / "news.wav"), "synth", str(TONE_S), "sine",
                    str(TONE_HZ), "vol", "0.5"], check=True)
    he = Headend(tmp_path, COMMUNE, mosq.url if mosq else None)
    keys = enrol(he.inventory, COMMUNE, {"n1": "thon-1", "n2": "thon-2"})
    if mosq:
        mosq.start()  # its password and ACL files from the inventory as it is now
    he.mosq = mosq
    he.cli("user", "an", "--role", "admin", stdin="an-secret-pw\n")
    he.cli("user", "oanh", "--role", "operator", stdin="oanh-secret\n")
    he.start()
    nodes = {}
    try:
        for name, zone in (("n1", "thon-1"), ("n2", "thon-2")):
            nodes[name] = node_up(tmp_path, he.url, COMMUNE, name, zone, keys[name])
        yield he, nodes
    finally:
        for sim, con in nodes.values():
            con.close()
            sim.stop()
        he.stop()
        if mosq:
            mosq.stop()


def api(he: Headend, user: str, password: str) -> httpx.Client:
    c = httpx.Client(base_url=f"http://127.0.0.1:{he.port}", timeout=30)
    r = c.post("/api/login", json={"user": user, "password": password})
    assert r.status_code == 200, r.text
    return c


def wavs(sim: SimNode) -> list[Path]:
    return sorted(sim.audio_dir.glob("*.wav"))


def played_s(wav: Path) -> tuple[float, float]:
    """(seconds from the first to the last loud sample, dominant Hz) of a capture."""
    rate, x = read_wav(wav)
    loud = np.flatnonzero(np.abs(x.astype(int)) > 1000)
    assert len(loud), f"{wav} is silent"
    seg = x[loud[0]:loud[-1]].astype(float)
    return (loud[-1] - loud[0]) / rate, float(np.argmax(np.abs(np.fft.rfft(seg))) * rate
                                               / len(seg))


def online_with_rules(he: Headend) -> httpx.Client:
    """Both nodes online and the commune's rules (v2) in force on them; the admin's client."""
    admin = api(he, "an", "an-secret-pw")
    poll("both nodes online", lambda: [n["state"] for n in admin.get("/api/nodes").json()]
         == ["online", "online"])
    r = admin.post("/api/rules", json={"text": RULES.format(version="v2")})
    assert r.status_code == 200, r.text
    poll("rules v2 in force", lambda: all(
        (n["status"] or {}).get("rules") == "v2" for n in admin.get("/api/nodes").json()))
    return admin


def test_broadcast_through_the_api_reaches_the_zone_and_survives_a_sigkill(headend):
    he, nodes = headend
    n1, n2 = nodes["n1"][0], nodes["n2"][0]
    admin = online_with_rules(he)
    oper = api(he, "oanh", "oanh-secret")
    r = oper.post("/api/broadcast", json={"file": "news", "zones": ["thon-1"],
                                          "title": "Tin sáng"})
    assert r.status_code == 200, r.text
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 7 * 3600))  # Việt Nam's day

    def report() -> dict:
        return admin.get(f"/api/report?from={day}&to={day}").json()
    rep = poll("the play in the report", lambda: report()["zones"], 30)
    assert len(wavs(n1)) == 1 and not wavs(n2), "a broadcast for thon-1 reached thon-2"
    seconds, hz = played_s(wavs(n1)[0])
    assert abs(seconds - TONE_S) < 0.5 and abs(hz - TONE_HZ) < 20, (seconds, hz)
    assert [z["zone"] for z in rep] == ["thon-1"]
    assert abs(rep[0]["seconds"] - seconds) <= 1.0, (rep, seconds)
    csv = admin.get(f"/api/report?from={day}&to={day}&format=csv").text
    assert csv.splitlines()[1].startswith(f"thon-1,{day},")

    r = oper.post("/api/broadcast", json={"file": "news", "zones": ["thon-1"]})
    assert r.status_code == 200, r.text
    sent = r.json()
    he.kill()  # acknowledged: nothing the operator was told may be lost
    he.start()
    admin = api(he, "an", "an-secret-pw")
    rows = {b["id"]: b for b in he_broadcasts(he)}
    assert rows[sent["id"]]["state"] == "sent" and rows[sent["id"]]["seq"] == sent["seq"]
    audit = [(a["who"], a["action"], a["result"]) for a in admin.get("/api/audit").json()
             if a["action"] not in ("login", "report")]
    assert audit[:4] == [("headend", "rules.restore", "sent"),  # the start republished
                         ("oanh", "broadcast", "sent"), ("oanh", "broadcast", "sent"),
                         ("an", "rules.push", "sent")]
    # the node fetches the file once the head-end is back, and its play log arrives
    poll("the second play in the report", lambda: len(report()["plays"]) == 2, 60)
    assert len(wavs(n1)) == 2 and not wavs(n2)
    assert played_s(wavs(n1)[1])[0] > TONE_S - 0.5

    # a power cut on n2: its will says offline at once, its status on boot ends it
    def state(node: str) -> str:
        return next(n["state"] for n in admin.get("/api/nodes").json() if n["node_id"] == node)
    cut = time.time()
    n2.power_cut(OFF_S)
    poll("n2 offline", lambda: state("n2") == "offline", 10)
    poll("n2 back", lambda: state("n2") == "online", 60)
    off = time.time() - cut
    by_node = {n["node"]: n for n in report()["nodes"]}
    assert by_node["n1"]["offline"] == [] and by_node["n1"]["uptime_pct"] == 100.0
    [period] = by_node["n2"]["offline"]
    assert period["cause"] == "will" and abs(period["seconds"] - off) < 2.0, (period, off)
    assert abs(by_node["n2"]["online_s"] + period["seconds"] - by_node["n2"]["observed_s"]) < 0.2


def he_broadcasts(he: Headend) -> list[dict]:
    from loaxa.headend.store import Store

    s = Store(he.tmp / "data" / "headend.sqlite")
    try:
        return s.broadcasts()
    finally:
        s.close()


def retained_rules(he: Headend, node: str = "n1") -> str | None:
    """The version of the rules the broker keeps retained for node, as the node
    receives them when it connects now (None: nothing retained)."""
    from loaxa.headend.server import Loop
    from loaxa_node import envelope
    from loaxa_node.net import mqtt as net_mqtt

    got: list[bytes] = []
    rules = f"loaxa/{COMMUNE}/node/{node}/rules"

    async def on(t: bytes, payload: memoryview, retained: int) -> None:
        if t.decode() == rules:  # amqtt also hands a new subscriber others' retained
            got.append(bytes(payload))
    io = Loop()
    with Inventory(he.inventory) as inv:  # the broker lets in only the inventory's users
        user, pw = inv.headend_login(COMMUNE, f"headend-cli.{COMMUNE}")
    client = net_mqtt.Client(he.url, "retained-check", on, [rules], user=user, password=pw)

    async def go() -> None:
        client.start()

    async def stop() -> None:
        client.deinit()
    try:
        io.run(go())
        deadline = time.monotonic() + 3  # a retained message comes right after SUBACK
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        io.run(stop())
    finally:
        io.stop()
    if not got or not got[0]:
        return None
    with Inventory(he.tmp / "inv.sqlite") as inv:
        key = bytes.fromhex(inv.node_key(node))
    return str(envelope.open_(json.loads(got[0]), key, "rules", node)["ver"])


@contextmanager
def push_held(he: Headend) -> Iterator[None]:
    """Hold a rules push between the operator's request and its answer. With
    mosquitto the broker is frozen (SIGSTOP): the push is recorded `sending` and
    published into a socket nobody reads. The embedded broker lives in the
    head-end's process, so there the store's write lock is taken: the request is
    in, checked, and waits to be recorded."""
    if he.mosq is not None:
        he.mosq.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
        try:
            yield
        finally:
            he.mosq.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
    else:
        db = sqlite3.connect(he.tmp / "data" / "headend.sqlite", isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            db.execute("ROLLBACK")
            db.close()


def test_a_sigkill_during_a_rules_push_leaves_one_rules_set_in_force(headend):
    he, _ = headend
    admin = api(he, "an", "an-secret-pw")
    poll("both nodes online", lambda: [n["state"] for n in admin.get("/api/nodes").json()]
         == ["online", "online"])

    def nodes_rules() -> list:
        return [(n["status"] or {}).get("rules") for n in admin.get("/api/nodes").json()]
    assert admin.post("/api/rules", json={"text": RULES.format(version="v1")}
                      ).status_code == 200
    poll("v1 on both nodes", lambda: nodes_rules() == ["v1", "v1"])

    answer: list = []

    def push_v2() -> None:
        try:
            answer.append(admin.post("/api/rules", json={"text": RULES.format(version="v2")}))
        except httpx.HTTPError as e:
            answer.append(e)
    with push_held(he):
        pusher = threading.Thread(target=push_v2)
        pusher.start()
        if he.mosq is not None:
            poll("the push recorded, not acknowledged", lambda: any(
                b["kind"] == "rules" and b["state"] == "sending" for b in he_broadcasts(he)))
        else:
            pusher.join(1.0)
            assert not answer, "the push went through the store's lock"
        he.kill()
        pusher.join(30)
    assert isinstance(answer[0], httpx.HTTPError), answer  # never acknowledged
    he.start()
    admin = api(he, "an", "an-secret-pw")
    in_force = admin.get("/api/rules").json()
    assert in_force["version"] == "v1", in_force  # the last acknowledged set
    assert retained_rules(he) == "v1"
    poll("both nodes on v1", lambda: nodes_rules() == ["v1", "v1"], 30)
    rows = [b for b in he_broadcasts(he) if b["kind"] == "rules"]
    assert [b["state"] for b in rows] == (["interrupted", "sent"] if he.mosq else ["sent"])

    # an acknowledged push survives a SIGKILL right after its answer
    r = admin.post("/api/rules", json={"text": RULES.format(version="v3")})
    assert r.status_code == 200, r.text
    he.kill()
    he.start()
    admin = api(he, "an", "an-secret-pw")
    assert admin.get("/api/rules").json()["version"] == "v3"
    assert retained_rules(he) == "v3"
    poll("both nodes on v3", lambda: nodes_rules() == ["v3", "v3"], 30)


@contextmanager
def station(seconds: float, hz: int) -> Iterator[str]:
    """The provincial station as ffmpeg serves it with its defaults: MP3 over
    HTTP (`-listen 1`), a tone in real time; its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/dai-tinh.mp3"
    tone = f"aevalsrc=0.5*sin(2*PI*{hz}*t):s=44100:d={seconds}"
    proc = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi",
                             "-i", tone, "-f", "mp3", "-listen", "1", url],
                            stderr=subprocess.PIPE)
    try:
        # not by connecting: ffmpeg's server serves its first client only
        poll("the station listening", lambda: proc.poll() is None and listening(port), 10)
        yield url
    finally:
        proc.kill()
        proc.wait()


def test_a_live_station_relayed_by_serve_reaches_the_zone_and_stops_on_request(headend):
    he, nodes = headend
    n1, n2 = nodes["n1"][0], nodes["n2"][0]
    admin = online_with_rules(he)
    # from the operator's CLI: serve relays it, the CLI says what became of it
    with station(4, 660) as url:
        sent = json.loads(he.cli("broadcast", url, "--zones", "thon-1", "--title", "Đài tỉnh"))
        assert sent["state"] == "sent", sent
        poll("the relay's play logged", lambda: he_plays(admin), 30)
    [wav] = wavs(n1)
    assert not wavs(n2), "a relay for thon-1 reached thon-2"
    seconds, hz = played_s(wav)
    # live: a node hears it from when it joined, a second or so after the start
    assert 2.0 < seconds < 4.3 and abs(hz - 660) < 20, (seconds, hz)
    [play] = he_plays(admin)
    assert play["title"] == "Đài tỉnh" and abs(play["seconds"] - seconds) <= 1.0, play

    # through the API, then stopped by the operator: the nodes' streams end with it
    oper = api(he, "oanh", "oanh-secret")
    with station(60, 550) as url:
        r = oper.post("/api/broadcast", json={"file": url, "zones": ["thon-1"]})
        assert r.status_code == 200, r.text
        bid = r.json()["id"]
        poll("n1 listening", lambda: [x["listeners"] for x in oper.get("/api/live").json()]
             == [1], 15)
        time.sleep(2)
        r = oper.post(f"/api/broadcast/{bid}/stop")
        assert r.status_code == 200 and r.json()["state"] == "stopped", r.text
        poll("the second play logged", lambda: len(he_plays(admin)) == 2, 30)
        assert oper.get("/api/live").json() == []
    seconds, hz = played_s(wavs(n1)[1])
    assert 1.5 < seconds < 6 and abs(hz - 550) < 20, (seconds, hz)

    # a station that does not answer: refused with ffmpeg's reason, nothing sent
    dead = f"http://127.0.0.1:{free_port()}/none.mp3"
    r = oper.post("/api/broadcast", json={"file": dead, "zones": ["thon-1"]})
    assert r.status_code == 400 and "no audio from" in r.json()["error"], r.text
    assert r.json()["error"].count("Connection refused") == 1, r.text
    assert [b["kind"] for b in he_broadcasts(he)] == ["play", "play", "rules"]
    r = oper.post(f"/api/broadcast/{bid}/stop")
    assert r.status_code == 400 and "not a live relay that is running" in r.text


def listening(port: int) -> bool:
    with open("/proc/net/tcp") as f:  # local address, state 0A: LISTEN
        return any(ln.split()[1].endswith(f":{port:04X}") and ln.split()[3] == "0A"
                   for ln in list(f)[1:])


def he_plays(c: httpx.Client) -> list[dict]:
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 7 * 3600))
    return c.get(f"/api/report?from={day}&to={day}").json()["plays"]


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl makes the test certificate")
def test_serve_reaches_a_tls_broker_through_the_ca_it_pins(tmp_path, target_name):
    """serve --broker mqtts://... --broker-ca: status over TLS, a broadcast reaching the
    node; with another CA serve does not start, and says why."""
    if target_name != "sim" or mosquitto_path() is None:
        pytest.skip("runs simulated nodes and mosquitto")
    pem, key, der = _cert(tmp_path, "broker")
    other, _, _ = _cert(tmp_path, "other")
    port = free_port()
    conf = f"listener {port} 127.0.0.1\ncertfile {pem}\nkeyfile {key}\n"
    url = f"mqtts://localhost:{port}"
    with Broker(tmp_path / "broker", extra_conf=conf, inventory=tmp_path / "inv.sqlite",
                communes=(COMMUNE,)) as mosq:
        wrong = Headend(tmp_path / "wrong", COMMUNE, url, broker_ca=other)
        (wrong.tmp / "media").mkdir(parents=True)
        enrol(wrong.inventory, COMMUNE, {"n1": "thon-1"})
        with pytest.raises(LoaxaError, match="exited"):
            wrong.start()
        log = (wrong.tmp / "headend.log").read_text()
        assert f"no connection to the broker at {url}" in log and "certificate" in log, log

        (tmp_path / "media").mkdir()
        subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16",
                        str(tmp_path / "media" / "news.wav"), "synth", "2", "sine",
                        str(TONE_HZ), "vol", "0.5"], check=True)
        he = Headend(tmp_path, COMMUNE, url, broker_ca=pem)
        keys = enrol(he.inventory, COMMUNE, {"n1": "thon-1"})
        mosq.refresh()
        he.cli("user", "an", "--role", "admin", stdin="an-secret-pw\n")
        he.start()
        sim, con = node_up(tmp_path, url, COMMUNE, "n1", "thon-1", keys["n1"], ca=der)
        try:
            admin = api(he, "an", "an-secret-pw")
            poll("n1 online over TLS", lambda: [n["state"] for n in
                                                admin.get("/api/nodes").json()] == ["online"])
            r = admin.post("/api/rules", json={"text": RULES.format(version="tls")})
            assert r.status_code == 200, r.text
            poll("the rules in force", lambda: (admin.get("/api/nodes").json()[0]["status"]
                                                or {}).get("rules") == "tls")
            r = admin.post("/api/broadcast", json={"file": "news"})
            assert r.status_code == 200, r.text
            poll("n1 played it", lambda: wavs(sim) and he_plays(admin), 30)
            assert abs(played_s(wavs(sim)[0])[1] - TONE_HZ) < 20
        finally:
            con.close()
            sim.stop()
            he.stop()
