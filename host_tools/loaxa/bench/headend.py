"""The commune head-end (docs/headend.md, "Measurements"), each against a reference
in the same run:

* fan-out: one live stream to N HTTP clients by `loaxa headend stream --http`
  against icecast2 serving the same audio bitrate (64 kbit/s) to the same N
  clients: server CPU per stream-second per client, worst lag, bytes/s;
* the heartbeat load of bench/mqtt.py against the head-end's embedded amqtt
  and against mosquitto;
* the web page in Debian's chromium (headless, driven over its DevTools pipe):
  first-contentful-paint and bytes transferred of each page, against the same
  HTML saved to a file and served by python's http.server.

`make bench ARGS=headend` (add `--small` for N = 10, 100 only).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import LoaxaError
from ..rig import process
from ..rig.broker import Amqtt
from ..rig.process import free_port
from ..testsignals import speech_like, write_wav
from . import Table
from . import mqtt as mqtt_bench
from .mqtt import _cpu_of

LOAXA = str(Path(sys.executable).parent / "loaxa")
FF = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
WARM_S = 4  # after the last client connected: icecast's burst and the connects are over
MEASURE_S = 20
SAMPLE_S = 0.25
ENOUGH_CPU = 0.5  # of one core: the embedded broker's share of the head-end's process
# bytes/s of the stream itself: DVI4 16 kHz in 20 ms packets is 164 bytes of payload
# + 12 of RTP header + 2 of RFC 4571 framing, 50 a second; MP3 at 64 kbit/s
HEADEND_BPS = 50 * (164 + 12 + 2)
ICECAST_BPS = 64000 // 8

# N clients in one process (asyncio protocols: one callback per received chunk,
# so the clients cost little next to the server). Each GETs the stream and its
# received byte count is sampled every SAMPLE_S. A client in real time keeps
# t - bytes/rate constant; its lag is how far that grew past its own best.
SWARM = """
import asyncio, json, resource, sys, time

port, path, n, rate, warm, measure, step = sys.argv[1:8]
n, rate, warm, measure, step = int(n), int(rate), float(warm), float(measure), float(step)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))

class Client(asyncio.Protocol):
    def __init__(self):
        self.head = b""
        self.body = 0
        self.closed = False
    def connection_made(self, tr):
        tr.write(("GET %s HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n" % path).encode())
    def data_received(self, data):
        if self.head is not None:
            self.head += data
            i = self.head.find(b"\\r\\n\\r\\n")
            if i < 0:
                return
            if not self.head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
                raise SystemExit("refused: " + self.head[:80].decode(errors="replace"))
            data = self.head[i + 4:]
            self.head = None
        self.body += len(data)
    def connection_lost(self, exc):
        self.closed = True

async def main():
    loop = asyncio.get_running_loop()
    cs = []
    for i in range(n):
        c = Client()
        await loop.create_connection(lambda: c, "127.0.0.1", int(port))
        cs.append(c)
    await asyncio.sleep(warm)
    print("start", flush=True)
    t0 = time.monotonic()
    cpu0 = time.process_time()
    b0 = [c.body for c in cs]
    worst = [0.0] * n
    best = [None] * n
    k = 0
    while True:
        k += 1
        await asyncio.sleep(max(0, t0 + k * step - time.monotonic()))
        t = time.monotonic() - t0
        for i, c in enumerate(cs):
            a = t - (c.body - b0[i]) / rate
            if best[i] is None or a < best[i]:
                best[i] = a
            worst[i] = max(worst[i], a - best[i])
        if t >= measure:
            break
    cpu = time.process_time() - cpu0
    print("end", flush=True)
    print(json.dumps({"lag_ms": [1000 * w for w in worst], "closed": sum(c.closed for c in cs),
                      "bps": [(c.body - b0[i]) / t for i, c in enumerate(cs)],
                      "seconds": t, "cpu": cpu}), flush=True)

asyncio.run(main())
"""


def _swarm(port: int, path: str, n: int, rate: int, server_pid: int) -> dict:
    """Run the clients; the server's CPU is read when they start and end measuring."""
    p = subprocess.Popen([sys.executable, "-c", SWARM, str(port), path, str(n), str(rate),
                          str(WARM_S), str(MEASURE_S), str(SAMPLE_S)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stderr is not None
    try:
        cpu = []
        for want in ("start", "end"):
            line = p.stdout.readline().strip()
            if line != want:
                p.wait(10)
                raise LoaxaError(f"the client swarm failed: {line} {p.stderr.read()[-400:]}")
            cpu.append(_cpu_of(server_pid))
        out = json.loads(p.stdout.readline())
        p.wait(30)
    finally:
        process.kill(p)
    out["server_cpu"] = cpu[1] - cpu[0]
    return out


def _wait_http(port: int, path: str, timeout: float = 15) -> None:
    """Until GET path answers 200 (icecast's mount exists once its source is up)."""
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
                if s.recv(16).startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise LoaxaError(f"nothing streams on port {port} {path}")


ICECAST_XML = """<icecast>
  <limits><clients>{clients}</clients><sources>2</sources>
    <source-timeout>10</source-timeout></limits>
  <authentication><source-password>loaxa-bench</source-password>
    <admin-user>admin</admin-user><admin-password>loaxa-bench</admin-password></authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket><port>{port}</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <fileserve>0</fileserve>
  <paths><basedir>/usr/share/icecast2</basedir><logdir>{logs}</logdir>
    <webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot>
  </paths>
  <logging><accesslog>access.log</accesslog><errorlog>error.log</errorlog>
    <loglevel>2</loglevel></logging>
  <security><chroot>0</chroot>{owner}</security>
</icecast>
"""


def _fanout_headend(src: Path, n: int) -> dict:
    port = free_port()
    p = subprocess.Popen([LOAXA, "headend", "stream", str(src), "--codec", "DVI4",
                          "--rate", "16000", "--http", str(port), "--bind", "127.0.0.1",
                          "--loop", "--quiet"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        process.wait_listening(p, port, "loaxa headend stream", 15)
        return _swarm(port, "/", n, HEADEND_BPS, p.pid)
    finally:
        process.stop(p, 5)


def _fanout_icecast(src: Path, n: int, tmp: Path) -> dict:
    exe = shutil.which("icecast2")
    if exe is None:
        raise LoaxaError("icecast2 is not installed", "run `make bench` (it installs it)")
    port = free_port()
    logs = tmp / "icecast"
    logs.mkdir(exist_ok=True)
    os.chmod(tmp, 0o755)
    os.chmod(logs, 0o777)
    # icecast refuses to run as root unless told which user to become
    owner = "<changeowner><user>nobody</user><group>nogroup</group></changeowner>" \
        if os.geteuid() == 0 else ""
    conf = tmp / "icecast.xml"
    conf.write_text(ICECAST_XML.format(clients=n + 20, port=port, logs=logs, owner=owner))
    ice = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    source = None
    try:
        process.wait_listening(ice, port, "icecast2", 15)
        source = subprocess.Popen(
            [*FF, "-re", "-stream_loop", "-1", "-i", str(src), "-ac", "1", "-ar", "16000",
             "-c:a", "libmp3lame", "-b:a", "64k", "-content_type", "audio/mpeg", "-f", "mp3",
             f"icecast://source:loaxa-bench@127.0.0.1:{port}/live"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_http(port, "/live")
        return _swarm(port, "/live", n, ICECAST_BPS, ice.pid)
    finally:
        process.stop(source, 5)
        process.stop(ice, 5)


def fanout(ns: tuple[int, ...]) -> Table:
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as d:
        src = write_wav(Path(d) / "speech.wav", speech_like(30 * 16000), 16000)
        for n in ns:
            he = _fanout_headend(src, n)
            ic = _fanout_icecast(src, n, Path(d))
            per = [r["server_cpu"] / (r["seconds"] * n) for r in (he, ic)]
            rows.append([n, 1e6 * per[0], 1e6 * per[1], per[0] / per[1] if per[1] else
                         float("inf"), max(he["lag_ms"]), max(ic["lag_ms"]),
                         statistics.mean(he["bps"]), statistics.mean(ic["bps"]),
                         he["closed"] + ic["closed"], round(100 * he["cpu"] / he["seconds"]),
                         round(100 * ic["cpu"] / ic["seconds"])])
    return Table(f"fan-out: one live stream to N HTTP clients, {MEASURE_S} s each "
                 "(head-end = `loaxa headend stream --http`, reference = icecast2)",
                 ["N", "he CPU us", "ice CPU us", "he / ice", "he lag ms", "ice lag ms",
                  "he B/s", "ice B/s", "clients dropped", "swarm CPU % he",
                  "swarm CPU % ice"], rows,
                 "he = head-end, ice = icecast2; CPU us = server CPU microseconds per "
                 "stream-second per client; "
                 f"same audio bitrate: DVI4 16 kHz as RFC 4571 RTP ({HEADEND_BPS} B/s with "
                 f"headers) vs MP3 64 kbit/s ({ICECAST_BPS} B/s) from ffmpeg -re; server CPU "
                 "only (the head-end's ffmpeg decoder and icecast's ffmpeg source excluded); "
                 "lag = how far a client fell behind its own best t - bytes/rate, worst client; "
                 "`headend serve` has no live-stream fan-out yet (docs/headend.md, Not yet): "
                 "`headend stream` is that fan-out")


def brokers(ns: tuple[int, ...]) -> list[Table]:
    # the heartbeat load without credentials (brokerauth.py measures what they cost)
    emb = mqtt_bench.load(ns, lambda w: Amqtt(w, anonymous=True), "amqtt (embedded)")
    ref = mqtt_bench.load(ns, mqtt_bench.mosquitto, "mosquitto (reference)")
    col = {h: i for i, h in enumerate(emb.headers)}
    rows: list[list[object]] = []
    for k, m in enumerate(ref.rows):
        def get(r: list[object], h: str) -> float:
            return float(r[col[h]])  # type: ignore[arg-type]
        nodes = 60 // mqtt_bench.PERIOD_S * int(get(m, "N"))
        mcpu = get(m, "broker CPU %")
        if k >= len(emb.rows):  # amqtt could not take every node of a smaller N
            rows.append([m[0], nodes, "not run", mcpu, "", "", get(m, "p99 ms"), "",
                         int(get(m, "lost")), "no"])
            continue
        e = emb.rows[k]
        ecpu = get(e, "broker CPU %")
        why = [w for w, bad in (
            ("connects", get(e, "connected") < get(e, "N")),
            ("lost", get(e, "lost") + get(e, "unacked") > 0),
            ("CPU", ecpu >= 100 * ENOUGH_CPU),
            ("latency", not get(e, "p99 ms") < 1000 * mqtt_bench.PERIOD_S)) if bad]
        rows.append([e[0], nodes, ecpu, mcpu, ecpu / mcpu if mcpu else
                     float("inf"), get(e, "p99 ms"), get(m, "p99 ms"),
                     int(get(e, "lost") + get(e, "unacked")),
                     int(get(m, "lost") + get(m, "unacked")),
                     "no: " + ", ".join(why) if why else "yes"])
    cmp = Table("embedded amqtt vs mosquitto at the heartbeat load",
                ["N", "as nodes at 60 s", "amqtt CPU %", "mosquitto CPU %", "amqtt / mosquitto",
                 "amqtt p99 ms", "mosquitto p99 ms", "amqtt lost+unacked",
                 "mosquitto lost+unacked",
                 "amqtt enough"], rows,
                f"a status every {mqtt_bench.PERIOD_S} s is {60 // mqtt_bench.PERIOD_S}x a "
                "node's 60 s heartbeat; enough = every node connected, nothing lost or "
                f"unacked, p99 below the {mqtt_bench.PERIOD_S} s "
                f"period and broker CPU below {100 * ENOUGH_CPU:.0f} % of a core (in `serve` "
                "the broker shares one Python process with the API and the controller)")
    return [emb, ref, cmp]


class Chromium:
    """Debian's chromium, headless, driven over its DevTools pipe (fds 3 and 4,
    NUL-terminated JSON): no driver or browser download, nothing but the package."""

    def __init__(self, profile: Path):
        exe = shutil.which("chromium")
        if exe is None:
            raise LoaxaError("chromium is not installed", "run `make bench` (it installs it)")
        import fcntl
        a, self._w = os.pipe()
        self._r, b = os.pipe()
        # above 9 (bash, not sh, takes such fds): moving them to 3 and 4 cannot
        # overwrite one with the other
        cmd_r, resp_w = fcntl.fcntl(a, fcntl.F_DUPFD, 10), fcntl.fcntl(b, fcntl.F_DUPFD, 10)
        os.close(a)
        os.close(b)
        args = [exe, "--headless=new", "--remote-debugging-pipe", f"--user-data-dir={profile}",
                "--no-first-run", "--disable-gpu", "--disable-extensions",
                "--window-size=1280,800", "--accept-lang=vi-VN,vi",
                *(["--no-sandbox"] if os.geteuid() == 0 else [])]
        # bash puts the pipes where chromium looks for them
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{cmd_r} 4>&{resp_w} {cmd_r}<&- {resp_w}>&-', "bash",
             *args], pass_fds=(cmd_r, resp_w), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(resp_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def _next(self, deadline: float) -> dict:
        import select
        while b"\0" not in self._buf:
            if not select.select([self._r], [], [], max(0, deadline - time.monotonic()))[0]:
                raise LoaxaError("chromium did not answer in time")
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                raise LoaxaError("chromium closed its DevTools pipe")
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30) -> dict:
        self._id += 1
        msg: dict = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._next(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise LoaxaError(f"chromium: {method}: {m['error'].get('message')}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, session: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.events):
                if m.get("method") == method and m.get("sessionId") == session:
                    return self.events.pop(i)
            self.events.append(self._next(deadline))

    # Paint and navigation timing of the page as loaded: first-contentful-paint,
    # the first byte, and the bytes of the document and every subresource served
    # (an open EventSource is not finished, so the live updates are not counted, nor
    # is the static copy's 404 for it).
    TIMING = """new Promise(done => { const look = () => {
      const p = performance.getEntriesByName('first-contentful-paint')[0];
      if (!p && performance.now() < 10000) return setTimeout(look, 20);
      const nav = performance.getEntriesByType('navigation')[0];
      const rs = performance.getEntriesByType('resource').filter(r => r.responseStatus == 200);
      done({fcp: p ? p.startTime : null, ttfb: nav.responseStart, doc: nav.transferSize,
            bytes: nav.transferSize + rs.reduce((a, r) => a + r.transferSize, 0),
            resources: rs.map(r => r.name)});
    }; look(); })"""

    def load(self, url: str, cookie: tuple[str, str] | None) -> dict:
        """One cold load in a fresh tab: cache off, the session cookie if given."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"]
        try:
            self.call("Page.enable", session=s)
            self.call("Network.enable", session=s)
            self.call("Network.setCacheDisabled", {"cacheDisabled": True}, session=s)
            self.call("Network.clearBrowserCookies", session=s)
            if cookie:
                self.call("Network.setCookie", {"name": cookie[0], "value": cookie[1],
                                                "url": url}, session=s)
            self.call("Page.navigate", {"url": url}, session=s)
            self.wait_event("Page.loadEventFired", s)
            r = self.call("Runtime.evaluate", {"expression": self.TIMING, "awaitPromise": True,
                                               "returnByValue": True}, session=s)
            return r["result"]["value"]
        finally:
            self.call("Target.closeTarget", {"targetId": target})

    def close(self) -> None:
        os.close(self._w)
        process.stop(self.proc, 5)
        os.close(self._r)


WEB_COMMUNE = "an-phu"
WEB_NODES = 40  # a commune's network: 40 loudspeaker nodes in 4 hamlets
WEB_LOADS = 5


def _web_headend(tmp: Path) -> tuple[subprocess.Popen, int]:
    """`loaxa headend serve` as an operator starts it, its node table filled by
    WEB_NODES retained statuses published to its embedded broker."""
    import asyncio

    from ..inventory import Inventory
    with Inventory(tmp / "inv.sqlite") as inv:
        for i in range(WEB_NODES):
            inv.record(f"loa-{i:02d}", "provision", commune=WEB_COMMUNE,
                       zones=[f"thon-{i % 4 + 1}"])
        # publishes the nodes' statuses for them: a user with a head-end's rights
        web_pw = inv.new_mqtt_password("bench-web", "headend", WEB_COMMUNE)
    env = dict(os.environ, LOAXA_INVENTORY=str(tmp / "inv.sqlite"),
               LOAXA_HEADEND=str(tmp / "data"), LANG="C")
    subprocess.run([LOAXA, "headend", "user", "an", "--role", "admin"], env=env,
                   input="an-secret-pw\n", text=True, check=True, capture_output=True)
    port, mqtt, files = free_port(), free_port(), free_port()
    log = open(tmp / "headend.log", "ab")  # noqa: SIM115 (the process keeps it)
    p = subprocess.Popen([LOAXA, "headend", "serve", "--commune", WEB_COMMUNE, "--bind",
                          "127.0.0.1", "--port", str(port), "--mqtt-port", str(mqtt),
                          "--files-port", str(files)], env=env, stdout=log, stderr=log)
    process.wait_listening(p, port, "the head-end", 30)

    async def statuses() -> None:
        from loaxa_node.config import TOPIC_PREFIX
        from loaxa_node.control.protocol import node_topic
        from loaxa_node.net import mqtt as net_mqtt

        async def ignore(t: bytes, m: memoryview, r: int) -> None:
            pass
        c = net_mqtt.Client(f"mqtt://127.0.0.1:{mqtt}", "bench-web", ignore, user="bench-web",
                            password=web_pw)
        c.start()
        while not c.up:
            await asyncio.sleep(0.05)
        for i in range(WEB_NODES):
            doc = {"state": "online", "node": f"loa-{i:02d}", "fw": "0.9.0", "volume": 70,
                   "zones": [f"thon-{i % 4 + 1}"], "net": {"type": "lte", "signal": -71},
                   "playing": {"title": "Bản tin sáng", "source": "file:news"} if i % 3 else {}}
            await c.publish(node_topic(TOPIC_PREFIX, WEB_COMMUNE, f"loa-{i:02d}", "status"),
                            json.dumps(doc), True, 1)
        c.deinit()
    asyncio.run(statuses())
    return p, port


def _pages() -> list[tuple[str, str, bool]]:
    """(name, path, logged in) of each page of the web UI (the fragments the
    page fetches, such as /scheduled's rows, are not pages)."""
    today = time.strftime("%Y-%m-%d")
    month = time.strftime("%Y-%m-01")
    return [("login", "/", False), ("overview", "/", True), ("clusters", "/clusters", True),
            ("a cluster", "/clusters/loa-00", True), ("bulletins", "/bulletins", True),
            ("schedule", "/schedule", True), ("broadcast", "/broadcast", True),
            ("report", f"/report?from={month}&to={today}", True),
            ("report, no dates: this month", "/report", True), ("users", "/users", True)]


def web() -> Table:
    import httpx
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        he, port = _web_headend(tmp)
        ref_dir = tmp / "static"
        ref_dir.mkdir()
        ref_port = free_port()
        ref = subprocess.Popen([sys.executable, "-m", "http.server", str(ref_port), "--bind",
                                "127.0.0.1", "--directory", str(ref_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        browser = Chromium(tmp / "profile")
        try:
            process.wait_listening(ref, ref_port, "http.server", 10)
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=30) as api:
                r = api.post("/api/login", json={"user": "an", "password": "an-secret-pw"})
                r.raise_for_status()
                token = r.json()["token"]
                deadline = time.monotonic() + 20  # until the statuses are filed
                while sum(n.get("state") == "online" for n in api.get("/api/nodes").json()) \
                        < WEB_NODES and time.monotonic() < deadline:
                    time.sleep(0.2)
                cookies = {"loaxa_session": token}
                for name, path, logged_in in _pages():
                    cookie = ("loaxa_session", token) if logged_in else None
                    got = [browser.load(base + path, cookie) for _ in range(WEB_LOADS)]
                    # the reference: the same document (Vietnamese, as the browser asks)
                    # and subresources as files
                    fname = f"{name}.html"  # no query: a file is one page
                    html = httpx.get(base + path, cookies=cookies if cookie else None).content
                    (ref_dir / fname).write_bytes(html)
                    for res in got[0]["resources"]:
                        rel = httpx.URL(res).path
                        if res.startswith(base) and rel.strip("/"):
                            out = ref_dir / rel.strip("/")
                            out.parent.mkdir(parents=True, exist_ok=True)
                            out.write_bytes(api.get(rel, cookies=cookies).content)
                    sref = [browser.load(f"http://127.0.0.1:{ref_port}/{fname}", None)
                            for _ in range(WEB_LOADS)]
                    # no first paint within 10 s counts as never (NaN)
                    fcp = [statistics.median(float("nan") if x["fcp"] is None else x["fcp"]
                                             for x in g) for g in (got, sref)]
                    rows.append([f"{name} ({path.split('?')[0]})", fcp[0], fcp[1],
                                 fcp[0] / fcp[1],
                                 statistics.median(x["ttfb"] for x in got),
                                 statistics.median(x["ttfb"] for x in sref),
                                 got[0]["bytes"], sref[0]["bytes"], len(html)])
        finally:
            browser.close()
            process.stop(ref, 5)
            process.stop(he, 10)
    return Table(f"web page: first-contentful-paint in headless chromium, median of {WEB_LOADS} "
                 "cold loads (reference = the same HTML as a file from python's http.server)",
                 ["page", "head-end FCP ms", "static FCP ms", "head-end / static",
                  "head-end TTFB ms", "static TTFB ms", "head-end bytes", "static bytes",
                  "HTML bytes"], rows,
                 f"`loaxa headend serve` with {WEB_NODES} nodes online, in Vietnamese, logged in "
                 "as admin "
                 "except on the login page; bytes = the Performance API's transferSize of the "
                 "document and its finished subresources (headers included; the live-update "
                 "stream stays open and is not counted); cache off, a fresh tab per load")


def run(argv: list[str]) -> list[Table]:
    if "web" in argv:  # make bench ARGS="headend web": the page table only
        return [web()]
    small = "--small" in argv
    tables = [fanout((10, 100) if small else (10, 100, 1000))]
    tables += brokers((10, 100) if small else (10, 100, 300, 1000, 3000, 10000))
    return [*tables, web()]
