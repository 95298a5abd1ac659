"""loaxa deploy / provision / batch on simulated nodes, over a real 115200-baud UART budget."""

from __future__ import annotations

import json
import random
import shutil
import threading
import time

import pytest
from esp32_mock_bootloader import mock_bootloader

from loaxa import boards
from loaxa.appbuild import APP_SRC
from loaxa.cli import main
from loaxa.console import NodeConsole
from loaxa.deploy import deploy
from loaxa.errors import LoaxaError, NodeError
from loaxa.inventory import Inventory
from loaxa.sim import SimNode

pytestmark = pytest.mark.needs("filesystem")


@pytest.fixture
def sim_options():
    return {"baud": 115200}


def variant(tmp_path, version: str, every_file: bool = False):
    """A copy of the app that reports another firmware version (and, with
    every_file, differs in every module, so that a deploy sends them all)."""
    src = tmp_path / version / "loaxa_node"
    shutil.copytree(APP_SRC, src)
    init = src / "__init__.py"
    init.write_text(init.read_text().replace('VERSION = "', f'VERSION = "{version}-'))
    for py in src.rglob("*.py") if every_file else ():
        py.write_text(py.read_text() + f"\n_VARIANT = {version!r}\n")
    return src


@pytest.mark.needs("uart_throttle")
def test_deploy_over_115200_then_nothing_to_send_the_second_time(node, target):
    first = deploy(node)
    status = node.wait_ready(30)
    assert status["reset_cause"] == "soft"  # the app restarted after the switch
    ptr = (target.state / "app.ptr").read_text().strip()
    assert ptr == first.app and first.sent == first.files
    manifest = json.loads((target.state / ptr / "manifest.json").read_text())
    assert set(manifest) == {p for p in manifest if (target.state / ptr / p).is_file()}
    second = deploy(node)
    assert second.unchanged and second.app == first.app
    assert second.tx < first.tx / 5, (second.tx, first.tx)  # (almost) nothing sent
    node.wait_ready(30)


def test_changed_app_sends_only_changed_files_and_cleans_old_folders(node, target, tmp_path):
    a = deploy(node)
    b = deploy(node, variant(tmp_path, "b"))
    assert b.sent == 1 and b.copied == a.files - 1  # only __init__ changed
    assert node.wait_ready(30)["fw"].startswith("b-")
    c = deploy(node, variant(tmp_path, "c"))
    assert node.wait_ready(30)["fw"].startswith("c-")
    apps = sorted(p.name for p in target.state.glob("app_*"))
    assert apps == sorted([b.app, c.app])  # current + previous kept
    assert c.previous == b.app


@pytest.mark.needs("power_cut", "filesystem")
def test_power_cut_at_a_random_instant_of_deploy_leaves_a_bootable_app(node, target, strategy,
                                                                       tmp_path):
    full = deploy(node).seconds
    old = node.wait_ready(30)["fw"]
    new_src = variant(tmp_path, "new", every_file=True)
    cut_at = random.uniform(0.05, full)  # anywhere in a deploy that sends every file
    timer = threading.Timer(cut_at, strategy.transition, ("on",), {"fresh": True})
    timer.start()
    try:
        deploy(node, new_src)
        finished = True
    except LoaxaError:
        finished = False
    timer.join()
    status = node.wait_ready(30)
    assert not status["safe_mode"]
    # the old app, or (if the cut came after the switch) the complete new one
    assert status["fw"] == old or status["fw"].startswith("new-"), (cut_at, status["fw"])
    if finished:
        assert status["fw"].startswith("new-")
    # the switch is all or nothing: whatever booted is a complete, verified folder
    ptr = (target.state / "app.ptr").read_text().strip()
    man = json.loads((target.state / ptr / "manifest.json").read_text())
    assert all((target.state / ptr / k).is_file() for k in man)
    again = deploy(node, new_src)  # and a rerun completes the update
    assert node.wait_ready(30)["fw"].startswith("new-"), again


def test_provision_writes_identity_keys_and_pin_never_printing_keys(node, target, tmp_path,
                                                                    capsys):
    inv_path = tmp_path / "inv.sqlite"
    node.close()  # the CLI opens the port itself
    url, inv_arg = target.url, ["--inventory", str(inv_path)]
    assert main(["deploy", "--port", url, *inv_arg]) == 0
    assert "deployed app_" in capsys.readouterr().out
    rc = main(["provision", "--port", target.url, "--node-id", "ab-07", "--commune",
               "an-binh", "--zones", "thon-1,cho", "--net", "eth", "--broker",
               "mqtt://hq:1883", "--pin", "2468", "--inventory", str(inv_path)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    keys = json.loads((target.state / "data" / "keys.json").read_text())
    with Inventory(inv_path) as inv:
        assert keys["node_key"] == inv.node_key("ab-07")
        (row,) = list(inv.nodes())
    assert sorted(keys) == ["mqtt_password", "node_key"]  # no key shared between nodes
    assert row["zones"] == ["thon-1", "cho"] and row["mac"] == target.uid
    assert keys["node_key"] not in out.out + out.err
    assert keys["node_key"] not in inv_path.read_bytes().decode("latin-1")  # encrypted
    assert oct(inv_path.stat().st_mode & 0o777) == "0o600"
    assert list(target.audio_dir.glob("*.wav")), "the self-test tone played"
    assert main(["deploy", "--port", url, *inv_arg]) == 0  # a provisioned node is recorded
    assert "already installed" in capsys.readouterr().out
    with Inventory(inv_path) as inv:
        (row,) = list(inv.nodes())
        assert row["app"] == (target.state / "app.ptr").read_text().strip()
        assert [e["action"] for e in inv.events("ab-07")] == ["keys", "provision", "deploy"]
    with NodeConsole(target.url) as con:  # the PIN is set: a wrong one is refused
        with pytest.raises(NodeError) as e:
            con.request("auth", {"pin": "0000"})
        assert e.value.code == "bad_pin"
        assert con.request("auth", {"pin": "2468"}) == {"authorised": True}
    # the broker password: the node's user is its id, the password is in the inventory
    # (sealed) and on the node only; provisioning again rotates it
    pw = keys["mqtt_password"]
    assert pw not in out.out + out.err and pw not in inv_path.read_bytes().decode("latin-1")
    with Inventory(inv_path) as inv:
        assert inv.mqtt_password("ab-07") == pw
    assert main(["provision", "--port", target.url, "--node-id", "ab-07", "--commune",
                 "an-binh", "--zones", "thon-1", "--net", "eth", "--broker", "mqtt://hq:1883",
                 "--pin", "2468", "--current-pin", "2468", *inv_arg]) == 0
    again = json.loads((target.state / "data" / "keys.json").read_text())["mqtt_password"]
    with Inventory(inv_path) as inv:
        assert again != pw and inv.mqtt_password("ab-07") == again


def test_batch_of_sims_and_mocks_one_failing(tmp_path, capsys):
    image = tmp_path / "img.bin"
    image.write_bytes(bytes(range(256)) * 64)
    sims = [SimNode(tmp_path / f"n{i}", seed_app=False) for i in range(3)]
    mocks = [mock_bootloader(chip=c) for c in ("esp32", "esp32", "esp32c3")]
    try:
        ports = ",".join(f"{m.url()}={s.start()}" for m, s in zip(mocks, sims, strict=True))
        t0 = time.monotonic()
        rc = main(["batch", "--ports", ports, "--board", "esp32-devkitc-max98357",
                   "--image", str(image), "--force", "--node-ids", "n0,n1,n2",
                   "--commune", "an-binh", "--zones", "thon-1", "--net", "eth",
                   "--broker", "mqtt://hq:1883", "--pin", "1357",
                   "--inventory", str(tmp_path / "inv.sqlite")])
        took = time.monotonic() - t0
    finally:
        for m in mocks:
            m.stop()
        for s in sims:
            s.stop()
    out = capsys.readouterr().out
    assert rc == 1
    lines = {ln.split()[1]: ln for ln in out.splitlines() if ln.startswith("/dev/")}
    assert "ok" in lines["n0"] and "ok" in lines["n1"]
    assert "FAILED" in lines["n2"] and "ESP32-C3" in lines["n2"]
    assert "2 of 3 boards ready" in out
    with Inventory(tmp_path / "inv.sqlite") as inv:
        nodes = {n["node_id"]: n for n in inv.nodes()}
    assert nodes["n0"]["mac"] == "240ac4e29526" and nodes["n0"]["image_version"] == "1.23.0"
    assert "n2" not in nodes
    assert took < 120
    assert boards.load("esp32-devkitc-max98357")  # the board named in the table


def test_a_file_corrupted_on_the_way_is_caught_and_the_old_app_stays(node, target, tmp_path,
                                                                      monkeypatch):
    first = deploy(node)
    node.wait_ready(30)
    import loaxa.deploy as dp

    real = dp.escape_units

    def flip_one_byte(data: bytes) -> list[bytes]:
        units = real(data)
        u = bytearray(units[len(units) // 2])
        u[-1] ^= 0x20 if u[-1] not in (0x03 ^ 0x20, 0x1B ^ 0x20, 0x1B) and u[-2] != 0x1B else 0
        return units[:len(units) // 2] + [bytes(u)] + units[len(units) // 2 + 1:]

    monkeypatch.setattr(dp, "escape_units", flip_one_byte)
    with pytest.raises(LoaxaError, match="corrupted|did not verify") as e:
        deploy(node, variant(tmp_path, "bad"))
    assert "previous app stays active" in e.value.msg and "cable" in e.value.hint
    assert (target.state / "app.ptr").read_text().strip() == first.app
    status = node.wait_ready(30)  # and the previous app was restarted
    assert status["reset_cause"] == "soft" and not status["fw"].startswith("bad-")


def test_a_node_without_deflate_gets_plain_files(node, target, monkeypatch):
    import loaxa.deploy as dp

    monkeypatch.setattr(dp, "_PROBE", dp._PROBE.replace("D is not None", "False"))
    r = deploy(node)
    assert node.wait_ready(30)["reset_cause"] == "soft"
    assert (target.state / "app.ptr").read_text().strip() == r.app
    assert r.tx > r.payload  # sent as they are, nothing inflated on the node


def test_verify_rewrites_only_a_damaged_file_of_the_current_app(node, target):
    first = deploy(node)
    node.wait_ready(30)
    # flash rot in a module the sim never imports (a broken imported one would
    # stop the app from booting at all)
    victim = target.state / first.app / "loaxa_node" / "hal" / "esp32.mpy"
    victim.write_bytes(b"\0" * victim.stat().st_size)
    assert deploy(node).unchanged  # trusted by name...
    node.wait_ready(30)
    r = deploy(node, verify=True)  # ...until asked to look
    assert r.sent == 1 and r.app == first.app
    assert node.wait_ready(30)["reset_cause"] == "soft"
    assert victim.read_bytes()[:1] == b"M"  # an .mpy again


def test_deploy_rescues_a_node_boot_looping_on_a_buggy_app(node, target, tmp_path):
    bad = variant(tmp_path, "bug")
    app = bad / "app.py"
    app.write_text(app.read_text().replace(
        "    def __init__(self", "    def __init__(self, *a):\n        raise RuntimeError('bug')\n"
        "\n    def _unused(self", 1))
    deploy(node, bad)  # verified and switched: the bug is in the app, not the copy
    boots = target.boots
    time.sleep(5)
    assert target.boots > boots + 1, "the node should be resetting over and over"
    deploy(node)
    status = node.wait_ready(30)
    assert not status["fw"].startswith("bug-")


@pytest.mark.qemu  # one boot + a soft reset on qemu; a full deploy there: make bench
@pytest.mark.keeps_node  # back in the application afterwards, nothing stored
def test_a_slow_node_side_step_lives_on_its_ticks_and_silence_still_fails(node):
    """No deadline for a whole step: ticks restart the wait, silence ends it."""
    from loaxa.rawrepl import LinkLost, RawRepl

    port = node.pause()
    try:
        repl = RawRepl(port)
        repl.enter()
        seen: list[int] = []
        out = repl.exec("import time,sys\nfor i in range(4):\n time.sleep(1.5)\n"
                        " sys.stdout.write('\\x06')\nprint('done')", timeout=2.5,
                        tick=seen.append)
        assert out.strip() == "done" and seen[-1] == 4  # 6 s of work under a 2.5 s wait
        with pytest.raises(LinkLost, match="nothing for 2.5 s"):
            repl.exec("import time\ntime.sleep(6)", timeout=2.5)
        repl.read_until(b"\x04\x04", 10)  # it was only slow: let it end
        repl.exit(soft_reset=True)
    finally:
        node.resume()
    node.wait_ready(30)
