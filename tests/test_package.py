"""The package as a user installs it: a wheel built from this checkout, put into
fresh virtualenvs (versions from constraints.txt), run from a folder that holds no
checkout. With `[all]`, `loaxa --help`, `loaxa headend serve --help` and a sim node
answering `status` work from the installed files alone; without extras, the
technicians' tools work and the head-end says which extra it needs."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from loaxa import REPO

pytestmark = pytest.mark.skipif(not (REPO / "pyproject.toml").is_file(),
                                reason="needs the source checkout to build the wheel from")


def run(args: list, cwd: Path, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    p = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(map(str, args))} failed:\n{p.stdout[-3000:]}\n" \
                              f"{p.stderr[-3000:]}"
    return p.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", tmp, REPO], cwd=tmp)
    (whl,) = tmp.glob("loaxa-*.whl")
    return whl


def install(wheel: Path, extras: str) -> Path:
    env = wheel.parent / f"venv-{extras.strip('[]') or 'base'}"
    run([sys.executable, "-m", "venv", env], cwd=wheel.parent)
    run([env / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-c", REPO / "constraints.txt", f"{wheel}{extras}"], cwd=wheel.parent)
    where = run([env / "bin" / "python", "-c", "import loaxa; print(loaxa.FIRMWARE)"],
                cwd=wheel.parent)
    assert where.startswith(str(env)), f"the installed loaxa reads its firmware from {where}"
    return env / "bin"


@pytest.fixture(scope="module")
def venv(wheel) -> Path:
    return install(wheel, "[all]")


def test_without_extras_the_technicians_tools_work(wheel, tmp_path):
    bare = install(wheel, "")
    assert "esp32-devkitc-max98357" in run([bare / "loaxa", "flash", "--help"], cwd=tmp_path)
    assert "node" in run([bare / "loaxa", "inventory", "list"], cwd=tmp_path)
    p = subprocess.run([bare / "loaxa", "headend", "serve", "--commune", "x", "--data",
                        tmp_path], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, LANG="C.UTF-8"))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "loaxa[headend]" in p.stderr


def test_the_installed_cli_answers_help(venv, tmp_path):
    assert "headend" in run([venv / "loaxa", "--help"], cwd=tmp_path)
    assert "--mqtt-port" in run([venv / "loaxa", "headend", "serve", "--help"], cwd=tmp_path)


def test_a_sim_node_runs_from_the_installed_package(venv, tmp_path):
    sim = subprocess.Popen([venv / "loaxa", "sim", "--state", tmp_path / "node",
                            "--seconds", "120"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        said, url = [], ""
        for line in sim.stdout:  # type: ignore[union-attr]
            said.append(line)
            m = re.search(r"console: (\S+)", line)
            if m:
                url = m.group(1)
                break
        assert url, "the sim printed no console URL:\n" + "".join(said)
        out = run([venv / "loaxa", "console", "--port", url, "status"], cwd=tmp_path,
                  timeout=120)
        status = json.loads(out)
        assert status["board"] == "sim"
        # the node runs the application the wheel carries, not a checkout's
        assert (tmp_path / "node").is_dir()
    finally:
        sim.terminate()
        sim.wait(30)
