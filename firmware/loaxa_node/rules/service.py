# The node's side of the rules: the stored rule set, its console commands
# (rules.get, rules.set signed only, rules.eval) and the scheduler task that
# sleeps until the next instant an answer may change, then starts, stops or
# re-levels what plays. Schedule items play their source: relay:NAME the
# stream the rules map NAME to (R["st"]), file:NAME the head-end's file
# service (R["fs"], url + NAME, played once), tone:HZ a tone.
# The compiled form's keys are named in engine.py's table (TZ, ID, SOURCE...);
# this module, resident while the node runs, spells the few it reads as
# literals: importing the table would keep the whole engine in RAM.
import asyncio
import gc
import json

from .. import log, storage, timeutil
from ..compat import unload, uses

# A fresh node: only emergency plays until the commune's rules arrive.
DEFAULT = {"v": 1, "ver": "default", "q": [1260, 360]}
# A safety net only: whatever the answers hang on pokes the service (new rules,
# a clock set or sync, a config change, a broadcast's end), and the next change
# is computed. Each pass imports the engine, and an import holds the event loop
# while it reads the flash: on the emulated ESP32's flash for a second or more,
# which runs the sink dry (a 2 s re-check lost 146 of 500 packets there).
MAX_SLEEP_S = 3600
# A pass that found the heap short (fragmented for a moment, a burst of
# messages) is tried again this soon: an hour without a pass is an hour of the
# commune's schedule missed.
RETRY_MS = 2000


def _check(stored):
    from .check import check
    check(stored["rules"])


class RulesService:
    def __init__(self, node):
        self.node = node
        st, src = storage.read_json("rules.json", None, _check)
        unload("rules.check")
        if src == "bak":
            log.warn("rules: using the last good copy")
        st = st or {"rules": DEFAULT, "seq": {}}
        self.R = st["rules"]
        self.seq = st["seq"]
        self.usage, _ = storage.read_json("usage.json", {"day": -1, "n": 0, "s": 0})
        self.window = None
        self._sess = None  # (player info dict, t2k start) of what the scheduler governs
        self._spent = {}  # item id -> end of the occurrence already played: never twice
        self._until = None
        self._wake = asyncio.Event()
        self._task = None

    # -- state ----------------------------------------------------------------
    def info(self):
        return {"version": self.R.get("ver", ""), "window": self.window,
                "seq": max(self.seq.values()) if self.seq else 0}

    def poke(self):
        self._wake.set()

    def forget(self, item):
        """A preempted item's slot is not spent: the next pass may restart it."""
        self._spent.pop(item, None)
        self.poke()

    def zones(self):
        return self.node.cfg["zones"]

    def used(self, now):
        """Usage counters for evaluate: today's, with the running session."""
        u = self.usage
        s = u["s"]
        if self._sess:
            s += now - self._sess[1]
        return {"day": u["day"], "n": u["n"], "s": s}

    def _account(self, now):
        """Roll the counters over at local midnight; close a finished session."""
        day = (now + self.R.get("tz", timeutil.TZ_MIN) * 60) // timeutil.DAY
        p = self.node.player
        if self._sess and (p is None or p.now is not self._sess[0]):
            self.usage["s"] += max(0, now - self._sess[1])
            self._sess = None
            storage.write_json("usage.json", self.usage)
        if self.usage["day"] != day:
            self.usage = {"day": day, "n": 1 if self._sess else 0, "s": 0}
            if self._sess:  # the running session counts for the new day from midnight
                tz = self.R.get("tz", timeutil.TZ_MIN) * 60
                self._sess = (self._sess[0], now - (now + tz) % 86400)
            storage.write_json("usage.json", self.usage)

    # -- the scheduler -----------------------------------------------------------
    async def _apply(self, rules):
        node = self.node
        p = node.player
        now = node.clock.now()
        trusted = node.clock.trusted()
        zones = self.zones()
        self._account(now)
        cur = rules.current(self.R, now, zones)
        self.window = cur["window"]
        self._until = None
        if p is None:
            return
        info = p.now
        if info is not None and "kind" in info:  # rule-governed: still allowed?
            running = [it for it, _ in cur["items"] if it["id"] == info.get("item")]
            req = {"priority": info["priority"], "kind": info["kind"], "zones": zones,
                   "volume": info.get("asked"), "running_s": now - self._sess[1]
                   if self._sess else 0}
            d = rules.evaluate(self.R, now, req, self.used(now), trusted)
            if not d["allow"] or (info.get("item") and not running):
                log.info("rules: stop %s: %s" % (info.get("source"), json.dumps(
                    d["reason"] if not d["allow"] else {"code": "item_ended"})))
                await p.stop()
                self._account(now)
            else:
                if d["volume"] != p.volume:
                    log.info("rules: volume %d: %s" % (d["volume"], json.dumps(d["reason"])))
                    p.set_volume(d["volume"])
                info["volume"] = d["volume"]
                self._until = d["until"]
                return
        if p.now is not None:
            return  # something outside the rules plays (a technician's test tone)
        for it, end in cur["items"]:
            if self._spent.get(it["id"]) == end:
                continue
            req = rules.item_request(it, zones)
            d = rules.evaluate(self.R, now, req, self.used(now), trusted)
            if not d["allow"]:
                log.debug("rules: %s waits: %s" % (it["id"], json.dumps(d["reason"])))
                continue
            stop = end if d["until"] is None else min(end, d["until"])
            self._spent[it["id"]] = end
            await self._start(it, req, d, stop - now)
            self._until = d["until"]
            break

    def _source(self, it, seconds):
        # -> (player source, codec), or None when the rules name no such stream
        kind, _, arg = it["src"].partition(":")
        p = self.node.player
        if kind == "tone":
            from ..audio.player import ToneSource
            gc.collect()  # the tone table wants 2 KB in one piece
            return ToneSource(int(arg), seconds), "sine"
        if kind == "relay":
            sess = self.R.get("st", {}).get(arg)
        else:
            sess = self.R.get("fs")
            if sess:
                sess = dict(sess)
                sess["url"] = sess["url"] + arg
        if not sess:
            log.error("rules: %s: the rules map no stream to %s" % (it["id"], it["src"]))
            return None
        gc.collect()  # the stream's objects go low in the heap, not between garbage
        from ..audio.stream import RtpSource
        return RtpSource(sess, self.node.cfg["jitter_ms"], p.arena(), p.sink,
                         once=kind == "file"), sess["codec"]

    async def _start(self, it, req, d, seconds):
        p = self.node.player
        try:
            made = self._source(it, seconds)
        except ValueError as e:  # the arena cannot hold this stream
            log.error("rules: %s: %s" % (it["id"], e))
            made = None
        if made is None:
            return
        src, codec = made
        info = {"source": it["src"], "priority": req["priority"], "kind": req["kind"],
                "codec": codec, "item": it["id"], "asked": req["volume"],
                "volume": d["volume"]}
        log.info("rules: start %s at %d %%: %s" % (it["id"], d["volume"],
                                                    json.dumps(d["reason"])))
        await p.play(src, d["volume"], info)
        self.started(info)

    def started(self, info):
        """A rule-governed broadcast began playing (a schedule item, a play
        over MQTT): it counts against the day's limits from now. Emergencies
        do not count; a resumed broadcast is not a new session."""
        now = self.node.clock.now()
        self._account(now)  # closes the session it replaced
        if info.get("priority") == "emergency":
            return
        self._sess = (info, now)
        if not info.get("resumed"):
            self.usage["n"] += 1
        storage.write_json("usage.json", self.usage)

    async def _pass(self):
        """Start, stop or re-level what plays; returns ms until the next pass.
        The engine is loaded for the pass only (its own frame: nothing that
        waits for the next pass keeps it)."""
        with uses("rules.engine") as rules:
            await self._apply(rules)
            now, ms = self.node.clock.now_ms()
            nxt = rules.next_change(self.R, now, self.zones())
        if self._until is not None:
            nxt = min(nxt, self._until)
        return min(max(nxt - now, 0), MAX_SLEEP_S) * 1000 - ms

    async def run(self):
        failing = False  # one log entry for a run of failed passes, not one each
        while True:
            self._wake.clear()
            # The engine is loaded for each pass only: between passes (most of
            # the time, and all through a broadcast) its RAM is the stream's.
            try:
                wait = await self._pass()
                failing = False
            except Exception as e:  # bad rules or a bug must not stop the node
                if not failing:
                    log.error("rules: %r" % (e,))
                failing = True
                if isinstance(e, MemoryError):
                    gc.collect()
                    wait = RETRY_MS
                else:
                    wait = MAX_SLEEP_S * 1000
            try:
                await asyncio.wait_for_ms(self._wake.wait(), max(wait, 10))
            except asyncio.TimeoutError:
                pass

    def start(self):
        self._task = asyncio.create_task(self.run())
        return self._task

    def deinit(self):
        if self._task:
            self._task.cancel()
            self._task = None


def install(node):
    svc = RulesService(node)
    node.clock.on_set = svc.poke
    node.register("rules.get", "rules.commands.get")
    # The signature is the authority here, as over MQTT: no PIN needed.
    node.register("rules.set", "rules.commands.set_")
    node.register("rules.eval", "rules.commands.eval_")
    return svc
