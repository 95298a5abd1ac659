"""Rules the node's module loading relies on (compat.unload, app.COMMANDS)."""

import re

import pytest

from loaxa import FIRMWARE

MODULES = sorted((FIRMWARE / "loaxa_node").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_modules_with_native_code_are_never_unloaded(path):
    # An ESP32 never frees the executable RAM of viper/native code: a module
    # that was unloaded and imported again would leak it each time.
    src = path.read_text()
    if re.search(r"^@micropython\.(viper|native)", src, re.M):
        assert re.search(r"^KEEP = True", src, re.M), f"{path.name} has native code but no KEEP"


def test_every_command_handler_exists():
    from loaxa_node import app

    for name, (handler, _) in app.COMMANDS.items():
        mod, _, fn = handler.rpartition(".")
        m = __import__("loaxa_node." + mod, fromlist=[fn])
        assert callable(getattr(m, fn, None)), f"{name}: {handler} is not a function"
