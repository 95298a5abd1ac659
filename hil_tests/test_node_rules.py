"""The commune's rules on a node: window edges, clock trust, signed updates."""

from __future__ import annotations

import random
import time
import wave

import numpy as np
import pytest

from loaxa import rules, testrules
from loaxa.errors import NodeError
from loaxa.testrules import MORNING, RULES  # noqa: F401  (MORNING: other tests build on it)
from loaxa_node import timeutil
from loaxa_node.audio import gain

KEY = "5e" * 32
OTHER_KEY = "a7" * 32
NODE = "r1"

DAY = (2026, 11, 23)
EDGE = timeutil.t2k(*DAY, 5, 30) - 7 * 3600  # 05:30 local, as t2k UTC


@pytest.fixture
def sim_options(request):
    return getattr(request, "param", {})


def signed(version="v1", seq=1, key=KEY, body=None, to=NODE):
    R = body or rules.compile_text(RULES.format(version=version)).rules
    return rules.sign(R, bytes.fromhex(key), "headend", to, seq, 0)


def provision(node, version="v1", seq=1, body=None):
    """The node's name and key, then its rules (RULES, or body), signed for it."""
    return testrules.provision(node, NODE, KEY, signed(version, seq, body=body))


def local_iso(t):
    return timeutil.iso(t, 420)


def wait_idle(node, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not node.request("status")["playing"]:
            return
        time.sleep(0.1)
    raise AssertionError("still playing")


def rms_db(x):
    return 20 * np.log10(np.sqrt(np.mean(x.astype(float) ** 2)) / 32768)


SINE_DB = 20 * np.log10(1 / np.sqrt(2))  # RMS of a full-scale sine


@pytest.mark.needs("audio_capture")
def test_window_opens_on_time_at_its_volume_and_follows_new_rules(node, target):
    provision(node)
    node.request("clock.set", {"time": local_iso(EDGE - 3)})
    h_set = time.time()
    d = node.request("rules.eval", {"kind": "relay"})
    assert not d["allow"] and d["reason"]["code"] == "outside_windows"
    assert d["until"] == local_iso(EDGE)
    while not (d := node.request("rules.eval", {"kind": "relay"}))["allow"]:
        assert time.time() < h_set + 5, "never opened"
        time.sleep(0.05)
    assert time.time() - (h_set + 3) < 1.0
    assert d["volume"] == 60 and d["window"] == "morning"
    time.sleep(3)
    status = node.request("status")
    assert status["rules"] == {"version": "v1", "window": "morning", "seq": 1}
    assert status["playing"]["item"] == "bell"
    # new rules while it plays: the same window, quieter -> re-levelled, not restarted
    quieter = rules.compile_text(RULES.format(version="v2").replace("volume = 60",
                                                                    "volume = 40")).rules
    node.request("rules.set", signed(body=quieter, seq=2))
    h_change = time.time()
    time.sleep(3)
    assert node.request("status")["playing"]["volume"] == 40
    node.request("clock.set", {"time": local_iso(EDGE + 65)})  # the item is over
    wait_idle(node)
    opened = [float(ln.split()[0]) for ln in (target.audio_dir / "timing.log").read_text()
              .splitlines() if " open " in ln]
    assert len(opened) == 1
    assert abs(opened[0] - (h_set + 3)) < 1.0, f"started {opened[0] - h_set - 3:+.2f} s late"
    with wave.open(str(next(target.audio_dir.glob("*.wav")))) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    change = int((h_change - opened[0]) * rate)
    before, after = x[rate // 2: change - rate // 4], x[change + rate // 2: -rate // 2]
    assert len(before) > rate and len(after) > rate
    for part, vol in ((before, 60), (after, 40)):
        expected = SINE_DB + gain.db_for_volume(vol)
        assert abs(rms_db(part) - expected) < 1.0, f"{vol} %: {rms_db(part):.2f} dBFS, " \
            f"expected {expected:.2f}"


@pytest.mark.needs("audio_capture", "rtc_control")
@pytest.mark.parametrize("sim_options", [{"rtc_start": EDGE - 2}], indirect=True)
def test_unsynced_clock_never_starts_scheduled_content(node, target):
    provision(node)
    assert not node.request("clock.get")["synced"]
    time.sleep(4)  # the node's clock passes 05:30, but nobody vouched for it
    d = node.request("rules.eval", {"kind": "relay"})
    assert not d["allow"] and d["reason"] == {"code": "untrusted_waits", "kind": "relay"}
    assert d["window"] == "morning"
    assert node.request("status")["playing"] is None
    assert not list(target.audio_dir.glob("*.wav"))
    d = node.request("rules.eval", {"priority": "emergency", "kind": "relay"})
    assert d["allow"] and d["volume"] == 100
    assert node.request("rules.eval", {"kind": "live"})["allow"]


def held(node, target, free_kb: int = 4) -> None:
    """Hold the node's heap (the sim's leak) until at most half of what was free
    is left, as a fragmented heap would."""
    free = node.request("status")["heap"]["free"]
    target.leak(free_kb)
    deadline = time.monotonic() + 10
    while status_short(node)["heap"]["free"] > free // 2:
        assert time.monotonic() < deadline, "the heap was never held"
        time.sleep(0.2)


def status_short(node) -> dict:
    """status from a node whose heap is held: asked again while it answers that
    it has no memory for the answer."""
    for _ in range(20):
        try:
            return node.request("status")
        except NodeError as e:
            if "MemoryError" not in e.node_msg:
                raise
        time.sleep(0.2)
    raise AssertionError("no status for 4 s: the node had no memory to answer")


@pytest.mark.needs("memory_leak")
def test_a_pass_short_of_memory_is_tried_again_soon_not_an_hour_later(node, target):
    provision(node)
    held(node, target)  # the engine cannot load
    node.request("clock.set", {"time": local_iso(EDGE - 1)})  # the bell is due in 1 s
    time.sleep(3)
    s = status_short(node)
    assert not s["playing"]
    assert [e for e in s["errors"] if e.startswith("rules: MemoryError")], s["errors"]
    target.leak(None)  # memory back: the next try starts the bell, nothing poked the rules
    t0 = time.monotonic()
    while not (playing := node.request("status")["playing"]):
        assert time.monotonic() - t0 < 10, "the bell never started"
        time.sleep(0.1)
    assert playing["item"] == "bell"
    s = node.request("status")
    assert len([e for e in s["errors"] if e.startswith("rules:")]) == 1, s["errors"]


def test_bad_signature_or_old_sequence_is_refused_and_old_rules_stay(node):
    provision(node, "v1", seq=10)
    env = signed("v2", seq=11)
    tampered = dict(env, body=dict(env["body"], ev=10))
    bad_body = signed(body={"v": 1, "w": [{"id": "w", "s": 0, "e": 60, "vol": 101,
                                           "max": 100}]}, seq=12)
    cases = [
        (signed("v2", 11, OTHER_KEY), "bad_signature", "signature does not match"),
        (signed("v2", 11, to="r2"), "wrong_node", "addressed to 'r2', this node is 'r1'"),
        ({**{k: v for k, v in env.items() if k not in ("to", "exp")}, "v": 1},
         "old_envelope", "version 1"),  # the commune key's, from an old head-end
        (tampered, "bad_signature", "signature does not match"),
        (signed("v2", 10), "stale_seq", "not newer than 10"),
        (signed("v2", 9), "stale_seq", "not newer than 10"),
        (dict(env, extra=1), "bad_envelope", "unknown field 'extra'"),
        (bad_body, "bad_rules", "rules.w[0].vol"),
        (env["body"], "bad_envelope", "unknown field"),  # unsigned rules
    ]
    for e_, code, msg in cases:
        with pytest.raises(NodeError) as e:
            node.request("rules.set", e_)
        assert e.value.code == code and msg in e.value.node_msg, e.value.node_msg
        assert "the rules in force stay" in e.value.node_msg
    got = node.request("rules.get")
    assert got["version"] == "v1" and got["senders"] == {"headend": 10}
    assert node.request("rules.set", env)["version"] == "v2"
    with pytest.raises(NodeError) as e:  # the same envelope again: a replay
        node.request("rules.set", env)
    assert e.value.code == "stale_seq"


@pytest.mark.needs("power_cut")
def test_power_cut_while_storing_rules_keeps_valid_rules(node, strategy):
    rng = random.Random(77)
    provision(node, "v0", seq=1)
    envs = {seq: signed(f"v{seq}", seq) for seq in range(2, 40)}
    before, seq = "v0", 1
    for cut in range(12):
        start = node.mark()
        sent = []
        for _ in range(rng.randint(1, 3)):
            seq += 1
            node.write(f"@r{seq} rules.set ".encode() + rules.compact(envs[seq]).encode()
                       + b"\n")
            sent.append(f"v{seq}")
        time.sleep(rng.uniform(0, 0.05))
        seen = node.lines_since(start)
        strategy.transition("on", fresh=True)
        acked = [v for v in sent if any(ln.startswith(f"@r{v[1:]} ok ") for ln in seen)]
        allowed = sent[sent.index(acked[-1]):] if acked else [before, *sent]
        node.wait_ready(20)
        got = node.request("rules.get")
        assert got["version"] in allowed, f"cut {cut}: {got['version']}, acked {acked}"
        assert got["rules"]["w"][0]["id"] == "morning"
        before = got["version"]
        seq = max(seq, got["seq"])
