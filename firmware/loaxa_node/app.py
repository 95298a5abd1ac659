# The node application: boot, then long-lived asyncio tasks.
#
# boot: data dir -> board -> config -> boot record (safe mode?) -> HAL ->
#       clock, auth, player, link -> commands -> tasks: console, watchdog,
#       health, link manager.
import asyncio
import gc
import sys
import time

from . import VERSION, log, storage
from .compat import unload, uses

SAFE_MODE_AFTER = 3  # failed boots in a row (crash or watchdog)
HEALTHY_AFTER_S = 30  # a boot that ran this long counts as good
BOOT_RETRY_S = 2  # pause after a failed boot before the reset
WDT_MS = 10000

SIM_BOARD = {"name": "sim", "chip": "sim", "audio": {"sink": "wav"}, "net": []}

# command: ("module.handler", needs the PIN). A handler takes (node, args); its
# module loads for the request and is dropped after it (see dispatch): most
# commands are rare, and 64 KB of heap cannot hold them all all day.
COMMANDS = {
    "status": ("app.status", False),
    "version": ("app.version", False),
    "log": ("control.system.log_", False),
    "clock.get": ("control.system.clock_get", False),
    "clock.set": ("control.system.clock_set", True),
    "clock.sync": ("control.system.clock_sync", False),  # only from the configured server
    "config.get": ("control.system.config_get", False),
    "config.set": ("control.system.config_set", True),
    "auth": ("control.system.auth", False),
    "pin.set": ("control.system.pin_set", True),
    "tone": ("control.system.tone", True),
    "keys.set": ("control.system.keys_set", True),
    "reboot": ("control.system.reboot", True),
    "factory_reset": ("control.system.factory_reset", False),  # asks for the PIN itself
    "play": ("control.play.play", True),
    "stop": ("control.play.stop", True),
    "volume": ("control.play.volume", True),
}


class Arb:
    """Who plays: the state of control/arbiter.py, which loads per request."""

    def __init__(self):
        self.cur = None  # info of the broadcast the arbiter started
        self.make = None  # how to make its source again
        self.vol = 0  # its volume
        self.held = None  # (info, make, vol) of the broadcast it preempted
        self.timer = None  # the task that stops it at its `until`


class Node:
    def __init__(self):
        self._t0 = time.ticks_ms()
        storage.ensure_dir()
        self.board, _ = storage.read_json("board.json", SIM_BOARD)
        stored, src = storage.read_json("config.json", {})
        from . import config
        self.cfg, dropped = config.load(stored)
        del config
        unload("config")  # the schema is needed again only by config.set
        log.level = log.LEVELS[self.cfg["log_level"]]
        from . import hal as hal_mod
        self.hal = hal_mod.load(self.board)
        self.reset_cause = self.hal.reset_cause()
        self.boot = self._count_boot()
        self.safe_mode = self.boot["fails"] >= SAFE_MODE_AFTER
        log.info("loaxa %s on %s, reset: %s, boot #%d%s" % (
            VERSION, self.board.get("name"), self.reset_cause, self.boot["boots"],
            " SAFE MODE" if self.safe_mode else ""))
        if src != "main":
            log.warn("config from %s copy" % src)
        if dropped:
            log.warn("config: ignored invalid keys " + ", ".join(dropped))
        from .auth import Auth
        from .clock import Clock
        self.clock = Clock(self.hal, self.cfg["tz_offset_min"])
        self.auth = Auth()
        self.player = None
        self.arb = Arb()
        self.control = None  # the MQTT control plane, once a broker is configured
        self._ctl_cfg = None
        if not self.safe_mode:
            from .audio.player import Player
            self.player = Player(self.hal, self.cfg["amp_hold_s"],
                                 self.board.get("audio", {}).get("buffer_kb", 4))
            self.player.on_end = self._play_ended
        # the network comes up in safe mode too: it is how a fixed app arrives
        from .net.link import Link
        self.link = Link(self)
        self.commands = dict(COMMANDS)
        self.tasks = []
        self._sntp = None
        self._reset_reason = None
        self.rules = None
        if not self.safe_mode:
            from .rules import service as rulesvc
            self.rules = rulesvc.install(self)

    def _count_boot(self):
        return bump_boot_record(1, 1 if self.reset_cause == "watchdog" else 0)

    def data_files(self):
        return ("config.json", "auth.json", "boot.json", "rules.json", "keys.json",
                "usage.json", "crash.log", "crash.log.1")

    # -- commands -------------------------------------------------------------
    def register(self, name, handler, mutating=False):
        """handler: "module.function" of this package, called as fn(node, args)."""
        self.commands[name] = (handler, mutating)

    async def dispatch(self, cmd, args):
        from .console import CmdError
        entry = self.commands.get(cmd)
        if entry is None:
            raise CmdError("unknown_command",
                           "unknown command %r; known: %s" % (cmd, " ".join(sorted(self.commands))))
        handler, mutating = entry
        if mutating and not self.auth.authorised():
            raise CmdError("auth_required", 'send @1 auth {"pin": "..."} first')
        mod, _, fn = handler.rpartition(".")
        # What a request imports gives its RAM back once no request or pass
        # runs (a stream's code lives on in the stream until that ends).
        with uses(mod) as m:
            r = getattr(m, fn)(self, args)
            if hasattr(r, "send"):  # coroutine: handler is async
                r = await r
            return r

    def apply_config(self, cfg):
        self.cfg = cfg
        log.level = log.LEVELS[cfg["log_level"]]
        self.clock.tz_offset_min = cfg["tz_offset_min"]
        if self.player:
            self.player.hold_s = cfg["amp_hold_s"]
        self._start_sntp()
        self._start_control()
        if self.rules is not None:
            self.rules.poke()  # zones and volume limits are in the config

    def _start_control(self):
        # loaded only once a broker is configured; re-subscribes when the
        # node's identity or zones change. Runs in safe mode too (status, events).
        c = self.cfg
        want = (c["broker.url"], c["topic_prefix"], c["commune"], c["node_id"], c["zones"])
        if not self.tasks or want == self._ctl_cfg:
            return
        self._ctl_cfg = want
        if self.control is not None and not c["broker.url"]:
            self.control.deinit()
            self.control = None
        elif self.control is not None:
            self.control.configure()
        elif c["broker.url"]:
            from .control.plane import Control
            self.control = Control(self)
            self.tasks.extend(self.control.start())

    def _start_sntp(self):
        # loaded only once a server is configured: a node without one saves the RAM
        if self.cfg["ntp.server"] and self._sntp is None and self.tasks:
            from .net import sntp
            self._sntp = asyncio.create_task(sntp.run(self))
            self.tasks.append(self._sntp)

    def _play_ended(self, info, outcome, stats, ms):
        # outcome as the arbiter marked it (preempted, replaced) at this instant
        asyncio.create_task(self._after_play(info, info.get("outcome", outcome), stats, ms))

    async def _after_play(self, *a):
        try:
            with uses("control.arbiter") as arbiter:
                await arbiter.ended(self, *a)
        except Exception as e:
            log.error("after play: %r" % (e,))

    def uptime_s(self):
        return time.ticks_diff(time.ticks_ms(), self._t0) // 1000

    # -- tasks ----------------------------------------------------------------
    def schedule_reset(self, why):
        self._reset_reason = why

    async def _watchdog(self):
        if self.board.get("wdt", True):
            self.hal.wdt_start(WDT_MS)
        while True:
            self.hal.wdt_feed()
            if self._reset_reason:
                await asyncio.sleep_ms(100)  # let the console reply go out
                log.info("reset: " + self._reset_reason)
                self.deinit()
                self.hal.reset()
            await asyncio.sleep_ms(500)

    async def _health(self):
        await asyncio.sleep(HEALTHY_AFTER_S)
        if self.boot["fails"]:
            self.boot["fails"] = 0
            storage.write_json("boot.json", self.boot)
        while True:
            gc.collect()
            await asyncio.sleep(60)

    async def run(self):
        from .console import Console
        self.console = Console(self.dispatch)
        for coro in (self.console.run(), self._watchdog(), self._health()):
            self.tasks.append(asyncio.create_task(coro))
        t = self.link.start()
        if t:
            self.tasks.append(t)
        if self.rules:
            self.tasks.append(self.rules.start())
        self._start_sntp()
        self._start_control()
        log.info("ready")
        while True:
            await asyncio.sleep(3600)

    def deinit(self):
        me = asyncio.current_task() if self.tasks else None
        for t in self.tasks:
            if t is not me:
                t.cancel()
        if self.control:
            self.control.deinit()
        self.link.deinit()
        if self.player:
            self.player.sink.close()


# -- commands kept resident: status is polled ---------------------------------
def status(node, args):
    p = node.player
    c = node.clock.info()
    return {
        "fw": VERSION,
        "board": node.board.get("name"),
        "node_id": node.cfg["node_id"],
        "uid": node.hal.unique_id(),  # the base MAC on an ESP32
        "uptime_s": node.uptime_s(),
        "reset_cause": node.reset_cause,
        "boots": node.boot["boots"],
        "boot_fails": node.boot["fails"],
        "safe_mode": node.safe_mode,
        "clock": {"synced": c["synced"], "local": c["local"], "source": c["source"]},
        "rules": node.rules.info() if node.rules else None,
        "net": node.link.info(),
        "broker": node.control.info() if node.control else None,
        "volume": node.cfg["volume"],
        "playing": p.now if p else None,
        "stream": p.stream_stats() if p else None,
        "amp": p.amp if p else False,
        "amp_fault": node.hal.amp_fault(),
        "level": p.level if p else 0,
        "counters": {
            "console_requests": node.console.requests,
            "console_rejected": node.console.rejected,
            "underruns": p.sink.underruns if p else 0,
        },
        "heap": heap(),
        "temperature": node.hal.temperature(),
        "errors": log.last_errors(),
    }


def version(node, args):
    try:
        with open("app.ptr") as f:  # the folder main.py runs (loaxa deploy writes it)
            app = f.read().strip()
    except OSError:
        app = None  # not deployed: the app came with the image (or the sim's seed)
    v = sys.implementation.version
    return {"fw": VERSION, "board": node.board.get("name"), "hal": node.hal.name,
            "app": app, "micropython": "%d.%d.%d" % (v[0], v[1], v[2])}


def heap():
    gc.collect()
    return {"free": gc.mem_free(), "alloc": gc.mem_alloc()}


def bump_boot_record(boots=0, fails=0):
    b, _ = storage.read_json("boot.json", {})
    b["boots"] = b.get("boots", 0) + boots
    b["fails"] = b.get("fails", 0) + fails
    storage.write_json("boot.json", b)
    return b


def record_crash(msg):
    """Log a crash on flash and count it as a failed boot (towards safe mode)."""
    log.crash(msg)
    bump_boot_record(fails=1)


def main():
    try:
        node = Node()
    except Exception as e:
        # Reset and count it: after SAFE_MODE_AFTER such boots the node comes up
        # in safe mode (no audio, no rules) instead of looping.
        record_crash("boot failed: " + _exc_text(e))
        from . import hal
        board, _ = storage.read_json("board.json", SIM_BOARD)
        # A pause before resetting: without it a boot loop leaves no moment
        # for a technician's Ctrl-C (or `loaxa deploy`) to reach the REPL.
        print("loaxa: boot failed; restarting in %d s (Ctrl-C: REPL)" % BOOT_RETRY_S)
        time.sleep(BOOT_RETRY_S)
        hal.load(board).reset()
        raise
    try:
        asyncio.run(node.run())
    except KeyboardInterrupt:
        node.deinit()
        print("loaxa stopped: MicroPython REPL. Ctrl-D restarts the node.")
    except Exception as e:
        record_crash("crash: " + _exc_text(e))
        node.hal.reset()


def _exc_text(e):
    try:
        import io
        s = io.StringIO()
        sys.print_exception(e, s)
        return s.getvalue()[-400:]
    except Exception:
        return repr(e)
