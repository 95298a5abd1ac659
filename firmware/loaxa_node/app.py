# The node application: boot, then long-lived asyncio tasks.
#
# boot: data dir -> board -> config -> boot record (safe mode?) -> HAL ->
#       clock, auth, player -> commands -> tasks: console, watchdog, health.
import asyncio
import gc
import sys
import time

from . import VERSION, config, log, service, storage

SAFE_MODE_AFTER = 3  # failed boots in a row (crash or watchdog)
HEALTHY_AFTER_S = 30  # a boot that ran this long counts as good
BOOT_RETRY_S = 2  # pause after a failed boot before the reset
WDT_MS = 10000

SIM_BOARD = {"name": "sim", "chip": "sim", "audio": {"sink": "wav"}, "net": []}


class Node:
    def __init__(self):
        self._t0 = time.ticks_ms()
        storage.ensure_dir()
        self.board, _ = storage.read_json("board.json", SIM_BOARD)
        stored, src = storage.read_json("config.json", {})
        self.cfg, dropped = config.load(stored)
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
        if not self.safe_mode:
            from .player import Player
            self.player = Player(self.hal, self.cfg["amp_hold_s"],
                                 self.board.get("audio", {}).get("buffer_kb", 4))
        self.commands = {}
        self.tasks = []
        self._sntp = None
        self._reset_reason = None
        service.install(self)
        from . import stream
        stream.install(self)
        self.rules = None
        if not self.safe_mode:
            from . import rulesvc
            self.rules = rulesvc.install(self)

    def _count_boot(self):
        return bump_boot_record(1, 1 if self.reset_cause == "watchdog" else 0)

    def data_files(self):
        return ("config.json", "auth.json", "boot.json", "rules.json", "keys.json",
                "usage.json", "crash.log", "crash.log.1")

    # -- commands -------------------------------------------------------------
    def register(self, name, fn, mutating=False):
        self.commands[name] = (fn, mutating)

    async def dispatch(self, cmd, args):
        from .console import CmdError
        entry = self.commands.get(cmd)
        if entry is None:
            raise CmdError("unknown_command",
                           "unknown command %r; known: %s" % (cmd, " ".join(sorted(self.commands))))
        fn, mutating = entry
        if mutating and not self.auth.authorised():
            raise CmdError("auth_required", 'send @1 auth {"pin": "..."} first')
        r = fn(args)
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

    def _start_sntp(self):
        # loaded only once a server is configured: a node without one saves the RAM
        if self.cfg["ntp.server"] and self._sntp is None and self.tasks:
            from . import sntp
            self._sntp = asyncio.create_task(sntp.run(self))
            self.tasks.append(self._sntp)

    # -- status ---------------------------------------------------------------
    def uptime_s(self):
        return time.ticks_diff(time.ticks_ms(), self._t0) // 1000

    def status(self):
        p = self.player
        stats = getattr(p.source, "stats", None) if p else None
        c = self.clock.info()
        return {
            "fw": VERSION,
            "board": self.board.get("name"),
            "node_id": self.cfg["node_id"],
            "uid": self.hal.unique_id(),  # the base MAC on an ESP32
            "uptime_s": self.uptime_s(),
            "reset_cause": self.reset_cause,
            "boots": self.boot["boots"],
            "safe_mode": self.safe_mode,
            "clock": {"synced": c["synced"], "local": c["local"], "source": c["source"]},
            "rules": self.rules.info() if self.rules else None,
            "net": self.hal.net_status(),
            "volume": self.cfg["volume"],
            "playing": p.now if p else None,
            "stream": stats() if stats else None,
            "amp": p.amp if p else False,
            "counters": {
                "console_requests": self.console.requests,
                "console_rejected": self.console.rejected,
                "underruns": p.sink.underruns if p else 0,
            },
            "heap": service.heap(),
            "temperature": self.hal.temperature(),
            "errors": log.last_errors(),
        }

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
        if self.rules:
            self.tasks.append(self.rules.start())
        self._start_sntp()
        log.info("ready")
        while True:
            await asyncio.sleep(3600)

    def deinit(self):
        me = asyncio.current_task() if self.tasks else None
        for t in self.tasks:
            if t is not me:
                t.cancel()
        if self.player:
            self.player.sink.close()


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
