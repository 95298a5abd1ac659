"""`make demo` shows a healthy node and a captured test tone, in the user's language."""

import os
import re
import subprocess
import sys
from pathlib import Path


def run_demo(lang: str) -> str:
    r = subprocess.run([sys.executable, "-m", "loaxa.demo"], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, LANG=lang, LC_ALL="", LANGUAGE=""))
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_demo_in_english_captures_the_tone():
    out = run_demo("en_US.UTF-8")
    assert "NOT synced" in out and "errors" in out
    wav = Path(re.search(r"captured: (\S+\.wav)", out).group(1))
    assert wav.stat().st_size > 16000 * 2 * 0.9  # about a second of 16 kHz audio


def test_demo_in_vietnamese():
    out = run_demo("vi_VN.UTF-8")
    assert "Tình trạng nút" in out and "đã ghi:" in out
