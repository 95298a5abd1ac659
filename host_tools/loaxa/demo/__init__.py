"""`make demo`: a commune on this machine in about a minute (docs/demo.md).

`loaxa headend serve` (embedded broker, SQLite in a temp folder, web page on a
free port) and three simulated nodes in two zones; the rules open a window for
thon-1 now and one for thon-2 later. An announcement for thon-1 plays there, one
for thon-2 is refused by its node, an emergency siren cuts in on every node and
the announcement resumes. The operator's actions are the head-end library's
(`loaxa.headend.service`, as the CLI and the web page), the waits read what the
head-end filed from the nodes, and the end shows the node table, the report, a
WAV per node and the page to open."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from loaxa_node import timeutil

from .. import reasons
from ..errors import LoaxaError
from ..headend.server import open_headend
from ..headend.service import Headend
from ..i18n import t
from ..rig.headend import HeadendProcess, enrol, node_up, poll
from ..term import print_table
from ..testsignals import write_wav
from .timeline import RATE, node_timeline

COMMUNE = "an-phu"
NODES = {"n1": "thon-1", "n2": "thon-1", "n3": "thon-2"}
OPEN_ZONE, SHUT_ZONE = "thon-1", "thon-2"
ACTOR = ("demo", "admin")  # the audit log names the demo
WEB_USER, WEB_PASSWORD = "demo", "loaxa-demo"
NEWS_HZ, NEWS_S = 440, 10  # the announcement: long enough to be cut into
HEARD_S = 5  # from the announcement's start to the emergency
SIREN_S = 4  # how long the emergency plays
TZ = timezone(timedelta(minutes=timeutil.TZ_MIN))  # the rules' (and Việt Nam's) time


def window(start_min: int, minutes: int) -> tuple[str, bool]:
    """'HH:MM-HH:MM' of a window starting start_min after local midnight, and
    whether it runs past midnight (the rules then need overnight = true)."""
    a = start_min % 1440
    b = a + minutes
    hm = "%02d:%02d"
    return (hm % divmod(a, 60)) + "-" + (hm % divmod(b % 1440, 60) if b != 1440 else "24:00"), \
        b > 1440


def rules_text(now: datetime) -> tuple[str, str, str]:
    """The demo commune's rules for the time it runs: thon-1's window is open
    now, thon-2's opens in three hours. Returns (text, thon-1's, thon-2's)."""
    m = now.hour * 60 + now.minute
    w1, o1 = window(m - 10, 60)
    w2, o2 = window(m + 180, 45)

    def win(name: str, zone: str, span: str, overnight: bool) -> str:
        return (f'[[window]]\nname = "{name}"\ndays = "daily"\ntime = "{span}"\n'
                + ("overnight = true\n" if overnight else "")
                + f'volume = 70\nmax_volume = 80\nzones = ["{zone}"]\n')
    text = ("# The demo commune's rules, written for the hour the demo ran (docs/demo.md).\n"
            'version = "demo-1"\n'
            "# no quiet hours, so that the demo runs at any hour; communes keep 21:00-06:00\n"
            'quiet_hours = ""\nemergency_volume = 100\n'
            f'zones = ["{OPEN_ZONE}", "{SHUT_ZONE}"]\n\n'
            + win("khung-" + OPEN_ZONE, OPEN_ZONE, w1, o1) + "\n"
            + win("khung-" + SHUT_ZONE, SHUT_ZONE, w2, o2))
    return text, w1, w2


def need(program: str, package: str) -> None:
    if shutil.which(program) is None:
        raise LoaxaError(t("demo.missing", program=program),
                         t("demo.install", package=package))


class Story:
    """The demo's state: the commune's processes and what the head-end saw."""

    def __init__(self, state: Path, stack: ExitStack):
        self.state = state
        self.stack = stack
        self.t0 = time.monotonic()
        self.he = HeadendProcess(state, COMMUNE, lang=os.environ.get("LANG", "C"))
        self.nodes: dict = {}
        self.ops: Headend | None = None

    def say(self, key: str, **kw: object) -> None:
        print(f"[{time.monotonic() - self.t0:4.0f} s] " + t(key, **kw), flush=True)

    # -- what the head-end knows -------------------------------------------------
    def status(self) -> dict[str, dict]:
        assert self.ops is not None
        return {n["node_id"]: n for n in self.ops.nodes(ACTOR)}

    def playing(self, names: list[str], what: dict) -> bool:
        """Every node of names reports playing something with these fields."""
        st = self.status()
        return all(all(((st[n]["status"] or {}).get("playing") or {}).get(k) == v
                       for k, v in what.items()) for n in names if n in st) \
            and all(n in st for n in names)

    def events(self, kind: str, **match: object) -> list[dict]:
        assert self.ops is not None
        return [e for e in self.ops.store.events(kind)
                if all(e.get(k) == v for k, v in match.items())]

    # -- the story ---------------------------------------------------------------
    def set_up(self) -> None:
        he = self.he
        he.media.mkdir()
        x = np.sin(2 * np.pi * NEWS_HZ * np.arange(NEWS_S * RATE) / RATE) * 16000
        write_wav(he.media / "thong-bao.wav", x.astype(np.int16), RATE)
        keys = enrol(he.inventory, COMMUNE, NODES)
        self.say("demo.starting", data=he.data)
        he.cli("user", WEB_USER, "--role", "admin", stdin=WEB_PASSWORD + "\n")
        with ThreadPoolExecutor(len(NODES) + 1) as pool:
            started = pool.submit(he.start)
            ups = {n: pool.submit(node_up, self.state, he.url, COMMUNE, n, z, keys[n])
                   for n, z in NODES.items()}
            try:
                started.result()
            finally:
                self.stack.callback(he.stop)
                for n, f in ups.items():
                    if f.exception() is None:
                        sim, con = self.nodes[n] = f.result()
                        self.stack.callback(sim.stop)
                        self.stack.callback(con.close)
            for f in ups.values():
                f.result()  # the first node that failed says why
        self.say("demo.headend", web=he.web, broker=he.url)
        self.ops = self.stack.enter_context(closing(open_headend(he.data)))
        poll("three nodes online", lambda: [n["state"] for n in self.status().values()]
             == ["online"] * len(NODES), 60)
        self.say("demo.online", nodes=", ".join(f"{n} ({z})" for n, z in NODES.items()))

    def push_rules(self) -> tuple[str, str]:
        assert self.ops is not None
        text, w1, w2 = rules_text(datetime.now(TZ))
        (self.state / "rules.toml").write_text(text, encoding="utf-8")
        r = self.ops.push_rules(ACTOR, text, "rules.toml")
        poll("the rules in force on every node", lambda: all(
            (n["status"] or {}).get("rules") == r["version"] for n in self.status().values()))
        self.say("demo.rules", version=r["version"], open=OPEN_ZONE, w1=w1, shut=SHUT_ZONE,
                 w2=w2, path=self.state / "rules.toml")
        return w1, w2

    def run(self) -> dict:
        assert self.ops is not None
        ops = self.ops
        w1, w2 = self.push_rules()
        zone1 = [n for n, z in NODES.items() if z == OPEN_ZONE]
        every = list(NODES)
        story_t = time.time()
        news_title = t("demo.news_title")
        news = ops.broadcast(ACTOR, "thong-bao", [OPEN_ZONE], "normal", news_title)
        poll("the announcement playing in " + OPEN_ZONE,
             lambda: self.playing(zone1, {"bulletin": news["bulletin"]}))
        heard_from = time.monotonic()
        self.say("demo.news", title=news_title, zone=OPEN_ZONE, nodes=", ".join(zone1))

        late = ops.broadcast(ACTOR, "thong-bao", [SHUT_ZONE], "normal", news_title)
        refused = poll("the refusal from " + SHUT_ZONE,
                       lambda: self.events("refused", seq=late["seq"]))[0]
        why = reasons.describe(refused.get("reason") or refused.get("msg"))
        self.say("demo.refused", zone=SHUT_ZONE, node=refused["node"], why=why, w2=w2)

        # let a few seconds of it be heard (its first sample comes 1-2 s after
        # the node reports playing: the fetch and the jitter buffer)
        time.sleep(max(0.0, heard_from + HEARD_S - time.monotonic()))
        siren_title = t("demo.siren_title")
        ops.emergency(ACTOR, "start", title=siren_title)
        poll("the emergency on every node",
             lambda: self.playing(every, {"priority": "emergency"}))
        self.say("demo.emergency", title=siren_title, nodes=", ".join(every),
                 cut=", ".join(zone1))
        time.sleep(SIREN_S)
        ops.emergency(ACTOR, "stop")
        poll("the announcement resuming",
             lambda: self.playing(zone1, {"bulletin": news["bulletin"]}))
        self.say("demo.resumed", title=news_title, nodes=", ".join(zone1))
        poll("the end of the announcement", lambda: all(
            self.events("play", node=n, bulletin=news["bulletin"], outcome="done")
            for n in zone1), NEWS_S + 20)
        self.say("demo.ended", title=news_title)
        return {"why": why, "w1": w1, "w2": w2, "since": story_t, "news": news_title,
                "zone1": zone1}

    def finish(self, told: dict) -> None:
        assert self.ops is not None
        until = time.time() + 1
        wavs = {n: node_timeline(sim.audio_dir, told["since"], until, self.state / f"{n}.wav")
                for n, (sim, _con) in self.nodes.items()}
        day = datetime.fromtimestamp(told["since"], TZ).date()
        rep = self.ops.report(ACTOR, day, datetime.now(TZ).date())
        csv = self.state / "report.csv"
        csv.write_text(Headend.report_csv(rep), encoding="utf-8")
        minutes = {r["zone"]: r["minutes"] for r in rep["zones"]}

        print()
        rows = []
        for n, row in self.status().items():
            st = row["status"] or {}
            heard = [p["title"] or "?" for p in rep["plays"] if p["node"] == n]
            rows.append((n, " ".join(row["zones"]), t("demo.state." + row["state"])
                         if row["state"] in ("online", "offline") else row["state"],
                         st.get("rules", ""), " → ".join(heard) or t("demo.nothing"),
                         len(self.events("refused", node=n)), wavs.get(n, "")))
        print_table(t("demo.cols").split("|"), rows, title=t("demo.table"))
        print()
        print(t("demo.files", csv=csv, rules=self.state / "rules.toml",
                log=self.he.tmp / "headend.log", store=self.he.data))
        print()
        print(t("demo.story", news=told["news"], open=OPEN_ZONE, shut=SHUT_ZONE,
                nodes=", ".join(told["zone1"]), w1=told["w1"], w2=told["w2"],
                why=told["why"], m1=minutes.get(OPEN_ZONE, 0), m2=minutes.get(SHUT_ZONE, 0)))
        print()
        print(t("demo.web", web=self.he.web, user=WEB_USER, password=WEB_PASSWORD))


def main() -> int:
    try:
        need("ffmpeg", "ffmpeg")  # the head-end transcodes what it broadcasts
        state = Path(tempfile.mkdtemp(prefix="loaxa-demo-"))
        print(t("demo.title"), flush=True)
        with ExitStack() as stack:
            story = Story(state, stack)
            story.set_up()
            story.finish(story.run())
            story.say("demo.done")
            if sys.stdin.isatty():
                try:
                    input(t("demo.enter"))
                except (EOFError, KeyboardInterrupt):
                    print()
            else:
                print(t("demo.not_tty"))
        print(t("demo.stopped"))
        return 0
    except LoaxaError as e:
        print(t("error", msg=e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(t("demo.stopped"), file=sys.stderr)
        return 130
