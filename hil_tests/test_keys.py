"""Nobody without a key gets in (docs/security.md), on simulated nodes: a node's
key acts as that node and nothing more, recorded commands replayed are not
acted on, the head-end's sequences survive a clock stepped back and a restart,
and a node plays HTTPS streams only from a server its pinned CA vouches for."""

from __future__ import annotations

import base64
import json
import shutil
import time

import pytest
from test_control import (  # noqa: F401  (fixtures)
    FMT,
    NOON,
    SIREN_HZ,
    _cert,
    broker,
    fleet,
    node_key,
    on_both_brokers,
    opens,
)

from loaxa.cli import main
from loaxa.errors import NodeError
from loaxa.headend.server import connect
from loaxa.headend.service import Headend
from loaxa.headend.store import Store
from loaxa.inventory import Inventory
from loaxa.rig.broker import mosquitto_path
from loaxa.sim import SimNode
from loaxa.streamer import FileServer, tls_context
from loaxa.testsignals import read_wav, speech_like, write_wav
from loaxa_node import envelope

pytestmark = pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto not installed")
COMMUNE = "an-phu"
SIREN = {"cmd": "emergency", "action": "start", "tone": SIREN_HZ, "title": "giả"}


def refusals(ctl, node: str, n: int, timeout: float = 10) -> list[str]:
    """The codes of node's first n refused events, once n have come."""
    ctl.wait(lambda: len(ctl.events_of(node, "refused")) >= n, timeout, f"{n} refusals")
    return [e["code"] for e in ctl.events_of(node, "refused")]


@on_both_brokers
def test_a_stolen_nodes_key_makes_no_other_node_play(fleet):  # noqa: F811
    """The attacker has A's key and publishes with the head-end's broker user,
    which may write every topic: a broker whose ACLs are missing or bypassed,
    so the envelope alone must hold. Every way to make B play is refused and
    counted by the node it reached; A's key still acts as A."""
    fleet.add("a", ["thon-1"])
    b = fleet.add("b", ["thon-1"])
    # b was provisioned before per-node keys: the commune key is still on its flash
    kfile = fleet.nodes["b"][0].state / "data" / "keys.json"
    kfile.write_text(json.dumps({**json.loads(kfile.read_text()), "commune_key": "5e" * 32}))
    with pytest.raises(NodeError, match="commune_key is no longer used") as e:
        b.request("keys.set", {"commune_key": "5e" * 32})
    assert e.value.code == "bad_args"
    fleet.online()
    ctl = fleet.ctl
    ka = bytes.fromhex(node_key("a"))
    P = f"loaxa/{COMMUNE}"
    recorded_a = ctl.command("node:a", {"cmd": "volume", "volume": 61})["envs"]["a"]
    recorded_b = ctl.command("node:b", {"cmd": "volume", "volume": 62})["envs"]["b"]
    ctl.wait(lambda: len(ctl.events_of("b", "ack")) == 1 and len(ctl.events_of("a", "ack")),
             10, "both volumes")
    now = NOON + 30

    def seal(to: str, seq: int, sender: str = "headend", kind: str = "cmd", body=SIREN):
        return envelope.seal(ka, kind, sender, to, seq, now, 0 if kind == "rules" else now + 300,
                             body)

    seq = recorded_b["seq"] + 1000
    v1 = {"v": 1, "kind": "cmd", "from": "headend", "seq": seq, "ts": now, "body": SIREN}
    v1["tag"] = envelope.mac(ka, v1).hex()
    attacks = [  # (topic, envelope, the node it reaches, the refusal it gets)
        (f"{P}/node/b/cmd", seal("b", seq), "b", "bad_signature"),       # A's key, B's name
        (f"{P}/node/b/cmd", seal("a", seq), "b", "wrong_node"),          # A's own, on B's topic
        (f"{P}/node/a/cmd", seal("b", seq), "a", "wrong_node"),          # B's name, A's topic
        (f"{P}/node/b/cmd", seal("b", seq, "headend-x"), "b", "bad_signature"),  # new sender
        (f"{P}/node/b/cmd", recorded_a, "b", "wrong_node"),              # A's real message
        (f"{P}/node/b/cmd", recorded_b, "b", "stale_seq"),               # B's own, replayed
        (f"{P}/node/b/cmd", v1, "b", "old_envelope"),                    # the old format
        (f"{P}/node/b/rules", seal("b", seq, kind="rules", body=fleet.rules("evil")), "b",
         "bad_signature"),                                               # retained junk rules
        (f"{P}/all/cmd", seal("b", seq), None, None),                    # nobody listens
        (f"{P}/zone/thon-1/cmd", seal("b", seq), None, None),
        (f"{P}/zone/thon-1/rules", seal("b", seq, kind="rules", body=fleet.rules("evil")),
         None, None),
    ]
    for t, env, _, _ in attacks:
        ctl.publish(t, json.dumps(env), retain=t.endswith("rules"))
    want = {n: [c for _, _, m, c in attacks if m == n] for n in ("a", "b")}
    assert refusals(ctl, "b", len(want["b"])) == want["b"]
    assert refusals(ctl, "a", len(want["a"])) == want["a"]
    # ... and what A's key is for: acting as A
    ctl.publish(f"{P}/node/a/cmd", json.dumps(seal("a", seq + 1, body={"cmd": "volume",
                                                                       "volume": 33})))
    ctl.wait_event(type="ack", node="a", seq=seq + 1)
    time.sleep(1)  # anything late would land now
    st = b.request("status")
    assert st["broker"]["cmd_refused"] == len(want["b"]) and st["broker"]["cmd_ok"] == 1
    assert st["playing"] is None and st["rules"]["version"] == "v1"
    assert opens(fleet.nodes["b"][0]) == [] and opens(fleet.nodes["a"][0]) == []
    # the commune key is gone with its first message
    assert sorted(json.loads(kfile.read_text())) == ["mqtt_password", "node_key"]


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted_clock", "untrusted_clock"])
def test_a_recorded_emergency_start_replayed_after_its_stop_is_not_acted_on(
        fleet, trusted):  # noqa: F811
    con = fleet.add("n1", ["thon-1"], trusted=trusted)
    fleet.online()
    ctl = fleet.ctl
    sim = fleet.nodes["n1"][0]
    start = ctl.command("node:n1", SIREN)
    ctl.wait_event(type="ack", seq=start["seq"])
    stop = ctl.command("node:n1", {"cmd": "emergency", "action": "stop"})
    ctl.wait_event(type="ack", seq=stop["seq"])
    ctl.wait(lambda: con.request("status")["playing"] is None, 5, "the siren stops")
    played = len(opens(sim))
    t = f"loaxa/{COMMUNE}/node/n1/cmd"
    ctl.publish(t, json.dumps(start["envs"]["n1"]))  # the attacker's recording
    assert refusals(ctl, "n1", 1) == ["stale_seq"]
    if not trusted:
        # the head-end's signed time (serve sends it to a node whose status says
        # its clock is not trusted): from then on the node judges expiry too
        assert con.request("status")["clock"]["synced"] is False
        ctl.wait_event(type="ack", seq=ctl.command("node:n1", {"cmd": "time"})["seq"])
        assert con.request("status")["clock"]["synced"] is True
    # a start recorded earlier that the node never got (a higher sequence, its
    # expiry passed): refused by the clock now
    missed = ctl.sender.seal(bytes.fromhex(node_key("n1")), "cmd", "n1", SIREN,
                             ts=NOON - 400)
    ctl.publish(t, json.dumps(missed))
    assert refusals(ctl, "n1", 2) == ["stale_seq", "expired"]
    time.sleep(0.5)
    assert con.request("status")["playing"] is None and len(opens(sim)) == played


def test_headend_clock_stepped_back_and_restarted_then_cli_rules_after_a_push(
        tmp_path, broker, monkeypatch):  # noqa: F811
    """serve's own code (store, inventory, controller) in this process: its
    clock goes back an hour and it restarts; the next command is accepted. Then
    rules signed with `loaxa rules compile --sign` after serve's push are
    accepted too. The node's clock is not trusted (after a power cut), so only
    the sequence decides."""
    inv_path = tmp_path / "inv.sqlite"
    with Inventory(inv_path) as inv:
        inv.record("n1", "provision", commune=COMMUNE, zones=["thon-1"])
        key = inv.new_node_key("n1")
        pw = inv.new_mqtt_password("n1", "node", COMMUNE)
    broker.refresh()  # the broker reads this inventory: n1 is one of its users now
    sim = SimNode(tmp_path / "n1", heap_kb=256, rtc_start=NOON)
    con = sim_console(sim, tmp_path)
    data = tmp_path / "data"
    cfg = {"broker": broker.url, "commune": COMMUNE, "inventory": str(inv_path),
           "prefix": "loaxa"}
    admin = ("an", "admin")
    try:
        con.request("config.set", {"node_id": "n1", "commune": COMMUNE,
                                   "broker.url": broker.url})
        con.request("keys.set", {"node_key": key, "mqtt_password": pw})

        def serve() -> Headend:
            store = Store(data / "headend.sqlite")
            with Inventory(inv_path) as inv:
                store.sync_nodes(list(inv.nodes()))
            he = Headend(store)
            he.connect = lambda: connect(cfg, he, store, "loaxa-headend")
            return he

        def ok_count() -> int:
            return int(con.request("status")["broker"]["cmd_ok"])

        def wait_ok(n: int) -> None:
            deadline = time.monotonic() + 10
            while ok_count() < n:
                assert time.monotonic() < deadline, con.request("status")["broker"]
                time.sleep(0.1)

        he = serve()
        wait_online(con)
        he.push_rules(admin, RULES.format(version="serve-1"))
        wait_ok(1)
        he.emergency(("oanh", "operator"), "stop")
        wait_ok(2)
        he.close()
        he.store.close()
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() - 3600)  # NTP stepped it back
        he = serve()
        he.emergency(("oanh", "operator"), "stop")
        wait_ok(3)
        assert con.request("status")["broker"]["cmd_refused"] == 0
        # rules signed by a technician's laptop after serve pushed its own
        rules_file = tmp_path / "rules.toml"
        rules_file.write_text(RULES.format(version="cli-1"))
        out = tmp_path / "signed.json"
        assert main(["rules", "compile", str(rules_file), "--sign", "n1", "--inventory",
                     str(inv_path), "-o", str(out)]) == 0
        assert con.request("rules.set", json.loads(out.read_text()))["version"] == "cli-1"
        he.push_rules(admin, RULES.format(version="serve-2"))  # and serve's next one
        wait_ok(4)
        assert con.request("rules.get")["version"] == "serve-2"
        assert con.request("status")["broker"]["cmd_refused"] == 0
        he.close()
        he.store.close()
    finally:
        con.close()
        sim.stop()


RULES = """
version = "{version}"
[[window]]
name = "day"
days = "daily"
time = "06:00-21:00"
volume = 80
"""


def sim_console(sim: SimNode, tmp):
    from loaxa.console import NodeConsole

    con = NodeConsole(sim.start(), 115200, log_path=tmp / f"{sim.state.name}.log")
    con.wait_ready(30)
    return con


def wait_online(con, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not con.request("status")["broker"]["connected"]:
        assert time.monotonic() < deadline, "the node never reached the broker"
        time.sleep(0.1)
    time.sleep(0.3)  # its subscriptions


@pytest.mark.skipif(not shutil.which("openssl") or not shutil.which("ffmpeg"),
                    reason="openssl makes the certificates, ffmpeg encodes the file")
def test_https_stream_only_from_a_server_the_pinned_ca_vouches_for(fleet, tmp_path):  # noqa: F811
    con = fleet.add("n1", ["thon-1"])
    fleet.online()
    pem, keyf, der = _cert(tmp_path, "headend")
    other_pem, other_key, _ = _cert(tmp_path, "impostor")
    con.request("keys.set", {"broker_ca": base64.b64encode(der).decode()})
    # a new CA reconnects the node (docs/control.md): commands wait for it
    fleet.ctl.wait_event(type="broker", node="n1", up=True, reconnects=1)
    media = tmp_path / "media"
    media.mkdir()
    write_wav(media / "news.wav", speech_like(2 * 8000, seed=5), 8000)
    from loaxa.headend.server import Loop

    io = Loop()
    servers = []
    try:
        urls = {}
        for name, (c, k) in {"good": (pem, keyf), "bad": (other_pem, other_key)}.items():
            srv = FileServer(media, FMT)
            port = io.run(srv.start("127.0.0.1", 0, tls_context(str(c), str(k))))
            servers.append(srv)
            urls[name] = f"https://localhost:{port}/file/{srv.grant('news')}/news"
        sim = fleet.nodes["n1"][0]
        ctl = fleet.ctl
        env = ctl.command("node:n1", {"cmd": "play", "kind": "file", "priority": "normal",
                                      "session": FMT.session(transport="http",
                                                             url=urls["bad"])})
        ctl.wait_event(type="ack", seq=env["seq"])
        err = ctl.wait_event(type="error", node="n1")
        assert "does not chain to the pinned CA" in err["msg"] and "localhost" in err["msg"]
        assert con.request("status")["stream"]["packets"] == 0
        ctl.command("node:n1", {"cmd": "stop"})
        ctl.wait(lambda: len(opens(sim, "close")) == len(opens(sim)), 10, "stopped")
        assert servers[1].served == 0 and all(not read_wav(sim.audio_dir / w)[1].any()
                                              for _, w in opens(sim)), "nothing was heard"
        before = len(opens(sim))
        env = ctl.command("node:n1", {"cmd": "play", "kind": "file", "priority": "normal",
                                      "session": FMT.session(transport="http",
                                                             url=urls["good"])})
        ctl.wait(lambda: len(opens(sim)) == before + 1, 10, "the head-end's stream plays")
        ctl.wait(lambda: con.request("status")["stream"]["packets"] > 10, 10, "its packets")
    finally:
        for srv in servers:
            io.run(srv.close())
        io.stop()
