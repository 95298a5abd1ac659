"""The operator's rules file: precise errors, compiled form, signing, CLI output."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loaxa import REPO
from loaxa.cli import main
from loaxa.inventory import Inventory
from loaxa.rules import RulesFileError, compile_text
from loaxa_node import envelope

EXAMPLE = REPO / "docs" / "examples" / "an-phu.toml"

GOOD = """\
version = "t1"
quiet_hours = "21:00-05:00"
zones = ["thon1", "cho"]
[limits]
sessions_per_day = 2
[[window]]
name = "morning"
days = "mon-sat"
time = "05:30-06:15"
volume = 70
max_volume = 80
[[window]]
name = "evening"
days = ["mon", "wed"]
time = "17:00-17:45"
"""


@pytest.fixture(autouse=True)
def english(monkeypatch):
    monkeypatch.setenv("LANGUAGE", "en")


def err(text: str) -> RulesFileError:
    with pytest.raises(RulesFileError) as e:
        compile_text(textwrap.dedent(text), "an-phu.toml")
    return e.value


def test_good_file_compiles_to_the_compact_form():
    R = compile_text(GOOD).rules
    assert R["q"] == [1260, 300] and R["cap"] == {"n": 2} and R["tz"] == 420
    assert R["w"][0] == {"id": "morning", "d": 0b0111111, "s": 330, "e": 375, "vol": 70,
                         "max": 80}
    assert R["w"][1]["d"] == 0b101 and R["w"][1]["vol"] == 70 and R["w"][1]["max"] == 100


@pytest.mark.parametrize("change,line,key,allowed", [
    ('time = "17:00-17:45"', 15, "window[1].time", None),  # control: no error
    ('time = "17:45-17:00"', 15, "window[1].time", "overnight = true"),
    ('time = "06:00-06:30"', 15, "window[1].time", "must not overlap"),
    ('time = "04:30-05:10"', 15, "window[1].time", "quiet_hours"),
    ('time = "17:00-17:45"\nvolume = 120', 16, "window[1].volume", "0 to 100"),
    ('time = "17:00-17:45"\nzones = ["thon9"]', 16, "window[1].zones", "thon1, cho"),
    ('time = "17:00-17:45"\ncolour = "red"', 16, "window[1].colour", "allowed: dates, days"),
    ('time = "25:00-26:00"', 15, "window[1].time", "05:30-06:15"),
    ('time = "17:00-17:45"\ndates = "2027-02-10..2027-02-05"', 16, "window[1].dates",
     "first date"),
    ('time = "17:00-17:45"\ndates = "2027-02-30"', 16, "window[1].dates", "2027-02-05"),
])
def test_errors_name_file_line_key_and_what_is_allowed(change, line, key, allowed):
    text = GOOD.replace('time = "17:00-17:45"', change)
    if allowed is None:
        compile_text(text)
        return
    e = err(text)
    assert str(e).startswith(f"an-phu.toml:{line}: {key}: "), str(e)
    assert allowed in (e.hint or "") + e.msg, str(e)


def test_overlap_only_counts_on_shared_days_and_zones():
    text = GOOD + '[[window]]\nname = "sun"\ndays = "sun"\ntime = "05:30-06:15"\n'
    compile_text(text)  # Sunday is free
    text = GOOD + '[[window]]\nname = "cho"\ndays = "daily"\ntime = "17:30-18:00"\n' \
        'zones = ["cho"]\n'
    assert "overlaps window 'evening'" in str(err(text))


def test_schedule_must_lie_inside_a_window():
    text = GOOD + '[[schedule]]\nname = "vov"\nsource = "relay:vov1"\nstart = "06:00"\n' \
        'minutes = 30\ndays = "mon-sat"\n'
    e = err(text)
    assert "schedule[0].start" in str(e) and "not inside any window" in str(e)
    compile_text(text.replace('minutes = 30', 'minutes = 15'))


def test_unknown_top_level_key_and_bad_toml():
    assert "allowed: emergency_volume" in str(err('colour = "red"\n'))
    e = err('version = "a"\n[[window]\n')
    assert e.line == 2 and "TOML" in str(e)


def test_example_in_docs_compiles(tmp_path, capsys):
    assert main(["rules", "check", str(EXAMPLE)]) == 0
    assert "ok — 3 windows" in capsys.readouterr().out


def test_compile_and_sign_round_trip_through_the_node_envelope(tmp_path, capsys):
    inv_path = tmp_path / "inv.sqlite"
    with Inventory(inv_path) as inv:
        keys = {}
        for n in ("n1", "n2"):
            inv.record(n, "provision", commune="an-binh", zones=["thon1"])
            keys[n] = bytes.fromhex(inv.new_node_key(n))
    out = tmp_path / "rules.signed.json"
    assert main(["rules", "compile", str(EXAMPLE), "--sign", "n1", "--sender", "laptop",
                 "--seq", "7", "--inventory", str(inv_path), "-o", str(out)]) == 0
    env = json.loads(out.read_text())
    assert (env["from"], env["to"], env["seq"], env["kind"], env["exp"]) == (
        "laptop", "n1", 7, "rules", 0)
    # an independent HMAC (CPython's hmac) over the documented canonical bytes
    body = {k: v for k, v in env.items() if k != "tag"}
    want = hmac.new(keys["n1"], envelope.canonical(body), hashlib.sha256)
    assert env["tag"] == want.hexdigest()
    assert envelope.open_(env, keys["n1"], "rules", "n1") == env["body"]
    # every node of the commune, one envelope a line, each with its own key and
    # name; the inventory's counter only grows
    seqs = []
    for _ in range(2):
        assert main(["rules", "compile", str(EXAMPLE), "--commune", "an-binh",
                     "--inventory", str(inv_path), "-o", str(out)]) == 0
        envs = [json.loads(line) for line in out.read_text().splitlines()]
        assert [e["to"] for e in envs] == ["n1", "n2"] and envs[0]["from"] == "rules-cli"
        for e in envs:
            assert envelope.open_(e, keys[e["to"]], "rules", e["to"]) == e["body"]
        with pytest.raises(envelope.EnvelopeError) as ex:
            envelope.open_(envs[1], keys["n1"], "rules", "n1")
        assert ex.value.code == "wrong_node"
        seqs.append(envs[0]["seq"])
    assert seqs[1] == seqs[0] + 1
    assert main(["rules", "compile", str(EXAMPLE), "--sign", "n9", "--inventory",
                 str(inv_path)]) != 0
    assert "n9 not in the inventory" in capsys.readouterr().err


def test_explain_prints_decision_reason_and_until(capsys):
    assert main(["rules", "explain", str(EXAMPLE), "--at", "2026-11-23T05:40",
                 "--kind", "relay"]) == 0
    out = capsys.readouterr().out
    assert "PLAYS at 70 %" in out and "window morning" in out
    assert "until: 2026-11-23 06:15:00" in out and "vov-morning" in out
    main(["rules", "explain", str(EXAMPLE), "--at", "2027-02-06T05:40"])
    out = capsys.readouterr().out
    assert "REFUSED" in out and "exception tet" in out
    main(["rules", "explain", str(EXAMPLE), "--at", "2026-11-23T03:00", "--priority",
          "emergency"])
    assert "PLAYS at 100 %" in capsys.readouterr().out


def test_calendar_shows_each_zone_week(capsys):
    assert main(["rules", "calendar", str(EXAMPLE), "--week", "2026-11-25"]) == 0
    out = capsys.readouterr().out
    assert "Week of Monday 2026-11-23" in out
    zone_cho = out.split("== area cho ==")[1]
    assert "Sun 2026-11-29  11:00-11:30 market 50 % (max 60 %)" in zone_cho
    assert "Sun 2026-11-29  silent" in out.split("== area thon1 ==")[1]
    assert "05:30-06:00 morning 70 % (max 80 %) ▶ vov-morning" in out


def test_cli_reports_errors_calmly(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("volume = 70", "volume = 90"))
    assert main(["rules", "check", str(bad)]) == 2
    e = capsys.readouterr().err
    assert f"{bad}:10: window[0].volume: 90 is above max_volume 80" in e and "Traceback" not in e


# -- the envelope on both interpreters ----------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None, database=None)
@given(json_values)
def test_canonical_bytes_parse_back_to_the_value(v):
    assert json.loads(envelope.canonical(v)) == v


def test_envelope_tags_match_cpython_hmac_and_micropython(upy):
    key = bytes(range(40))
    # characters within the BMP only: see docs/envelope.md
    bodies = [{"ver": "tết", "w": [{"id": "a\"b\\c\n", "s": 1}], "n": None, "t": True},
              {"x": -5, "y": [], "z": {}}, {"k" * 70: "\u00e9\u1ec7"}]
    envs = [envelope.seal(key, "rules", "headend", "n1", i + 1, 1000, 0, b)
            for i, b in enumerate(bodies)]
    for e in envs:
        msg = envelope.canonical({k: v for k, v in e.items() if k != "tag"})
        assert e["tag"] == hmac.new(key, msg, hashlib.sha256).hexdigest()
    literal = json.dumps(json.dumps(bodies))
    got = upy.json("import json\nfrom loaxa_node import envelope\n"
                   f"key = bytes(range(40))\nbodies = json.loads({literal})\n"
                   "print(json.dumps([envelope.seal(key, 'rules', 'headend', 'n1', i + 1, 1000,"
                   " 0, b)['tag'] for i, b in enumerate(bodies)]))")
    assert got == [e["tag"] for e in envs]
    for code, env, last in (("stale_seq", envs[0], 1), ("wrong_kind", envs[0], 0)):
        with pytest.raises(envelope.EnvelopeError) as ex:
            envelope.open_(env, key, "cmd" if code == "wrong_kind" else "rules", "n1", last)
        assert ex.value.code == code
    with pytest.raises(envelope.EnvelopeError) as ex:
        envelope.seal(key, "rules", "h", "n1", 1, 0, 0, {"f": 1.5})
    assert "floats" not in ex.value.msg and "not float" in ex.value.msg


def test_envelope_names_its_node_expires_and_refuses_version_1():
    key = bytes(range(32))
    cmd = envelope.seal(key, "cmd", "headend", "n1", 5, 1000, 1300, {"cmd": "stop"})

    def code(env, to="n1", last=0, now=None, kind="cmd"):
        with pytest.raises(envelope.EnvelopeError) as ex:
            envelope.open_(env, key, kind, to, last, now)
        return ex.value.code, ex.value.msg

    assert envelope.open_(cmd, key, "cmd", "n1", 4, 1299) == {"cmd": "stop"}
    assert envelope.open_(cmd, key, "cmd", "n1", 4, None) == {"cmd": "stop"}  # untrusted
    assert code(cmd, to="n2")[0] == "wrong_node"
    assert code(cmd, now=1301) == ("expired", "expired 1 s ago (by this node's clock)")
    assert code(cmd, now=600)[0] == "stale_ts"  # from further ahead than MAX_SKEW_S
    assert code(cmd, last=5)[0] == "stale_seq"
    assert code({**cmd, "to": "n2"}, to="n2")[0] == "bad_signature"  # the name is signed
    assert code({**cmd, "exp": 9999})[0] == "bad_signature"  # and so is the expiry
    forever = envelope.seal(key, "cmd", "headend", "n1", 6, 1000, 0, {"cmd": "stop"})
    assert code(forever)[0] == "bad_envelope"  # a command must expire
    old = {"v": 1, "kind": "cmd", "from": "headend", "seq": 9, "ts": 1000, "body": {},
           "tag": "00" * 32}
    c, msg = code(old)
    assert c == "old_envelope" and "version 1" in msg and "own key" in msg
    rules = envelope.seal(key, "rules", "headend", "n1", 7, 1000, 0, {"ver": "a"})
    assert envelope.open_(rules, key, "rules", "n1", 0, 10**6) == {"ver": "a"}  # no expiry


def test_explain_speaks_vietnamese_for_operators(monkeypatch, capsys):
    monkeypatch.setenv("LANGUAGE", "vi")
    main(["rules", "explain", str(EXAMPLE), "--at", "2026-11-23T05:40"])
    out = capsys.readouterr().out
    assert "ĐƯỢC PHÁT ở 70 %" in out and "lý do:" in out


def test_explain_gives_the_refusal_reason_in_vietnamese(monkeypatch, capsys):
    monkeypatch.setenv("LANGUAGE", "vi")
    main(["rules", "explain", str(EXAMPLE), "--at", "2026-11-23T11:10", "--priority", "test",
          "--zone", "cho"])
    out = capsys.readouterr().out
    assert "KHÔNG ĐƯỢC PHÁT" in out
    assert "lý do: khung giờ market không cho phép tin thử nghiệm" in out
    main(["rules", "explain", str(EXAMPLE), "--at", "2026-11-23T22:00"])
    assert "lý do: giờ yên tĩnh 21:00-05:00: chỉ phát tin khẩn cấp" in capsys.readouterr().out


ENGINE_CODES = sorted(set(re.findall(r'"code": "(\w+)"', (
    (REPO / "firmware" / "loaxa_node" / "rules" / "engine.py").read_text()
    + (REPO / "firmware" / "loaxa_node" / "rules" / "service.py").read_text()))))
SAMPLE = {"volume": 70, "kind": "relay", "start": "05:30", "end": "06:15", "exception": "tet",
          "zones": ["cho"], "window": "market", "priority": "test", "limit": 2, "cap": 80}


@pytest.mark.parametrize("code", ENGINE_CODES)
def test_every_engine_reason_is_worded_in_both_languages_without_english_left(code,
                                                                            monkeypatch):
    from loaxa import reasons
    reason = {"code": code, **SAMPLE}
    monkeypatch.setenv("LANGUAGE", "en")
    en = reasons.describe(reason)
    monkeypatch.setenv("LANGUAGE", "vi")
    vi = reasons.describe(reason)
    assert "{" not in en and "{" not in vi, "a parameter was not filled in"
    words = {w for w in re.findall(r"[a-z]{3,}", en)} - {"market", "tet", "cho"}
    assert words, en
    left = words & set(re.findall(r"[a-z]{3,}", vi))
    assert not left, f"English left in {vi!r}"


def test_zone_limits_compile_and_unknown_zones_are_refused():
    text = GOOD + "\n[limits.zones.cho]\nminutes_per_day = 30\nsessions_per_day = 1\n"
    if "[limits]" not in GOOD:
        text = text.replace("[limits.zones.cho]", "[limits]\n[limits.zones.cho]")
    R = compile_text(text).rules
    assert R["zcap"] == {"cho": {"n": 1, "d": 30}}
    with pytest.raises(RulesFileError) as e:
        compile_text(text.replace("[limits.zones.cho]", "[limits.zones.nowhere]"))
    assert "unknown zone 'nowhere'" in str(e.value)
    with pytest.raises(RulesFileError) as e:
        compile_text(text.replace("minutes_per_day = 30", "minutes = 30"))
    assert "limits.zones.cho" in str(e.value)
