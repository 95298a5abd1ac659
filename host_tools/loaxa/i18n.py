"""User-facing messages in Vietnamese and English, chosen by $LANG (vi* -> Vietnamese)."""

from __future__ import annotations

import os

MESSAGES: dict[str, dict[str, str]] = {
    "sim.started": {
        "en": "Simulated node running (board {board}, heap {heap} KB).\n"
        "  console: {url}\n  flash:   {state}\n  audio:   {audio}\n"
        "Open the console with any serial tool, e.g.\n"
        "  python -m serial.tools.miniterm {url}\n"
        "Ctrl-C here powers the node off.",
        "vi": "Nút mô phỏng đang chạy (bo mạch {board}, heap {heap} KB).\n"
        "  cổng console: {url}\n  bộ nhớ flash: {state}\n  âm thanh:     {audio}\n"
        "Mở console bằng công cụ serial bất kỳ, ví dụ\n"
        "  python -m serial.tools.miniterm {url}\n"
        "Nhấn Ctrl-C ở đây để tắt nút.",
    },
    "sim.stopped": {"en": "Node powered off.", "vi": "Đã tắt nút."},
    "flash.done": {
        "en": "{port}: flashed MicroPython {version} ({chip}, MAC {mac}).",
        "vi": "{port}: đã nạp MicroPython {version} ({chip}, MAC {mac}).",
    },
    "flash.same": {
        "en": "{port}: MicroPython {version} already on the board ({chip}, MAC {mac}); "
        "nothing written.",
        "vi": "{port}: bo mạch đã có MicroPython {version} ({chip}, MAC {mac}); "
        "không cần ghi.",
    },
    "error": {"en": "error: {msg}", "vi": "lỗi: {msg}"},
}


def lang() -> str:
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        v = os.environ.get(var, "")
        if v:
            return "vi" if v.lower().startswith("vi") else "en"
    return "en"


def t(key: str, **kw: object) -> str:
    entry = MESSAGES[key]
    return entry.get(lang(), entry["en"]).format(**kw)
