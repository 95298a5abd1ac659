"""compat.uses, the node's one way to load a module for a while: tasks that
use modules at the same time never lose one to another's unloading, and a
module is never imported twice while anyone uses it. Run on MicroPython (the
node's VM) and on CPython, each in a process of its own (unloading changes
the module table)."""

import json
import subprocess
import sys

from loaxa import FIRMWARE

# A: enters first, B imports the rules engine while A waits, A leaves while B
# still uses it (the old snapshot pattern unloaded it here: A's "new since I
# began"), B leaves last. Then many tasks at random.
SCENARIO = """
import asyncio, json, sys
from loaxa_node.compat import unload, uses

ENGINE = "loaxa_node.rules.engine"
CHECK = "loaxa_node.rules.check"
out = {}


def table(name):
    return sys.modules.get(name)


async def a(b_in, a_out):
    with uses("control.play"):
        await b_in.wait()
    a_out.set()


async def b(b_in, a_out):
    with uses("rules.engine") as eng:
        b_in.set()
        await a_out.wait()  # A has left
        out["kept_after_other_left"] = table(ENGINE) is eng
        __import__(ENGINE)
        out["same_copy"] = table(ENGINE) is eng
        with uses("rules.check") as chk:
            pass
        out["check_kept_while_in_use"] = table(CHECK) is chk  # B's outer block holds it
        out["engine_works"] = callable(eng.evaluate)
    out["unloaded_after"] = [n for n in (ENGINE, CHECK, "loaxa_node.control.play")
                             if table(n) is not None]


async def explicit(hold, done):
    # unload() of a module another task uses waits for the last user
    with uses("rules.engine") as eng:
        await hold.wait()
        out["explicit_kept"] = table(ENGINE) is eng
    done.set()


async def other(hold, done):
    with uses("rules.engine"):
        unload("rules.engine")
        hold.set()
        await done.wait()


seed = 7


def rnd(n):
    global seed
    seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
    return seed % n


NAMES = ("rules.engine", "rules.check", "control.play", "control.arbiter", "envelope")
errors = []
live = {}  # name -> [the module its users hold, how many]


async def worker(i):
    for _ in range(30):
        name = NAMES[rnd(len(NAMES))]
        full = "loaxa_node." + name
        with uses(name) as m:
            held = live.get(name)
            if held is None:
                live[name] = [m, 1]
            else:
                if held[0] is not m:
                    errors.append("%d: a second copy of %s" % (i, name))
                held[1] += 1
            for _ in range(rnd(3)):
                await asyncio.sleep(rnd(3) / 1000)
                if table(full) is not m:
                    errors.append("%d lost %s" % (i, name))
            live[name][1] -= 1
            if not live[name][1]:
                del live[name]
        await asyncio.sleep(0)


async def main():
    b_in, a_out = asyncio.Event(), asyncio.Event()
    await asyncio.gather(a(b_in, a_out), b(b_in, a_out))
    hold, done = asyncio.Event(), asyncio.Event()
    await asyncio.gather(explicit(hold, done), other(hold, done))
    out["explicit_unloaded_after"] = table(ENGINE) is None
    await asyncio.gather(*[worker(i) for i in range(6)])
    out["random_errors"] = errors[:5]
    out["left_loaded"] = [n for n in ("loaxa_node." + x for x in NAMES) if table(n) is not None]

asyncio.run(main())
print(json.dumps(out))
"""
EXPECTED = {"kept_after_other_left": True, "same_copy": True,
            "check_kept_while_in_use": True, "engine_works": True, "unloaded_after": [],
            "explicit_kept": True, "explicit_unloaded_after": True, "random_errors": [],
            "left_loaded": []}


def test_concurrent_users_keep_their_modules_on_micropython(upy):
    assert upy.json(SCENARIO) == EXPECTED


def test_concurrent_users_keep_their_modules_on_cpython():
    r = subprocess.run([sys.executable, "-c", SCENARIO], capture_output=True, text=True,
                       cwd=FIRMWARE, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == EXPECTED
