"""loaxa diag against a node over its console: every subcommand, doctor's verdicts on
seeded faults, and the Vietnamese a technician reads."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from loaxa import rules
from loaxa.cli import main
from loaxa.inventory import Inventory
from loaxa.rig.modem import RigModem

KEY = "3d" * 32
RULES = """
version = "diag-1"
quiet_hours = "23:59-00:00"
[[window]]
name = "allday"
days = "daily"
time = "00:00-23:59"
volume = 60
max_volume = 80
"""


# These tests are about what the tool says, not about the heap budget (that is
# test_audio_heap's): the nodes get room to spare unless a test asks otherwise.
ROOMY = {"heap_kb": 192}


@pytest.fixture
def sim_options(request):
    return getattr(request, "param", ROOMY)


@pytest.fixture
def qemu_options(target_name, tmp_path):
    """The emulated board's LTE modem, played by the rig: a node as installed has
    its network, and doctor's link check would rightly fail without one."""
    if target_name != "qemu":
        yield {}
        return
    modem = RigModem(ppp=True, log_path=tmp_path / "modem.log")
    yield {"extra_args": ("-serial", f"tcp:{modem.address}")}  # UART1
    modem.stop()


@pytest.fixture(autouse=True)
def english(monkeypatch, tmp_path):
    monkeypatch.setenv("LANGUAGE", "en")
    monkeypatch.setenv("LOAXA_INVENTORY", str(tmp_path / "inventory.sqlite"))
    monkeypatch.delenv("LOAXA_SERVICE_PIN", raising=False)


@contextmanager
def port_of(node):
    """Hand the node's port to the CLI (one reader at a time), then take it back."""
    node.pause()
    try:
        yield node.url
    finally:
        node.resume()


def diag(node, capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    # as slow as the rig found the node (an emulated ESP32: seconds an answer)
    slow = ["--slow", f"{node.slowdown:g}"] if node.slowdown > 1 else []
    with port_of(node) as port:
        rc = main(["diag", *args[:1], "--port", port, *slow, *args[1:]])
    return rc, capsys.readouterr().out


def healthy(node, inventory=True, clock=True):
    """A node as a technician leaves it: clock set, the commune's rules, in the inventory."""
    if clock:
        node.request("clock.set", {"time": int(time.time())})
    node.request("config.set", {"node_id": "ap-01"})
    node.request("keys.set", {"node_key": KEY})
    node.request("rules.set", rules.sign(rules.compile_text(RULES).rules, bytes.fromhex(KEY),
                                         "headend", "ap-01", 1, 0))
    if inventory:
        v = node.request("version")
        with Inventory() as inv:
            inv.record("ap-01", "provision", image_version=v["micropython"])


def verdicts(out: str) -> dict[str, str]:
    return {c["key"]: c["verdict"] for c in json.loads(out)["checks"]}


# The commands a technician starts with, in one boot.
@pytest.mark.qemu
def test_status_clock_and_volume_answer(node, capsys):
    rc, out = diag(node, capsys, "status", "--json")
    assert rc == 0 and json.loads(out)["fw"]
    rc, out = diag(node, capsys, "status")
    assert rc == 0 and "NOT synced" in out and "amplifier" in out
    # a node fresh from the factory, in words rather than its placeholders
    assert "not provisioned yet" in out and "no commune rules" in out and "unset" not in out
    rc, out = diag(node, capsys, "clock", "--set")
    assert rc == 0 and "trusted, from console" in out
    rc, out = diag(node, capsys, "clock", "--json")
    c = json.loads(out)
    # an emulated ESP32's clock runs behind the host's when QEMU is starved of CPU
    assert c["synced"] and abs(c["offset_s"]) < 2.0 * node.slowdown
    rc, out = diag(node, capsys, "volume", "40")
    assert rc == 0 and "volume 40 %" in out
    rc, out = diag(node, capsys, "volume", "--json")
    assert rc == 0 and json.loads(out)["volume"] == 40


@pytest.mark.qemu
def test_tone_rules_and_logs_answer(node, capsys):
    # noon in the commune (UTC+7): outside quiet hours, whenever the suite runs
    node.request("clock.set", {"time": int(time.time()) // 86400 * 86400 + 5 * 3600})
    rc, out = diag(node, capsys, "tone", "--seconds", "1", "--volume", "40", "--json")
    tone = json.loads(out)
    assert rc == 0 and tone["level"] > 0 and tone["volume"] == 40 and not tone["amp_fault"]
    rc, out = diag(node, capsys, "rules")
    assert rc == 0 and "outside every broadcast window" in out and "next change" in out
    assert out.startswith("Rules built in (not the commune's) at ")
    rc, out = diag(node, capsys, "rules", "--json")
    r = json.loads(out)
    assert rc == 0 and r["next_change"] and {a["kind"] for a in r["answers"]} == {"relay", "live"}
    rc, out = diag(node, capsys, "logs", "-n", "5")
    assert rc == 0 and "played tone:1000" in out
    rc, out = diag(node, capsys, "logs", "--crash")
    assert rc == 0 and "crash log is empty" in out
    rc, out = diag(node, capsys, "logs", "--json")
    assert {"lines", "crash"} <= set(json.loads(out))


@pytest.mark.qemu
def test_doctor_all_ok_on_a_healthy_node(node, capsys):
    healthy(node)
    rc, out = diag(node, capsys, "doctor", "--json")
    assert set(verdicts(out).values()) == {"ok"}, out
    assert rc == 0
    rc, out = diag(node, capsys, "doctor")
    assert rc == 0 and "Verdict: ok (exit code 0)" in out
    assert "window allday open" in out and "as the inventory expects" in out
    assert re.search(r"ok +broker \(MQTT\) +not configured", out)


def _doctor(node, capsys, *extra):
    rc, out = diag(node, capsys, "doctor", "--json", *extra)
    return rc, verdicts(out), json.loads(out)


def test_unsynced_clock_is_a_fault(node, capsys):
    healthy(node, clock=False)  # the RTC still says 2000: nobody vouched for it
    rc, v, _ = _doctor(node, capsys, "--no-tone")
    assert v["clock"] == "fault" and rc == 2
    assert {k for k, x in v.items() if x == "fault"} == {"clock"}


@pytest.mark.needs("link_control")
def test_no_link_is_a_fault(node, capsys, target):
    healthy(node)
    target.link_cut()
    deadline = time.monotonic() + 10
    while node.request("status")["net"]["up"]:  # the link manager looks every second
        assert time.monotonic() < deadline, "the link never went down"
        time.sleep(0.2)
    rc, v, _ = _doctor(node, capsys, "--no-tone")
    assert v["link"] == "fault" and rc == 2


def test_missing_broker_the_inventory_expects_is_a_fault(node, capsys):
    healthy(node)
    with Inventory() as inv:
        inv.record("ap-01", "provision", broker="mqtts://headend.an-phu:8883")
    rc, v, _ = _doctor(node, capsys, "--no-tone")
    assert v["broker"] == "fault" and rc == 2


def test_broker_that_does_not_answer_is_a_fault(node, capsys):
    healthy(node)
    node.request("config.set", {"broker.url": "mqtt://127.0.0.1:1"})  # nobody listens there
    deadline = time.monotonic() + 10
    while not node.request("status").get("broker"):
        assert time.monotonic() < deadline, "the control plane never reported"
        time.sleep(0.2)
    rc, v, doc = _doctor(node, capsys, "--no-tone")
    assert v["broker"] == "fault" and rc == 2
    b = next(c for c in doc["checks"] if c["key"] == "broker")
    assert b["code"] == "broker.down" and "mqtt://127.0.0.1:1" in b["found"]


def test_no_rules_is_a_fault(node, capsys):
    node.request("clock.set", {"time": int(time.time())})
    rc, v, _ = _doctor(node, capsys, "--no-tone")
    assert v["rules"] == "fault" and rc == 2


@pytest.mark.needs("amp_sense")
def test_amplifier_fault_sensed_by_the_board(node, capsys, target):
    healthy(node)
    target.amp_fault("short")
    rc, v, doc = _doctor(node, capsys)
    assert v["amp"] == "fault" and rc == 2
    amp = next(c for c in doc["checks"] if c["key"] == "amp")
    assert "short" in amp["found"]


@pytest.mark.needs("filesystem", "power_cut")
def test_crash_loop_safe_mode_is_a_fault(node, capsys, target, strategy):
    # Three failed boots on record, and a crash log longer than the 1 KB the node
    # sends, as app.record_crash leaves them: one traceback per entry.
    data = target.state / "data"
    (data / "boot.json").write_text(json.dumps({"boots": 7, "fails": 3}))
    trace = ("crash: Traceback (most recent call last):\n"
             '  File "loaxa_node/console.py", line 40, in __init__\n'
             "MemoryError: memory allocation failed, allocating %d bytes\n")
    (data / "crash.log").write_text("".join(trace % (512 + i) for i in range(12)))
    strategy.transition("on", fresh=True)
    node.wait_ready(20)
    rc, v, doc = _doctor(node, capsys)
    assert v["power"] == "fault" and rc == 2
    power = next(c for c in doc["checks"] if c["key"] == "power")
    assert power["code"] == "power.safe_mode"
    last = "last crash: MemoryError: memory allocation failed, allocating 523 bytes"
    assert last in power["found"]
    rc, out = diag(node, capsys, "logs", "--crash")
    # whole entries only: the node sends the log's last 1 KB, cut mid-entry
    assert rc == 0 and out.startswith("crash: Traceback"), out
    assert out.rstrip().endswith(last[-20:])


@pytest.mark.needs("memory_leak")
def test_heap_at_its_cap_is_a_fault(node, capsys, target, strategy):
    healthy(node)
    # a leak holds all but 4 KB of the heap (injected through the sim HAL)
    target.leak(4)
    deadline = time.monotonic() + 10
    while True:
        rc, v, doc = _doctor(node, capsys, "--no-tone")
        if v["heap"] == "fault" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert v["heap"] == "fault" and rc == 2, doc
    assert v["console"] == "ok"  # it answers, with what memory it has
    heap = next(c for c in doc["checks"] if c["key"] == "heap")
    assert heap["code"] == "heap.low", heap
    rc, out = diag(node, capsys, "doctor", "--no-tone")
    assert rc == 2 and "restart the node" in out
    # the restart doctor asks for, with the leak mended, clears the fault
    target.leak(None)
    strategy.transition("on", fresh=True)
    node.wait_ready(20)
    rc, v, doc = _doctor(node, capsys, "--no-tone")
    assert v["heap"] == "ok", doc


def test_doctor_and_rules_speak_vietnamese(node, capsys, monkeypatch):
    healthy(node, clock=False)
    monkeypatch.setenv("LANGUAGE", "vi")
    rc, out = diag(node, capsys, "doctor", "--no-tone")
    assert rc == 2
    assert "LỖI       đồng hồ" in out
    assert "CHƯA đáng tin: chưa đồng bộ từ khi bật nguồn" in out
    assert "→ kiểm tra mạng và máy chủ NTP" in out and "Kết luận: LỖI (mã thoát 2)." in out
    english = {"FAULT", "trusted", "Verdict", "network", "check", "the", "not", "ok"}
    words = set(re.findall(r"[A-Za-z]+", out))
    assert not english & words, f"English left: {english & words}"
    rc, out = diag(node, capsys, "rules")
    assert "tiếp sóng: KHÔNG ĐƯỢC PHÁT — đồng hồ chưa đáng tin (chưa đồng bộ giờ)" in out


class Tmux:
    """A real terminal: a private tmux server running one command."""

    def __init__(self, cmd: str, width: int = 120, height: int = 45):
        self.base = ["tmux", "-L", f"loaxa-test-{os.getpid()}"]
        subprocess.run([*self.base, "new-session", "-d", "-s", "t", "-x", str(width), "-y",
                        str(height), cmd], check=True)

    def screen(self) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p", "-t", "t"], check=True,
                              capture_output=True, text=True).stdout

    def wait(self, pattern: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            if re.search(pattern, s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} on the screen:\n{s}")
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux not installed (scripts/sysdeps.sh)")
@pytest.mark.needs("usb_replug")
def test_monitor_in_a_terminal_survives_a_reboot_and_a_cable_pull(target, strategy):
    strategy.transition("on")  # the monitor, not this test, holds the port
    loaxa = Path(sys.executable).parent / "loaxa"
    # the terminal's own size: pytest's COLUMNS would hold rich to 80x24
    term = Tmux(f"env -u COLUMNS -u LINES LANGUAGE=en {loaxa} diag monitor "
                f"--port {target.port_link} --interval 0.5")
    try:
        s = term.wait(r"running +\d+ s, reset: power on, boot #1")
        assert "loaxa diag monitor" in s and "connected" in s and "level" in s
        strategy.transition("on", fresh=True)
        s = term.wait(r"boot #2")
        assert "the node restarted (reset: power on, boot #2)" in s
        target.unplug()
        term.wait(r"no cable on .*waiting for it")
        time.sleep(1.5)  # the monitor keeps trying a port that is not there
        target.plug()
        s = term.wait(r"— connected to ")
        before = int(re.search(r"running +(\d+) s", s).group(1))
        s = term.wait(rf"running +(?!{before} s)\d+ s, reset: power on, boot #2", 10)
        assert "Traceback" not in s
    finally:
        term.close()


class Follow:
    """`loaxa diag logs -f` in its own process, as a technician runs it."""

    def __init__(self, port: str):
        loaxa = Path(sys.executable).parent / "loaxa"
        env = dict(os.environ, LANGUAGE="en")
        self.proc = subprocess.Popen([str(loaxa), "diag", "logs", "-f", "-n", "3", "--port", port],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.out: list[str] = []
        self._t = threading.Thread(target=lambda: self.out.extend(self.proc.stdout), daemon=True)
        self._t.start()

    def wait(self, pattern: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not any(re.search(pattern, ln) for ln in self.out):
            assert self.proc.poll() is None, f"logs -f ended: {self.proc.stderr.read()}"
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n{''.join(self.out)}"
            time.sleep(0.1)

    def end(self, timeout: float = 10) -> tuple[int, str]:
        rc = self.proc.wait(timeout)
        self._t.join(2)
        return rc, self.proc.stderr.read()


@pytest.fixture
def follow(target, strategy):
    """`logs -f` on a started node, its last lines already shown."""
    if "usb_replug" not in target.provides:
        pytest.skip(target.why_not("usb_replug"))
    strategy.transition("on")  # `logs -f`, not this test, holds the port
    f = Follow(target.port_link)
    try:
        f.wait(r"^\d+ (debug|info|warn|error) ")  # the last lines first
        yield f
    finally:
        if f.proc.poll() is None:
            f.proc.kill()


def test_logs_follow_shows_new_lines_across_a_reboot_and_ends_on_ctrl_c(strategy, follow):
    seen = len(follow.out)
    strategy.transition("on", fresh=True)  # a new boot logs while we follow
    follow.wait(r"reset: power_on, boot #2")
    assert any("boot #2" in ln for ln in follow.out[seen:])
    follow.proc.send_signal(signal.SIGINT)  # Ctrl-C
    rc, err = follow.end()
    assert rc == 0 and "Traceback" not in err, err


def test_logs_follow_says_when_the_cable_is_pulled(target, follow):
    target.unplug()
    try:
        rc, err = follow.end()
    finally:
        target.plug()
    assert rc == 2 and "Traceback" not in err, err
    assert "was pulled; stopped following" in err and "loaxa diag monitor" in err
